"""A reader's data: exported whole, forgotten whole, and never imported again once forgotten."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

import pytest
from sqlalchemy import func, insert, select

from pipeline.audience.importer import import_audience
from pipeline.audience.privacy import address_digest, export_reader, forget_reader
from pipeline.engagement.store import quarantine_row
from pipeline.web.ask_answers import record_answer
from pipeline.errors import UnknownReader
from pipeline.store.models import (AskAnswer, EngagementEvent, ForgottenAddress, QuarantinedEvent, Reader, ReaderInterest,
                                   ReaderNeed, SendLedgerEntry)

TODAY = dt.date(2026, 12, 1)


@pytest.fixture
def audiences(db, tmp_path):
    """Anna (an IDN domain) in two audiences, with interests, a need, a sent edition and events; Bo beside her."""
    source = tmp_path / "readers.csv"
    source.write_text("email,first_name,interests,needs\n"
                      "Anna@münchen.de,Anna,climate:0.8;ai,hiring\n"
                      "bo@example.com,Bo,design,\n", encoding="utf-8")
    import_audience(db, source, "weekly", today=TODAY)
    import_audience(db, source, "daily", today=TODAY)
    with db.session() as session:
        anna = session.scalars(select(Reader).where(Reader.email == "anna@xn--mnchen-3ya.de")).all()
        session.add(SendLedgerEntry(edition_id="2026-12-07", reader_id=anna[0].id, audience_id=anna[0].audience_id,
                                    variant_id="v1", picks=[["s1", "you follow Climate"]], state="sent",
                                    sent_at=dt.datetime(2026, 12, 7, 7)))
        session.execute(insert(EngagementEvent), [
            {"provider_event_id": f"ev-{n}", "event_type": kind, "email": "anna@xn--mnchen-3ya.de",
             "reader_id": anna[0].id, "edition_id": "2026-12-07", "section_id": "s1",
             "occurred_at": dt.datetime(2026, 12, 7, 9), "received_at": dt.datetime(2026, 12, 7, 9),
             "raw": {"event": kind, "email": "anna@xn--mnchen-3ya.de"}} for n, kind in enumerate(["open", "click"])])
        for raw in ('{"email": "anna@xn--mnchen-3ya.de", "timestamp": "soon"}',
                    '{"email": "bo@example.com", "timestamp": "soon"}'):
            session.add(QuarantinedEvent(**quarantine_row(raw, "bad timestamp", "sendgrid-webhook",
                                                          dt.datetime(2026, 12, 7, 9))))
        bo = session.scalars(select(Reader.id).where(Reader.email == "bo@example.com")).first()
        anna_id = anna[0].id
    # Answers to the ask, in the readers' own words: personal data too.
    record_answer(db, anna_id, "2026-12-07", "data", dt.date(2027, 1, 20), "a warehouse that fits",
                  now=dt.datetime(2026, 12, 7, 10))
    record_answer(db, bo, "2026-12-07", "design", dt.date(2027, 1, 20), "bo's words")
    return source


def test_export_holds_everything_about_the_reader_and_nothing_else(db, audiences):
    """The export lists both audiences' profiles, interests, needs, editions and events, and no other reader."""
    data = export_reader(db, "ANNA@MÜNCHEN.DE")
    assert data["email"] == "anna@münchen.de" and data["email_as_sent"] == "anna@xn--mnchen-3ya.de"
    assert sorted(r["audience"] for r in data["readers"]) == ["daily", "weekly"]
    weekly = next(r for r in data["readers"] if r["audience"] == "weekly")
    assert {i["topic"]: i["declared_weight"] for i in weekly["interests"]} == {"climate": 0.8, "ai": 1.0}
    assert sorted(n["topic"] for n in weekly["needs"]) == ["data", "hiring"]
    assert weekly["ask_answers"] == [{"edition": "2026-12-07", "topic": "data", "words": "a warehouse that fits",
                                     "until": "2027-01-20", "answered_at": "2026-12-07T10:00:00"}]
    assert {"topic": "data", "until": "2027-01-20", "source": "ask", "words": "a warehouse that fits"} in weekly["needs"]
    assert weekly["editions"] == [{"edition": "2026-12-07", "state": "sent",
                                   "sections": [["s1", "you follow Climate"]], "sent_at": "2026-12-07T07:00:00"}]
    assert [e["type"] for e in data["events"]] == ["open", "click"]
    assert "bo@example.com" not in json.dumps(data)


