"""The emulator's SQLite store: one copy of each request's content, a row per recipient, substitutions on read."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator import MessageStore, apply_substitutions, validate_mail_send


def request(readers: int, html: str = "<p>Hello -name-</p>", **top: Any) -> dict[str, Any]:
    """A valid request for `readers` readers, each with a -name- substitution."""
    payload: dict[str, Any] = {
        "personalizations": [
            {
                "to": [{"email": f"reader{i}@example.com", "name": f"Reader {i}"}],
                "substitutions": {"-name-": f"Reader {i}"},
                "custom_args": {"reader_id": str(i)},
            }
            for i in range(readers)
        ],
        "from": {"email": "news@example.com", "name": "News"},
        "subject": "Hi -name-",
        "content": [{"type": "text/plain", "value": "Hello -name-"}, {"type": "text/html", "value": html}],
        "categories": ["weekly"],
        "custom_args": {"edition_id": "e1"},
    }
    payload.update(top)
    assert validate_mail_send(payload) == []
    return payload


@pytest.fixture
def store(tmp_path: Path):
    """A store in a fresh SQLite file."""
    opened = MessageStore(tmp_path / "store.db")
    yield opened
    opened.close()


def test_substitutions_are_one_pass_longest_first() -> None:
    """Keys are replaced longest first in one pass, so values containing other keys stay as written."""
    text = "-name- -name_full- -x-"
    assert apply_substitutions(text, {"-name-": "Ada -x-", "-name_full-": "Ada Lovelace", "-x-": "X"}) == "Ada -x- Ada Lovelace X"
    assert apply_substitutions(None, {"-a-": "b"}) is None
    assert apply_substitutions("plain", {}) == "plain"


def test_messages_for_applies_each_readers_substitutions(store: MessageStore) -> None:
    """Reading a reader's copy gives subject, text and HTML with that reader's values, whatever the address case."""
    store.record("msg1", request(3), time.time())
    [copy] = store.messages_for("READER2@example.com")
    assert (copy.subject, copy.text, copy.html) == ("Hi Reader 2", "Hello Reader 2", "<p>Hello Reader 2</p>")
    assert copy.custom_args == {"edition_id": "e1", "reader_id": "2"}
    assert copy.categories == ("weekly",)
    assert copy.sg_message_id.startswith("msg1.")


def test_cc_bcc_and_personalization_overrides(store: MessageStore) -> None:
    """cc and bcc readers get copies too; a personalization's from, subject, headers and send_at override the request's."""
    payload = request(1, headers={"X-Edition": "e1"}, send_at=1_700_000_000)
    payload["personalizations"][0].update(
        cc=[{"email": "cc@example.com"}],
        bcc=[{"email": "bcc@example.com"}],
        subject="Just for you, -name-",
        headers={"List-Unsubscribe": "<https://x.example/u/t>"},
        send_at=1_700_000_500,
    )
    payload["personalizations"][0]["from"] = {"email": "desk@example.com"}
    deliveries = store.record("msg1", payload, time.time())
    assert [(d.email, d.kind) for d in deliveries] == [("reader0@example.com", "to"), ("cc@example.com", "cc"), ("bcc@example.com", "bcc")]
    [bcc] = store.messages_for("bcc@example.com")
    assert bcc.kind == "bcc" and bcc.subject == "Just for you, Reader 0" and bcc.from_email == "desk@example.com"
    assert bcc.headers == {"X-Edition": "e1", "List-Unsubscribe": "<https://x.example/u/t>"}
    assert bcc.send_at == 1_700_000_500


def test_counts_and_totals(store: MessageStore) -> None:
    """count_by_recipient counts copies per address and total counts them all."""
    store.record("a", request(3), time.time())
    store.record("b", request(2), time.time())
    assert store.count_by_recipient() == {"reader0@example.com": 2, "reader1@example.com": 2, "reader2@example.com": 1}
    assert store.total() == 5 and store.requests() == 2


def test_html_is_stored_once_per_request(tmp_path: Path) -> None:
    """A 1,000-reader request with 50 KB of HTML takes far less than 1,000 copies of it on disk."""
    path = tmp_path / "big.db"
    store = MessageStore(path)
    html = "<p>Hello -name-</p>" + "<p>" + "x" * 50_000 + "</p>"
    store.record("big", request(1000, html=html), time.time())
    assert store.messages_for("reader999@example.com")[0].html.startswith("<p>Hello Reader 999</p>")
    store.close()
    size = sum(f.stat().st_size for f in tmp_path.glob("big.db*"))
    assert size < 20 * len(html)  # 1,000 copies would be 50 MB


def test_concurrent_writers_lose_nothing(store: MessageStore) -> None:
    """Requests recorded from eight threads at once are all kept."""
    def write(thread: int) -> None:
        for round_ in range(10):
            store.record(f"t{thread}-{round_}", request(20), time.time())

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.requests() == 80 and store.total() == 1600
    assert store.count_by_recipient()["reader7@example.com"] == 80
