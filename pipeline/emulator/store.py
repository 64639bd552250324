"""What the emulator delivered: a SQLite file with each request once and a row per recipient.

A 1,000-reader request keeps its HTML and text once; each recipient row keeps only what is
theirs (address, subject, substitutions, custom_args, headers, send time). Substitutions are
applied when a message is read, so 100,000 readers never cost 100,000 copies of the body.
As SendGrid documents, substitutions apply to the subject and the content, not to headers
nor to custom_args.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Delivery", "MessageStore", "ReceivedMessage", "apply_substitutions", "ask_links_in"]

# The HTML substitution key of an ask's one-click answer (pipeline/delivery/sendgrid_payload.html_key
# of pipeline/audience/ask_tokens.ask_merge_name): `%%rf:ask:<topic>%%`.
_ASK_KEY = re.compile(r"%%rf:ask:([a-z0-9][a-z0-9-]*)%%")


def ask_links_in(substitutions: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """The (topic, URL) answer links of the ask among one personalization's substitutions."""
    return tuple((m.group(1), value) for key, value in (substitutions or {}).items()
                 if (m := _ASK_KEY.fullmatch(key)) and isinstance(value, str))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mail_requests (
    id INTEGER PRIMARY KEY,
    x_message_id TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    from_json TEXT NOT NULL,
    reply_to_json TEXT,
    subject TEXT,
    text_body TEXT,
    html_body TEXT,
    other_content_json TEXT,
    template_id TEXT,
    categories_json TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES mail_requests(id),
    sg_message_id TEXT NOT NULL,
    email TEXT NOT NULL,
    address TEXT NOT NULL,
    name TEXT,
    kind TEXT NOT NULL,
    personalization INTEGER NOT NULL,
    from_json TEXT,
    subject TEXT,
    substitutions_json TEXT,
    custom_args_json TEXT,
    headers_json TEXT,
    send_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_email ON deliveries (email);
"""


class Delivery(NamedTuple):
    """One recipient of an accepted request, as the event webhook needs it."""

    sg_message_id: str
    email: str
    kind: str
    custom_args: dict[str, str]
    reply_to: str | None = None  # the request's reply-to address with this recipient's substitutions applied
    # The answer links of readerfirst's ask among this recipient's substitutions, (topic, URL) in
    # their order: what a simulated reader follows to answer it, as they would click it in the mail.
    ask_links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReceivedMessage:
    """What one reader received, with the personalization's substitutions applied."""

    x_message_id: str
    sg_message_id: str
    email: str
    name: str | None
    kind: str
    from_email: str
    from_name: str | None
    subject: str | None
    text: str | None
    html: str | None
    categories: tuple[str, ...]
    custom_args: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    substitutions: dict[str, str] = field(default_factory=dict)
    send_at: int = 0
    received_at: float = 0.0
    template_id: str | None = None
    reply_to: str | None = None  # the request's reply-to address, substitutions applied (as SendGrid does)

    def as_json(self) -> dict[str, Any]:
        """The message as the `/_emulator/messages` endpoint lists it."""
        return {
            "x_message_id": self.x_message_id,
            "sg_message_id": self.sg_message_id,
            "email": self.email,
            "name": self.name,
            "kind": self.kind,
            "from": {"email": self.from_email, "name": self.from_name},
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "categories": list(self.categories),
            "custom_args": self.custom_args,
            "headers": self.headers,
            "substitutions": self.substitutions,
            "send_at": self.send_at,
            "received_at": self.received_at,
            "template_id": self.template_id,
            "reply_to": self.reply_to,
        }


def apply_substitutions(text: str | None, substitutions: Mapping[str, str]) -> str | None:
    """Replace every substitution key in `text` in one pass, longest key first, as SendGrid does.

    One pass, so a value that happens to contain another key is left as written.
    """
    if not text or not substitutions:
        return text
    keys = sorted(substitutions, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(key) for key in keys if key))
    return pattern.sub(lambda match: substitutions[match.group(0)], text)


