"""Loading SendGrid event exports: JSON arrays and JSON Lines, deduplicated, bad lines quarantined by line."""

from __future__ import annotations

import gzip
import json

import pytest
from sqlalchemy import func, select

from pipeline.engagement.ingest import InvalidEventFile, ingest_file
from pipeline.engagement.sendgrid_events import parse_events
from pipeline.engagement.store import store_events
from pipeline.store.models import EngagementEvent, QuarantinedEvent
from tests.test_engagement_sendgrid_events import sendgrid_event


def events(n: int, prefix: str = "f") -> list[dict]:
    """`n` delivered events with distinct ids."""
    return [sendgrid_event("delivered", sg_event_id=f"{prefix}{i}") for i in range(n)]


def stored_ids(db) -> set[str]:
    """provider_event_id of every stored event."""
    with db.session() as session:
        return set(session.scalars(select(EngagementEvent.provider_event_id)))


def quarantine(db) -> list[QuarantinedEvent]:
    """Every quarantined event, oldest first."""
    with db.session() as session:
        return list(session.scalars(select(QuarantinedEvent).order_by(QuarantinedEvent.id)))


def test_jsonl_export_is_loaded_and_bad_lines_quarantined_by_line(db, tmp_path):
    """Good lines are stored; an unreadable line and a malformed event are quarantined naming file and line."""
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(e) for e in events(3)]
    lines.insert(1, '{"event": "open", "sg_event_id": ')  # line 2: cut short
    lines.append(json.dumps(sendgrid_event("open", sg_event_id="f9", timestamp="soon")))  # line 5
    path.write_text("\n".join(lines) + "\n")
    report = ingest_file(db, path)
    assert (report.events, report.stored, report.duplicates, report.quarantined) == (5, 3, 0, 2)
    assert stored_ids(db) == {"f0", "f1", "f2"}
    reasons = [q.reason for q in quarantine(db)]
    assert reasons[0].startswith(f"{path}:2: unreadable line") and reasons[1].startswith(f"{path}:5: timestamp=")
    assert [(p.file, p.line) for p in report.problems] == [(str(path), 2), (str(path), 5)]
    assert quarantine(db)[0].raw == '{"event": "open", "sg_event_id": '


def test_json_array_export_loads_and_a_second_load_adds_nothing(db, tmp_path):
    """A JSON array export is stored; loading it again stores nothing and counts duplicates."""
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events(4), indent=None).replace("}, {", "},\n{"))
    assert ingest_file(db, path).stored == 4
    again = ingest_file(db, path)
    assert (again.stored, again.duplicates) == (0, 4)


def test_malformed_event_in_an_array_is_named_by_its_line(db, tmp_path):
    """In a one-event-per-line array, a malformed event is quarantined with the line it starts on."""
    bad = sendgrid_event("open", sg_event_id="bad", reader_id="ann")
    path = tmp_path / "events.json"
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in [*events(2), bad]) + "\n]\n")
    report = ingest_file(db, path)
    assert (report.stored, report.quarantined) == (2, 1)
    assert quarantine(db)[0].reason == f"{path}:4: reader_id='ann' is not an integer"


@pytest.mark.parametrize(("tail", "line"), [("{oops\n]\n", 6), ("{}\n", 6), ("{}\n]\n]\n", 6), ('"open\n]\n', 5)])
def test_broken_json_array_loads_nothing_and_names_the_line(db, tmp_path, tail, line):
    """A JSON array whose structure is broken (unclosed, closed twice, a string never closed) loads nothing, naming file and line."""
    path = tmp_path / "events.json"
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in events(3)) + ",\n" + tail)
    with pytest.raises(InvalidEventFile, match=rf"{path}:{line}: .*nothing was loaded"):
        ingest_file(db, path)
    assert stored_ids(db) == set()


def test_an_element_of_an_array_that_is_not_json_is_quarantined_by_its_line(db, tmp_path):
    """In a well-formed array, an element that is not JSON (or holds a 5,000-digit number) is quarantined with its line."""
    path = tmp_path / "events.json"
    huge = '{"event": "open", "timestamp": ' + "9" * 5000 + "}"
    path.write_text("[\n" + ",\n".join([*(json.dumps(e) for e in events(3)), "{oops}", huge]) + "\n]\n")
    report = ingest_file(db, path)
    assert (report.stored, report.quarantined) == (3, 2)
    assert stored_ids(db) == {"f0", "f1", "f2"}
    assert [q.raw for q in quarantine(db)] == ["{oops}", huge]
    assert [q.reason.split(": ")[0] for q in quarantine(db)] == [f"{path}:5", f"{path}:6"]


def test_export_overlapping_the_webhook_adds_only_what_is_missing(db, tmp_path):
    """Events the webhook already stored are duplicates when the export is loaded; the rest are added."""
    parsed, _ = parse_events(events(2))
    store_events(db, parsed, [], source="sendgrid-webhook")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events(5)) + "\n")
    report = ingest_file(db, path)
    assert (report.stored, report.duplicates) == (3, 2)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(EngagementEvent)) == 5


def test_gzip_export_with_webhook_bodies_per_line_is_loaded(db, tmp_path):
    """A gzip file whose lines are whole webhook bodies (arrays) loads every event in them."""
    path = tmp_path / "bodies.log.gz"
    with gzip.open(path, "wt") as file:
        file.write(json.dumps(events(3, "a")) + "\r\n" + json.dumps(events(2, "b")) + "\r\n")
    report = ingest_file(db, path)
    assert (report.events, report.stored) == (5, 5)
    assert stored_ids(db) == {"a0", "a1", "a2", "b0", "b1"}


def test_missing_file_is_refused(db, tmp_path):
    """A path that is not a file raises InvalidEventFile naming it."""
    with pytest.raises(InvalidEventFile, match="no such file"):
        ingest_file(db, tmp_path / "nope.jsonl")


@pytest.mark.parametrize(("content", "reason"), [
    ("email,first_name,interests\nann@example.com,Ann,climate\n" * 50, "line 1 is not a SendGrid event"),
    ('{"email": "ann@example.com", "first_name": "Ann"}\n' * 20, "line 1 is not a SendGrid event"),
    ("[1, 2, 3]\n", "line 1 is not a SendGrid event"),
    (json.dumps(sendgrid_event(sg_event_id="x")) + "\nnot json\n" * 3, "3 of its 4 events are not SendGrid events"),
])
def test_a_file_that_is_not_an_event_export_is_refused_whole(db, tmp_path, content, reason):
    """A CSV, an audience file, or a file whose events are mostly not events is refused naming the file, storing nothing."""
    path = tmp_path / "export.csv"
    path.write_text(content)
    with pytest.raises(InvalidEventFile, match=rf"^{path}: not a SendGrid event export: {reason}.*nothing was loaded$"):
        ingest_file(db, path)
    assert stored_ids(db) == set() and quarantine(db) == []


def test_an_export_with_a_few_bad_lines_is_loaded(db, tmp_path):
    """Half the lines bad is still an export: its events are loaded and the bad lines quarantined."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([json.dumps(events(1)[0]), "not json"]) + "\n")
    report = ingest_file(db, path)
    assert (report.stored, report.quarantined) == (1, 1)
