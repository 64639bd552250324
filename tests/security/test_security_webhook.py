"""Probes of the Event Webhook over real HTTP: forged, replayed, oversized, poisoned, concurrent and locked-out batches."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pipeline.store.models import EngagementEvent, QuarantinedEvent
from pipeline.web.webhook import SignatureCheck
from pipeline.web import open_web_database
from tests.security.test_security_events import hostile_body
from tests.test_engagement_sendgrid_events import sendgrid_event
from tests.test_engagement_store import add_reader, count
from tests.test_web_webhook import (  # noqa: F401 - key, serve_app and url are fixtures
    SIGNATURE,
    TIMESTAMP,
    batch,
    body_of,
    event_count,
    key,
    new_key,
    public_key_of,
    serve_app,
    signed,
    url,
)


def stored_ids(db) -> list[str]:
    """provider_event_id of every stored event, repeats included."""
    with db.session() as session:
        return list(session.scalars(select(EngagementEvent.provider_event_id)))


def test_tampered_body_is_refused(url, db, key):
    """A body changed after signing (one event added, or the CRLF dropped) is refused 403 and nothing is stored."""
    body = body_of(batch(2))
    headers = signed(key, body)
    tampered = body_of(batch(3))
    assert httpx.post(url, content=tampered, headers=headers).status_code == 403
    assert httpx.post(url, content=body.rstrip(b"\r\n"), headers=headers).status_code == 403
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert httpx.post(url, content=reserialised, headers=headers).status_code == 403
    assert event_count(db) == 0


def test_signature_from_another_key_is_refused(url, db):
    """A batch signed with a key other than the configured one is refused 403."""
    body = body_of(batch(1))
    assert httpx.post(url, content=body, headers=signed(new_key(), body)).status_code == 403
    assert event_count(db) == 0


@pytest.mark.parametrize("headers", [
    {},
    {"X-Twilio-Email-Event-Webhook-Timestamp": "1796601600"},
    {"X-Twilio-Email-Event-Webhook-Signature": "not base64 at all!", "X-Twilio-Email-Event-Webhook-Timestamp": "now"},
])
def test_unsigned_or_garbled_signature_headers_are_refused(url, db, headers):
    """A request without both signature headers, or with garbage in them, is refused 403."""
    body = body_of(batch(1))
    assert httpx.post(url, content=body, headers=headers).status_code == 403
    assert event_count(db) == 0


# A minute past the window: a request on a loaded machine may take seconds to be read.
@pytest.mark.parametrize("offset", [-3600, -660, 660, 86400])
def test_replayed_or_future_timestamp_is_refused(url, db, key, offset):
    """A genuine signature with a timestamp outside the 10-minute window, either way, is refused 403."""
    body = body_of(batch(1))
    answer = httpx.post(url, content=body, headers=signed(key, body, int(time.time()) + offset))
    assert answer.status_code == 403
    assert event_count(db) == 0


@pytest.mark.parametrize("offset, genuine", [(-601, False), (-600, True), (600, True), (601, False)])
def test_the_window_ends_exactly_at_its_edge(key, offset, genuine):
    """At a fixed clock, a timestamp 600 s away either way is accepted and 601 s away is refused."""
    check = SignatureCheck(public_key_of(key), 600)
    body = body_of(batch(1))
    now = 1_796_601_600
    headers = signed(key, body, now + offset)
    refusal = check.refusal(body, headers[SIGNATURE], headers[TIMESTAMP], now=now)
    assert (refusal is None) is genuine, refusal


def test_oversized_body_is_refused(serve_app, db, key):
    """A body over the limit is refused 413, whether it declares its length or streams it chunked."""
    url = serve_app(READERFIRST_WEBHOOK_MAX_BYTES=64 * 1024) + "/webhooks/sendgrid"
    body = body_of(batch(400))
    assert len(body) > 64 * 1024
    assert httpx.post(url, content=body, headers=signed(key, body)).status_code == 413

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    assert httpx.post(url, content=chunks(), headers=signed(key, body)).status_code == 413
    assert event_count(db) == 0


@pytest.mark.parametrize("body", [b"this is not json\r\n", b'{"event": "open"}\r\n', b"\xff\xfe[]\r\n",
                                  b'[{"event": "open"}\r\n', b"[{}]]"])
def test_signed_body_that_is_not_a_json_array_is_refused(url, db, key, body):
    """A genuine body that is not JSON, not an array, not UTF-8 or whose array is broken is refused 400."""
    assert httpx.post(url, content=body, headers=signed(key, body)).status_code == 400
    assert event_count(db) == 0


def test_tampered_body_that_is_not_utf8_is_refused_as_forged(url, key):
    """A body that is not UTF-8 is still checked against its signature: altered, it is refused 403."""
    body = b"\xff\xfe[]\r\n"
    assert httpx.post(url, content=b"\xff\xfd[]\r\n", headers=signed(key, body)).status_code == 403


POISON = [
    b"9" * 5000,  # past Python's int-string limit
    b'{"event": "open", "sg_event_id": "p1", "timestamp": ' + b"9" * 5000 + b"}",
    json.dumps(sendgrid_event("open", sg_event_id="p2", timestamp="9" * 5000)).encode(),
    json.dumps(sendgrid_event("open", sg_event_id="p3", reader_id="9" * 5000)).encode(),
    b"NaN",
    b'{"event": "open", "sg_event_id": "p4", "timestamp": -Infinity}',
    b'{"event": "open", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"event": "open", "sg_event_id": "p5", "email": "\\ud800"}',
    b'{"event": "open", "sg_event_id": "p6", "email": "\xff\xfe"}',
    json.dumps(sendgrid_event("open", sg_event_id="p7", email=["ann@example.com"])).encode(),
    json.dumps(sendgrid_event("open", sg_event_id="p8", edition_id="x" * 200_000)).encode(),
    b"{oops}",
]


def test_poisoned_batch_stores_its_good_events_and_quarantines_the_poison_once(url, db, key):
    """A signed batch mixing good events with every kind of poison is answered 200, its good events stored, each poison kept once."""
    good = [json.dumps(e).encode() for e in batch(6, "good-")]
    clicks = [json.dumps(sendgrid_event("click", sg_event_id="unsplittable", url="http://[::1")).encode()]
    elements = [e for pair in itertools.zip_longest(good + clicks, POISON) for e in pair if e is not None]
    body = b"[" + b",\n".join(elements) + b"]\r\n"
    answers = [httpx.post(url, content=body, headers=signed(key, body), timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    # The events name reader 102, who does not exist here: stored, unattributed.
    assert answers[0].json() == {"stored": 7, "duplicates": 0, "quarantined": len(POISON), "unattributed": 7,
                                  "refusals": 0}
    assert answers[2].json() == {"stored": 0, "duplicates": 7, "quarantined": len(POISON), "unattributed": 0,
                                  "refusals": 0}
    assert sorted(stored_ids(db)) == sorted([f"good-{i}" for i in range(6)] + ["unsplittable"])
    assert count(db, QuarantinedEvent) == len(POISON)  # SendGrid's retries add nothing


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_signed_batches_are_answered_200_and_lose_no_good_event(url, db, key, data):
    """Whatever hostile events a genuine batch holds, it is answered 200 and every good event in it is stored."""
    body, good_ids, elements = data.draw(hostile_body())
    answer = httpx.post(url, content=body, headers=signed(key, body), timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] + answer.json()["duplicates"] + answer.json()["quarantined"] == elements
    assert good_ids <= set(stored_ids(db))


def test_concurrent_overlapping_batches_store_every_event_exactly_once(url, db, key):
    """Threads posting overlapping signed batches at once (and again, as retries) store each event once and lose none."""
    events = batch(400, "c")
    windows = [events[start:start + 100] for start in range(0, 301, 25)]  # each event in up to four batches
    bodies = [body_of(window) for window in windows] * 2
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post(body: bytes) -> None:
        answer = httpx.post(url, content=body, headers=signed(key, body), timeout=60)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [a.status_code for a in answers] == [200] * len(bodies)
    assert sum(a.json()["stored"] for a in answers) == 400
    assert sum(a.json()["duplicates"] for a in answers) == sum(len(w) for w in windows) * 2 - 400
    ids = stored_ids(db)
    assert len(ids) == 400 and set(ids) == {e["sg_event_id"] for e in events}


def test_locked_database_answers_503_logs_no_reader_data_and_the_retry_stores_all(serve_app, home, key, caplog):
    """With the database locked the batch is answered 503 (Retry-After), nothing of it is stored or logged; the retry stores it all."""
    path = home / "readerfirst.db"
    impatient = open_web_database(f"sqlite:///{path}", busy_timeout_ms=200)
    reader_id = add_reader(impatient, "secret.reader@example.com")
    url = serve_app(impatient) + "/webhooks/sendgrid"
    events = batch(20, email="secret.reader@example.com", reader_id=str(reader_id))
    events.append(sendgrid_event("open", sg_event_id="poison", reader_id="not-a-number", email="secret.reader@example.com"))
    body = body_of(events)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.ERROR, logger="pipeline.web.webhook"):
            refused = httpx.post(url, content=body, headers=signed(key, body), timeout=30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    assert (event_count(impatient), count(impatient, QuarantinedEvent)) == (0, 0)
    [line] = [r.getMessage() for r in caplog.records if r.name == "pipeline.web.webhook"]
    assert line.endswith("SendGrid will retry it: sqlalchemy.exc.OperationalError from sqlite3.OperationalError "
                         "(SQLITE_BUSY)"), line
    assert "secret.reader" not in line and "INSERT" not in line and "SELECT" not in line
    retried = httpx.post(url, content=body, headers=signed(key, body), timeout=30)
    assert retried.status_code == 200 and retried.json()["stored"] == 20 and retried.json()["quarantined"] == 1
    impatient.dispose()
