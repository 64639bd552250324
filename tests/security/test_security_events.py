"""Hostile SendGrid events, fuzzed: reading and storing only ever store or quarantine, and lose no good event."""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pipeline.engagement.sendgrid_events import SENDGRID_EVENTS, parse_events
from pipeline.engagement.store import store_events
from pipeline.store.models import EngagementEvent, QuarantinedEvent
from tests.test_engagement_sendgrid_events import sendgrid_event

# The fields SendGrid documents for its events, and ours that come back as top-level keys.
FIELDS = ["email", "timestamp", "event", "sg_event_id", "sg_message_id", "smtp-id", "category", "url", "url_offset",
          "type", "reason", "response", "status", "attempt", "asm_group_id", "sg_machine_open", "useragent", "ip",
          "tls", "edition_id", "reader_id", "variant_id", "holdout"]

# Values as JSON text (or bytes), each chosen to break something: Python's int-string limit, numbers
# JSON forbids or a double cannot hold, nesting past every decoder's limit, lone surrogates, bytes
# that are not UTF-8, huge strings, urls urllib cannot split, timestamps out of range, NUL.
HOSTILE = [b"9" * 5000, b"-" + b"9" * 4400, b'"' + b"9" * 5000 + b'"', b"NaN", b"Infinity", b"-Infinity", b"1e400",
           b"18446744073709551616", b"123456789012345678901234567890", b"-1", b"253402300800", b"1.5", b"true",
           b"false", b"null", b"[]", b"{}", b'""', b'"\\ud800"', b'"x\\udfff"', b'"\xff\xfe"', b'"\\u0000"',
           b"[" * 3000 + b"]" * 3000, b'{"a":' * 300 + b"1" + b"}" * 300, b'"' + b"x" * 100_000 + b'"',
           b'"http://[::1"', b'"https://[example.com/?rf_e=1&rf_s=2"', b'"\\\\"', b'["open"]', b'{"event": "open"}']


# The fields the parser reads, where a hostile value does harm; hostile values go there most often.
PARSED = ["email", "timestamp", "event", "sg_event_id", "url", "type", "asm_group_id", "reader_id", "holdout"]


def _fragment(value: object) -> bytes:
    return json.dumps(value).encode()


ordinary_values = st.one_of(st.text(max_size=30).map(_fragment), st.integers().map(_fragment),
                            st.floats(allow_nan=False, allow_infinity=False).map(_fragment),
                            st.lists(st.text(max_size=5), max_size=3).map(_fragment))
# Values aimed at what the parser does with each field: numbers it converts, urls it splits.
_NUMBERS = [b'"' + b"9" * 5000 + b'"', b'" ' + b"9" * 40 + b' "', b"9" * 5000, b"10" * 12, b"-1"]
TARGETED = {
    "timestamp": _NUMBERS, "reader_id": _NUMBERS, "asm_group_id": _NUMBERS,
    "url": [b'"http://[::1"', b'"https://[example.com/?rf_e=1&rf_s=2"', b'"https://e.example/?rf_e=' + b"x" * 500 + b'"'],
    "holdout": [b"2", b'"yes"', b"[1]", b"1.0", b"NaN"],
    "type": [b'"BLOCKED"', b"7", b'"\ud800"', b"{}"],
}


def hostile_value(key: str) -> st.SearchStrategy[bytes]:
    """A hostile value for `key`: one aimed at that field, one from the general list, or an ordinary one."""
    targeted = st.sampled_from(TARGETED.get(key, HOSTILE))
    return st.one_of(targeted, targeted, targeted, st.sampled_from(HOSTILE), ordinary_values)


hostile_fields = st.one_of(st.sampled_from(PARSED), st.sampled_from(PARSED), st.sampled_from(FIELDS))
_ids = itertools.count()