def test_forget_erases_every_row_and_keeps_only_the_digest(db, audiences):
    """After forgetting, no table holds the reader or their address; the other reader is untouched."""
    report = forget_reader(db, "anna@xn--mnchen-3ya.de")
    assert (report.readers, report.events, report.quarantined) == (2, 2, 1)
    with db.session() as session:
        assert session.scalars(select(Reader.email)).all() == ["bo@example.com", "bo@example.com"]
        for model in (EngagementEvent, SendLedgerEntry):
            assert session.scalar(select(func.count()).select_from(model)) == 0
        bo_ids = session.scalars(select(Reader.id)).all()
        for model in (ReaderInterest, ReaderNeed, AskAnswer):
            assert set(session.scalars(select(model.reader_id))) <= set(bo_ids)
        assert session.scalars(select(AskAnswer.words)).all() == ["bo's words"]
        assert "a warehouse" not in str(session.scalars(select(ReaderNeed.words)).all())
        assert [q.raw for q in session.scalars(select(QuarantinedEvent))] == [
            '{"email": "bo@example.com", "timestamp": "soon"}']
        assert session.scalars(select(ForgottenAddress.digest)).all() == [address_digest("anna@xn--mnchen-3ya.de")]
    with pytest.raises(UnknownReader):
        export_reader(db, "anna@münchen.de")


def test_a_forgotten_reader_is_never_imported_again(db, audiences):
    """Re-importing an old list skips the forgotten address, in any form, and says so."""
    forget_reader(db, "anna@münchen.de")
    report = import_audience(db, audiences, "weekly", today=TODAY)
    assert (report.forgotten, report.created) == (1, 0)
    report = import_audience(db, audiences, "brand-new", today=TODAY)
    assert (report.forgotten, report.created) == (1, 1)
    with db.session() as session:
        assert session.scalar(select(func.count()).where(Reader.email == "anna@xn--mnchen-3ya.de")) == 0


def test_unknown_address_changes_nothing(db, audiences):
    """Forgetting an address nobody has raises and keeps no digest."""
    with pytest.raises(UnknownReader):
        forget_reader(db, "nobody@example.com")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ForgottenAddress)) == 0


def test_cli_export_and_forget(home, db, audiences, tmp_path):
    """`readerfirst reader export` writes a private file; `forget` asks for --yes, then erases."""
    env = {**os.environ, "READERFIRST_HOME": str(home)}
    out = tmp_path / "anna.json"
    done = subprocess.run(["readerfirst", "reader", "export", "anna@münchen.de", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["email"] == "anna@münchen.de" and (out.stat().st_mode & 0o077) == 0
    again = subprocess.run(["readerfirst", "reader", "export", "anna@münchen.de", "--out", str(out)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already exists" in again.stderr
    refused = subprocess.run(["readerfirst", "reader", "forget", "anna@münchen.de"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    with db.session() as session:
        assert session.scalar(select(func.count()).where(Reader.email == "anna@xn--mnchen-3ya.de")) == 2
    forgot = subprocess.run(["readerfirst", "reader", "forget", "anna@münchen.de", "--yes"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert forgot.returncode == 0 and "2 profile(s)" in forgot.stdout, forgot.stderr


def test_replies_are_exported_and_forgotten_with_the_reader(db):
    """A reader's replies (attributed, or sent from their address to a forged one) are in the export and erased."""
    from pipeline.content.topics import load_taxonomy
    from pipeline.engagement.inbound_parse import parse_inbound_form
    from pipeline.engagement.replies import list_replies, store_reply
    from pipeline.emulator.inbound import InboundReply, inbound_form
    from tests.test_web_inbound import DOMAIN, ROOT, SECRET, reader_sent, reply_address

    taxonomy = load_taxonomy(ROOT / "editions" / "topics.yaml")
    _, public_id = reader_sent(db, "cleo@example.com")
    reader_sent(db, "dan@example.com")
    for n, (sender, to) in enumerate([("cleo@example.com", reply_address(public_id)),
                                      ("Cleo@Example.com", f"reply+forged@{DOMAIN}"),
                                      ("dan@example.com", f"news@{DOMAIN}")]):
        body, kind = inbound_form(InboundReply(sender, to, "Re", f"my private words {n}"))
        store_reply(db, parse_inbound_form(body, kind), secret=SECRET.encode(), reply_domain=DOMAIN, taxonomy=taxonomy)
    exported = export_reader(db, "cleo@example.com")
    assert sorted(r["text"] for r in exported["replies"]) == ["my private words 0", "my private words 1"]
    report = forget_reader(db, "cleo@example.com")
    assert report.replies == 2
    assert [r.text for r in list_replies(db)] == ["my private words 2"]  # someone else's reply stays