def _reply_address(value: object) -> str | None:
    """The address of a stored `reply_to` (an object), or the first of a `reply_to_list`."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value.get("email") if isinstance(value, dict) else None


def _dump(value: object) -> str | None:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else None


def _load(text: str | None) -> Any:
    return json.loads(text) if text else {}


class MessageStore:
    """The emulator's mailbox: thread-safe, one SQLite file (or `:memory:`)."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        # One connection behind a lock: SQLite serialises writers anyway, and the lock keeps
        # concurrent handler threads from interleaving statements of one transaction.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def record(self, x_message_id: str, payload: Mapping[str, Any], received_at: float) -> list[Delivery]:
        """Store an accepted (already validated) mail-send body; returns one Delivery per recipient."""
        bodies = {"text/plain": None, "text/html": None}
        others = []
        for block in payload.get("content") or ():
            if block["type"].lower() in bodies and bodies[block["type"].lower()] is None:
                bodies[block["type"].lower()] = block["value"]
            else:
                others.append(block)
        top_args = payload.get("custom_args") or {}
        top_headers = payload.get("headers") or {}
        top_subject = payload.get("subject")
        top_send_at = int(payload.get("send_at") or received_at)
        top_reply_to = (payload.get("reply_to") or {}).get("email")
        rows, deliveries = [], []
        for index, person in enumerate(payload["personalizations"]):
            args = {**top_args, **person["custom_args"]} if person.get("custom_args") else top_args
            headers = {**top_headers, **person["headers"]} if person.get("headers") else top_headers
            shared = (
                _dump(person.get("from")),
                person.get("subject", top_subject),
                _dump(person.get("substitutions")),
                _dump(args),
                _dump(headers),
                int(person.get("send_at") or top_send_at),
            )
            # SendGrid applies substitutions to the reply-to as to the subject and content.
            reply_to = (apply_substitutions(top_reply_to, person.get("substitutions") or {})
                        if top_reply_to and "%" in top_reply_to else top_reply_to)
            asks = ask_links_in(person.get("substitutions"))
            number = 0
            for kind in ("to", "cc", "bcc"):
                for recipient in person.get(kind) or ():
                    sg_message_id = f"{x_message_id}.emulator.{index}.{number}"
                    number += 1
                    address = recipient["email"]
                    rows.append((sg_message_id, address.lower(), address, recipient.get("name"), kind, index, *shared))
                    deliveries.append(Delivery(sg_message_id, address, kind, args, reply_to, asks))
        request = (
            x_message_id,
            received_at,
            _dump(payload["from"]),
            _dump(payload.get("reply_to") or payload.get("reply_to_list")),
            top_subject,
            bodies["text/plain"],
            bodies["text/html"],
            _dump(others),
            payload.get("template_id"),
            _dump(payload.get("categories")),
        )
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO mail_requests (x_message_id, received_at, from_json, reply_to_json, subject,"
                " text_body, html_body, other_content_json, template_id, categories_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                request,
            )
            request_id = cursor.lastrowid
            db.executemany(
                f"INSERT INTO deliveries (request_id, sg_message_id, email, address, name, kind, personalization,"
                f" from_json, subject, substitutions_json, custom_args_json, headers_json, send_at)"
                f" VALUES ({request_id}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return deliveries

    def messages_for(self, email: str) -> list[ReceivedMessage]:
        """Every message delivered to `email` (any case), oldest first, substitutions applied."""
        with self._lock:
            found = self._db.execute(
                "SELECT r.x_message_id, d.sg_message_id, d.address, d.name, d.kind, r.from_json, d.from_json,"
                " d.subject, r.text_body, r.html_body, r.categories_json, d.custom_args_json, d.headers_json,"
                " d.substitutions_json, d.send_at, r.received_at, r.template_id, r.reply_to_json"
                " FROM deliveries d JOIN mail_requests r ON r.id = d.request_id"
                " WHERE d.email = ? ORDER BY d.id",
                (email.lower(),),
            ).fetchall()
        messages = []
        for (x_id, sg_id, address, name, kind, request_from, own_from, subject, text, html,
             categories, args, headers, subs, send_at, received_at, template_id, reply_to) in found:
            sender = _load(own_from) or _load(request_from)
            substitutions = _load(subs)
            messages.append(
                ReceivedMessage(
                    x_message_id=x_id,
                    sg_message_id=sg_id,
                    email=address,
                    name=name,
                    kind=kind,
                    from_email=sender["email"],
                    from_name=sender.get("name"),
                    subject=apply_substitutions(subject, substitutions),
                    text=apply_substitutions(text, substitutions),
                    html=apply_substitutions(html, substitutions),
                    categories=tuple(json.loads(categories)) if categories else (),
                    custom_args=_load(args),
                    headers=_load(headers),
                    substitutions=substitutions,
                    send_at=send_at,
                    received_at=received_at,
                    template_id=template_id,
                    reply_to=apply_substitutions(_reply_address(_load(reply_to)), substitutions),
                )
            )
        return messages

    def count_by_recipient(self) -> dict[str, int]:
        """How many messages each (lower-cased) address received."""
        with self._lock:
            return dict(self._db.execute("SELECT email, COUNT(*) FROM deliveries GROUP BY email").fetchall())

    def total(self) -> int:
        """How many recipient copies were delivered in all."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]

    def requests(self) -> int:
        """How many mail-send requests were accepted and stored."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM mail_requests").fetchone()[0]

    def close(self) -> None:
        """Close the database; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()
