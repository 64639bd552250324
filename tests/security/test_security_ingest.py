"""An unlucky operator's files: hostile lines in an export, and a file that is no export at all, through `events ingest`."""

from __future__ import annotations

import json

from pipeline.engagement.ingest import ingest_file
from tests.test_cli import run
from tests.test_engagement_ingest import events, quarantine, stored_ids
from tests.test_engagement_sendgrid_events import sendgrid_event

HOSTILE_LINES = [
    json.dumps(sendgrid_event("open", sg_event_id="h1", timestamp="9" * 5000)),  # Python's int-string limit
    json.dumps(sendgrid_event("open", sg_event_id="h2", reader_id="9" * 5000)),
    json.dumps(sendgrid_event("click", sg_event_id="h3", url="http://[::1")),  # stored: a click with no section
    '{"event": "open", "sg_event_id": "h4", "timestamp": ' + "9" * 5000 + "}",
    '{"event": "open", "sg_event_id": "h5", "timestamp": NaN}',
    '{"event": "open", "sg_event_id": "h6", "x": ' + "[" * 2000 + "]" * 2000 + "}",
    '{"event": "open", "sg_event_id": "h7", "email": "\\ud800"}',
    json.dumps([sendgrid_event("delivered", sg_event_id="b1")])[:-1] + ', {"event": "open", "timestamp": 1e400}]',
]


def hostile_export(tmp_path, name: str = "hostile.jsonl"):
    """A JSON Lines export of five good events with every kind of hostile line between them."""
    path = tmp_path / name
    lines = [json.dumps(e) for e in events(5)]
    for index, hostile in enumerate(HOSTILE_LINES):
        lines.insert(1 + index, hostile)
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"event": "open", "sg_event_id": "\xff\xfe"}\n')
    return path


def test_hostile_lines_are_quarantined_and_the_good_events_stored(db, tmp_path):
    """Huge numbers, NaN, deep nesting, surrogates, bad bytes and unsplittable urls never stop a load: good events are stored."""
    report = ingest_file(db, hostile_export(tmp_path))
    assert stored_ids(db) == {"f0", "f1", "f2", "f3", "f4", "h3", "b1"}
    assert (report.events, report.stored, report.quarantined) == (15, 7, 8)
    again = ingest_file(db, hostile_export(tmp_path))
    assert (again.stored, again.duplicates, again.quarantined) == (0, 7, 8)
    assert len(quarantine(db)) == 8  # quarantined once, however often the file is loaded


def test_events_ingest_command_refuses_a_csv_and_loads_a_hostile_export(tmp_path):
    """`events ingest` exits 2 with one line naming a CSV, storing nothing of it, and loads a hostile export without a traceback."""
    csv = tmp_path / "audience.csv"
    csv.write_text("email,first_name\n" + "ann@example.com,Ann\n" * 1000)
    export = hostile_export(tmp_path)
    result = run(tmp_path, "events", "ingest", str(csv), str(export), check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {csv}: not a SendGrid event export: line 1 is not a SendGrid event (a JSON object "
                      "with an 'event' key): 'email,first_name'; nothing was loaded"]
    assert f"{export}: 15 events, 7 stored, 0 duplicates, 8 quarantined" in result.stdout
    again = run(tmp_path, "events", "ingest", str(export))
    assert "Traceback" not in again.stderr and f"{export}: 15 events, 0 stored, 7 duplicates" in again.stdout
