"""Storing normalised events once each, with the malformed ones quarantined, in one transaction.

A batch is stored all or nothing: the webhook answers 2xx only after this returns, so a batch
that failed halfway must leave no trace, or SendGrid's retry would find half of it already
there. Events are deduplicated on `provider_event_id` (SendGrid's `sg_event_id`) by an
insert that skips existing ids, within the batch and across batches alike. Quarantined events
are deduplicated the same way on a fingerprint (SHA-256 of source and raw text, unique): a
malformed event SendGrid resends with its batch is kept once, however often it comes.

Attribution: an event keeps the `reader_id` its custom_args claim only if a reader with that
id exists *and* has the event's address. Otherwise it is stored with no reader (the claimed id
stays in `raw`): ids of deleted readers can be reused by SQLite, and an event must never be
credited to someone else. Events for editions readerfirst does not know are stored as they
are; nothing that SendGrid reports is dropped.

With `refusals_now` (the webhook), a reader's unsubscribe, spam report, hard bounce or group
choice is applied to their row in the same transaction (`pipeline.engagement.suppressions`):
a send running before the next learning run already honours it.

Rows go in many per statement and never as ORM objects: the webhook has to keep up with
SendGrid's batches of ~1,500 events. On SQLite they go straight to the driver's executemany
(SQLAlchemy's per-row handling cost more than the insert itself); on PostgreSQL a batch takes
two round trips whatever its size: one lookup of its readers (an array parameter) and one
insert of the whole batch from one array parameter per column (sent in binary, so psycopg
neither parses thousands of placeholders nor escapes the raw JSON), with RETURNING; the rate
does not fall as the table grows or workers are added.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, DateTime, select

from pipeline.engagement.events import NormalisedEvent
from pipeline.engagement.event_array import quarantine_text
from pipeline.engagement.suppressions import apply_refusals
from pipeline.store.database import Database
from pipeline.store.models import QuarantinedEvent, Reader, utcnow
from pipeline.store.upsert import insert_ignore_rows

try:
    import orjson  # installed with Prefect; writes the raw events several times faster than json
except ImportError:  # pragma: no cover
    orjson = None

__all__ = ["StoreReport", "store_events", "event_row", "quarantine_row"]

_LOOKUP_CHUNK = 500  # reader ids per IN (...) query, well under every dialect's parameter limit
_SOURCE_WIDTH = 40  # quarantined_events.source
_DATETIME = DateTime()
_COLUMNS = ("provider_event_id", "event_type", "reason", "email", "reader_id", "edition_id", "section_id",
            "variant_id", "holdout", "occurred_at", "received_at", "raw")
_SQLITE_INSERT = (f"INSERT INTO engagement_events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
                  "ON CONFLICT (provider_event_id) DO NOTHING")
_SQLITE_READERS = "SELECT id, email FROM readers WHERE id IN (SELECT value FROM json_each(?))"
_POSTGRES_READERS = "SELECT id, email FROM readers WHERE id = ANY(%s)"
# PostgreSQL: a whole batch in one statement of 12 array parameters, one per column. A multi-row
# VALUES list of ~20,000 placeholders cost psycopg more to parse than the server took to insert
# (240 of 420 ms per SendGrid batch). The rows go in in the order given (ORDER BY the ordinal).
_POSTGRES_ARRAY_TYPES = ("text", "text", "text", "text", "int8", "text", "text", "text", "bool",
                         "timestamp", "timestamp", "text")
_POSTGRES_INSERT = (
    f"INSERT INTO engagement_events ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(f'c{n}' for n in range(len(_COLUMNS) - 1))}, c{len(_COLUMNS) - 1}::json "
    f"FROM unnest({', '.join(f'%b::{kind}[]' for kind in _POSTGRES_ARRAY_TYPES)}) "
    f"WITH ORDINALITY AS batch({', '.join(f'c{n}' for n in range(len(_COLUMNS)))}, position) "
    "ORDER BY position ON CONFLICT (provider_event_id) DO NOTHING RETURNING provider_event_id")


@dataclass(frozen=True)
class StoreReport:
    """What one store did: new events, events seen before, events quarantined, events unattributed."""

    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    # Stored without a reader: the claimed reader does not exist or has another address.
    unattributed: int = 0
    # Refusal events (unsubscribes, spam reports, hard bounces, group choices) applied at once (refusals_now);
    # each is checked against its row, so a retried batch counts them again and changes nothing.
    refusals: int = 0

    def __add__(self, other: StoreReport) -> StoreReport:
        return StoreReport(self.stored + other.stored, self.duplicates + other.duplicates,
                           self.quarantined + other.quarantined, self.unattributed + other.unattributed,
                           self.refusals + other.refusals)

    def as_dict(self) -> dict[str, int]:
        """The counts, for a JSON answer or a log line."""
        return {"stored": self.stored, "duplicates": self.duplicates, "quarantined": self.quarantined,
                "unattributed": self.unattributed, "refusals": self.refusals}


def event_row(event: NormalisedEvent, reader_id: int | None, received_at: dt.datetime) -> dict:
    """The engagement_events row of `event`, attributed to `reader_id`."""
    return {
        "provider_event_id": event.provider_event_id,
        "event_type": event.event_type.value,
        "reason": event.reason,
        "email": event.email,
        "reader_id": reader_id,
        "edition_id": event.edition_id,
        "section_id": event.section_id,
        "variant_id": event.variant_id,
        "holdout": event.holdout,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
        "raw": event.raw,
    }


def quarantine_row(raw: dict | str, reason: str, source: str, received_at: dt.datetime) -> dict:
    """The quarantined_events row of one malformed event, with the fingerprint it is deduplicated on."""
    source = source[:_SOURCE_WIDTH]
    # PostgreSQL text cannot hold NUL, and no database takes a lone surrogate (bytes that were not
    # UTF-8): both are written as escapes, so the event stays readable and the row always fits.
    text = _storable_text(quarantine_text(raw)).replace("\x00", "\\u0000")
    fingerprint = hashlib.sha256(f"{source}\n{text}".encode()).hexdigest()
    return {"source": source, "reason": _storable_text(reason).replace("\x00", "\\0"), "raw": text,
            "received_at": received_at, "fingerprint": fingerprint}


def _storable_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _known_addresses(connection: Connection, reader_ids: Iterable[int]) -> dict[int, str]:
    """Reader id -> lowercased address, for those of `reader_ids` that exist."""
    ids = sorted(set(reader_ids))
    if not ids:
        return {}
    if connection.dialect.name == "sqlite":
        # One statement with one parameter, however many readers the batch names.
        rows = connection.exec_driver_sql(_SQLITE_READERS, (json.dumps(ids),))
        return {reader_id: email.lower() for reader_id, email in rows}
    if connection.dialect.name == "postgresql":
        # One array parameter: one round trip however many readers the batch names.
        rows = connection.exec_driver_sql(_POSTGRES_READERS, (ids,))
        return {reader_id: email.lower() for reader_id, email in rows}
    found: dict[int, str] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start:start + _LOOKUP_CHUNK]
        for reader_id, email in connection.execute(select(Reader.id, Reader.email).where(Reader.id.in_(chunk))):
            found[reader_id] = email.lower()
    return found


def _json_text(value: object) -> str:
    """`value` as JSON text, as the JSON column stores it."""
    if orjson is not None:
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            pass  # an integer beyond 64 bits, which the standard library writes
    return json.dumps(value)


def _sqlite_values(connection: Connection, rows: Sequence[dict]) -> list[tuple]:
    """`rows` as the driver's parameters, converted as SQLAlchemy's column types would."""
    dialect = connection.dialect
    # The same text form SQLAlchemy writes, so that stored times compare and read back alike.
    as_text = _DATETIME.dialect_impl(dialect).bind_processor(dialect)
    return [(row["provider_event_id"], row["event_type"], row["reason"], row["email"], row["reader_id"],
             row["edition_id"], row["section_id"], row["variant_id"], row["holdout"], as_text(row["occurred_at"]),
             as_text(row["received_at"]), _json_text(row["raw"])) for row in rows]


def _insert_new(connection: Connection, rows: Sequence[dict]) -> int:
    """Insert `rows`, skipping ids already stored; returns how many were new."""
    if not rows:
        return 0
    dialect = connection.dialect.name
    if dialect == "sqlite":
        # The driver's executemany, without SQLAlchemy's per-row machinery: the webhook's hot path.
        # SQLite sums the rows each statement changed, and a skipped duplicate changes none.
        return connection.exec_driver_sql(_SQLITE_INSERT, _sqlite_values(connection, rows)).rowcount
    raise NotImplementedError(f"storing events is not implemented for {dialect}")


def _insert_new_ids(connection: Connection, rows: Sequence[dict]) -> set[str]:
    """PostgreSQL: insert `rows` in one statement, skipping ids already stored; returns the ids that were new."""
    if not rows:
        return set()
    # RETURNING lists only the rows really inserted, so the count is exact even when another
    # process stores the same events at the same moment.
    columns = [[row[name] for row in rows] for name in _COLUMNS[:-1]]
    columns.append([_json_text(row["raw"]) for row in rows])
    return {provider_id for provider_id, in connection.exec_driver_sql(_POSTGRES_INSERT, tuple(columns))}


def store_events(db: Database, events: Sequence[NormalisedEvent], quarantined: Sequence[tuple[dict | str, str]],
                 *, source: str, received_at: dt.datetime | None = None, refusals_now: bool = False,
                 topic_groups: Mapping[str, str] | None = None) -> StoreReport:
    """Store `events` once each and quarantine `quarantined`, all in one transaction.

    With `refusals_now`, the refusals among the attributed events are applied to their readers in
    that transaction too (group events through `topic_groups`, ASM group id -> topic).

    Raises the database's error (SQLAlchemyError) when the batch cannot be stored; then
    nothing of it was stored, and the caller must make the sender retry.
    """
    received_at = received_at or utcnow()
    unique: dict[str, NormalisedEvent] = {}
    for event in events:
        unique.setdefault(event.provider_event_id, event)
    with db.engine.begin() as connection:
        addresses = _known_addresses(connection, (e.reader_id for e in unique.values() if e.reader_id is not None))
        attributed, disowned = [], []
        for event in unique.values():
            if event.reader_id is None or addresses.get(event.reader_id) == event.email.lower():
                attributed.append(event_row(event, event.reader_id, received_at))
            else:
                disowned.append(event_row(event, None, received_at))
        if connection.dialect.name == "postgresql":
            # One insert for the batch: RETURNING tells which of the disowned ones were new. In id
            # order, so that two workers storing overlapping batches wait for each other in the same
            # order on the unique index and never deadlock.
            new = _insert_new_ids(connection, sorted(attributed + disowned, key=lambda row: row["provider_event_id"]))
            unattributed = len(new.intersection(row["provider_event_id"] for row in disowned))
            stored = len(new) - unattributed
        else:
            # Two inserts, so that the count of new unattributed events is exact.
            stored = _insert_new(connection, attributed)
            unattributed = _insert_new(connection, disowned)
        refusals = apply_refusals(connection, attributed, topic_groups or {}) if refusals_now else 0
        if quarantined:
            # A resent batch brings its malformed events again: kept once (the first reason stays).
            insert_ignore_rows(connection, QuarantinedEvent.__table__,
                               [quarantine_row(raw, reason, source, received_at) for raw, reason in quarantined],
                               ["fingerprint"])
    stored += unattributed
    return StoreReport(stored=stored, duplicates=len(events) - stored, quarantined=len(quarantined),
                       unattributed=unattributed, refusals=refusals)