@st.composite
def hostile_body(draw) -> tuple[bytes, set[str], int]:
    """(a webhook body mixing good and hostile events, the ids of its good events, how many elements it has)."""
    elements: list[bytes] = []
    good_ids: set[str] = set()
    for _ in range(draw(st.integers(1, 8))):
        # Clicks twice as often: their url is read too.
        kind = draw(st.sampled_from(["click", *sorted(SENDGRID_EVENTS)]))
        event = sendgrid_event(kind, sg_event_id=f"fuzz-{next(_ids)}")
        if kind == "click":
            event["url"] = "https://example.com/a?rf_e=2026-12-07&rf_s=lead"
        shape = draw(st.sampled_from(["good", "hostile fields", "hostile element"]))
        if shape == "good":
            good_ids.add(event["sg_event_id"])
            elements.append(_fragment(event))
        elif shape == "hostile element":
            elements.append(draw(st.sampled_from(HOSTILE)))
        else:
            keys = draw(st.lists(hostile_fields, min_size=1, max_size=3, unique=True))
            if "url" in keys:
                event["event"] = "click"  # the url is read only on a click
            fields = {key: _fragment(value) for key, value in event.items()}
            for key in keys:
                fields[key] = draw(hostile_value(key))
            elements.append(b"{" + b", ".join(_fragment(k) + b": " + v for k, v in fields.items()) + b"}")
    return b"[" + b",\n".join(elements) + b"]\r\n", good_ids, len(elements)


def stored_ids(db) -> set[str]:
    """provider_event_id of every stored event."""
    with db.session() as session:
        return set(session.scalars(select(EngagementEvent.provider_event_id)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_batches_are_stored_or_quarantined_never_raised(db, data):
    """Every element of a hostile batch is read or quarantined, storing never fails, and every good event is stored."""
    body, good_ids, elements = data.draw(hostile_body())
    events, quarantined = parse_events(body)
    assert len(events) + len(quarantined) == elements
    assert good_ids <= {e.provider_event_id for e in events}
    report = store_events(db, events, quarantined, source="fuzz")
    assert report.stored + report.duplicates == len(events)
    assert good_ids <= stored_ids(db)
    with db.session() as session:
        kept = session.scalar(select(func.count()).select_from(QuarantinedEvent))
    again = store_events(db, events, quarantined, source="fuzz")
    assert again.stored == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(QuarantinedEvent)) == kept


def _stored_rows(db) -> list[tuple]:
    """Every stored event as plain values, by SendGrid's id, without the database's own columns.

    By SendGrid's id, not the row id: PostgreSQL inserts a batch in that order (so that two
    workers lock the same ids in the same order), SQLite in the order of arrival.
    """
    with db.session() as session:
        return [(e.provider_event_id, e.event_type, e.reason, e.email, e.reader_id, e.edition_id, e.section_id,
                 e.variant_id, e.holdout, e.occurred_at, e.raw)
                for e in session.scalars(select(EngagementEvent).order_by(EngagementEvent.provider_event_id))]


@st.composite
def claimed_events(draw) -> bytes:
    """Events that claim reader 1 or 2 (ann@ and bob@), with the right address, another case of it, or another's."""
    events = []
    for _ in range(draw(st.integers(0, 4))):
        email = draw(st.sampled_from(["ann@example.com", "ANN@Example.com", "bob@example.com", "eve@example.com"]))
        events.append(sendgrid_event("open", sg_event_id=f"claim-{next(_ids)}", email=email,
                                     reader_id=draw(st.sampled_from(["1", "2"]))))
    return b"[" + b",".join(_fragment(event) for event in events) + b"]"


def test_postgres_stores_hostile_batches_exactly_as_sqlite_does(db):
    """PostgreSQL's one-statement batch insert (array parameters) stores what SQLite's executemany stores.

    The same fuzzed batches, with events claiming readers under right and wrong addresses, go
    to both stores: the counts, the rows and their attribution must be the same, and neither
    may raise (PostgreSQL's text cannot hold NUL, nor JSON text a lone surrogate).
    """
    from tests.test_engagement_store import add_reader
    from tests.tools import postgres_database

    with postgres_database() as pg:
        for store in (db, pg):
            assert [add_reader(store, "ann@example.com"), add_reader(store, "Bob@Example.com")] == [1, 2]

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(hostile=hostile_body(), claims=claimed_events(), twice=st.booleans())
        def check(hostile, claims, twice):
            body, _, _ = hostile
            events, quarantined = parse_events(body)
            claimed, _ = parse_events(claims)
            batch = events + claimed + (events[:2] if twice else [])
            reports = [store_events(store, batch, quarantined, source="fuzz") for store in (db, pg)]
            assert reports[0] == reports[1]
            assert _stored_rows(db) == _stored_rows(pg)

        check()
        assert _stored_rows(pg), "the fuzzed batches stored nothing: the comparison proved nothing"
