"""The send-edition flow under Prefect's own test harness, with the local outbox."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from pipeline.audience.importer import import_audience
from pipeline.delivery.ledger import SendLedger
from pipeline.errors import InvalidEdition
from pipeline.store.models import LedgerState, Reader
from tests.conftest import SAMPLE_AUDIENCE

TODAY = dt.date(2026, 12, 1)


@pytest.fixture
def audience(db):
    """The sample audience imported into the test database."""
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    with db.session() as session:
        readers = session.execute(select(Reader.email, Reader.status)).all()
    return {email: status for email, status in readers}


def _outbox(home, edition_id="2026-12-07"):
    folder = home / "outbox" / edition_id
    index = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()] if folder.exists() else []
    return folder, index


def test_send_reaches_every_subscribed_reader_once(prefect_harness, home, db, audience, edition_path):
    """Every subscribed reader gets exactly one message; unsubscribed readers get none."""
    from pipeline.flows.send_edition import send_edition

    summary = send_edition(edition=str(edition_path), audience="sample", today=TODAY)
    subscribed = {e for e, s in audience.items() if s == "subscribed"}
    folder, index = _outbox(home)
    sent_to = [entry["email"] for entry in index]
    assert sorted(sent_to) == sorted(subscribed)
    assert len(list(folder.glob("*.eml"))) == len(subscribed)
    assert summary["sent"] == len(subscribed) and summary["unconfirmed_batches"] == 0
    assert summary["batches"] == summary["variants"]  # every variant fits one batch of <= 1,000
    counts = SendLedger(db, "2026-12-07").counts()
    assert counts[LedgerState.SENT] == len(subscribed) and counts[LedgerState.PLANNED] == 0


def test_rerun_sends_nobody_twice(prefect_harness, home, db, audience, edition_path):
    """Running the same edition again sends to no one who already has it."""
    from pipeline.flows.send_edition import send_edition

    send_edition(edition=str(edition_path), audience="sample", today=TODAY)
    again = send_edition(edition=str(edition_path), audience="sample", today=TODAY)
    _, index = _outbox(home)
    assert again["sent"] == 0
    assert len(index) == len({entry["email"] for entry in index})


def test_limit_then_rest_covers_everyone_once(prefect_harness, home, db, audience, edition_path):
    """--limit sends to the first N readers; the next run sends to the rest, nobody twice."""
    from pipeline.flows.send_edition import send_edition

    first = send_edition(edition=str(edition_path), audience="sample", limit=25, today=TODAY)
    assert first["sent"] == 25
    rest = send_edition(edition=str(edition_path), audience="sample", today=TODAY)
    _, index = _outbox(home)
    emails = [entry["email"] for entry in index]
    assert len(emails) == len(set(emails)) == first["sent"] + rest["sent"]
    assert set(emails) == {e for e, s in audience.items() if s == "subscribed"}


def test_to_sends_only_that_reader(prefect_harness, home, db, audience, edition_path):
    """--to sends to that one reader and records it."""
    from pipeline.flows.send_edition import send_edition

    target = sorted(e for e, s in audience.items() if s == "subscribed")[3]
    summary = send_edition(edition=str(edition_path), audience="sample", to=target.upper(), today=TODAY)
    _, index = _outbox(home)
    assert summary["sent"] == 1 and [entry["email"] for entry in index] == [target]


def test_to_finds_a_unicode_domain_reader_and_sends_the_idna_address(prefect_harness, home, db, edition_path,
                                                                     tmp_path):
    """--to with the Unicode form finds the reader stored in IDNA form, and the message goes to the IDNA address."""
    from pipeline.flows.send_edition import send_edition

    people = tmp_path / "idn.csv"
    people.write_text("email,first_name,interests\nanna@münchen.de,Anna,climate\nbo@example.com,Bo,ai\n",
                      encoding="utf-8")
    import_audience(db, people, "idn", today=TODAY)
    summary = send_edition(edition=str(edition_path), audience="idn", to="Anna@MÜNCHEN.de", today=TODAY)
    _, index = _outbox(home)
    assert summary["sent"] == 1 and [entry["email"] for entry in index] == ["anna@xn--mnchen-3ya.de"]


def test_dry_run_selects_everyone_and_sends_nothing(prefect_harness, home, db, audience, edition_path):
    """A dry run selects and renders for everyone but writes no message and no ledger entry."""
    from pipeline.flows.send_edition import send_edition

    summary = send_edition(edition=str(edition_path), audience="sample", dry_run=True, today=TODAY)
    assert summary["readers_selected"] == sum(s == "subscribed" for s in audience.values())
    assert summary["sent"] == 0
    assert not (home / "outbox").exists()
    assert sum(SendLedger(db, "2026-12-07").counts().values()) == 0


def test_invalid_edition_sends_nothing(prefect_harness, home, db, audience, edition_dir):
    """An edition that fails validation stops the flow before anything is planned or sent."""
    from pipeline.flows.send_edition import send_edition

    broken = edition_dir / "2026-12-07.yaml"
    broken.write_text(broken.read_text().replace('alt: "Two heat pump units on an office roof under a grey sky"',
                                                 'alt: ""'))
    with pytest.raises(InvalidEdition, match="alt text is required"):
        send_edition(edition=str(broken), audience="sample", today=TODAY)
    assert not (home / "outbox").exists()
    assert sum(SendLedger(db, "2026-12-07").counts().values()) == 0


def test_unconfirmed_batch_is_reported_and_never_resent(prefect_harness, home, db, audience, edition_path):
    """A batch claimed but never confirmed (a crash) is reported and not sent again by a rerun."""
    from pipeline.delivery.planning import plan_readers
    from pipeline.delivery.preparation import prepare_edition
    from pipeline.flows.send_edition import send_edition
    from tests.conftest import TEMPLATES

    prepared = prepare_edition(edition_path, TEMPLATES)
    ledger = SendLedger(db, prepared.edition.id)
    audience_id = 1
    plan_readers(prepared, ledger, audience_id, ledger.readers_to_plan(audience_id), today=TODAY)
    batch = ledger.planned_batches(1000)[0]
    claimed, _ = ledger.claim(batch, "crashed-batch", "outbox")  # the process died right after this

    summary = send_edition(edition=str(edition_path), audience="sample", today=TODAY)
    _, index = _outbox(home)
    crashed = {entry.email for entry in claimed}
    assert crashed and not crashed & {entry["email"] for entry in index}
    assert summary["unconfirmed_batches"] == 1 and summary["unconfirmed_readers"] == len(crashed)
    assert [b.batch_id for b in ledger.unconfirmed()] == ["crashed-batch"]


def test_a_database_error_that_passes_delays_a_batch_and_loses_nobody(prefect_harness, home, db, audience,
                                                                      edition_path, monkeypatch):
    """A busy database fails one batch's confirmation once: the rest still goes out, and the run reports it.

    The error once stopped every other batch of the send (as a refused request does), and the
    task's retry then found the send stopped and returned: most of the audience stayed planned
    and the flow reported no failure.
    """
    from sqlalchemy.exc import OperationalError

    from pipeline.flows.send_edition import send_edition

    monkeypatch.setenv("READERFIRST_CHUNK_SIZE", "100")  # several batches and groups
    confirm, calls = SendLedger.confirm, []

    def busy_once(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise OperationalError("UPDATE send_ledger", {}, Exception("database is locked"))
        return confirm(self, *args, **kwargs)

    monkeypatch.setattr(SendLedger, "confirm", busy_once)
    summary = send_edition(edition=str(edition_path), audience="sample", today=TODAY)
    subscribed = {e for e, s in audience.items() if s == "subscribed"}
    counts = SendLedger(db, "2026-12-07").counts()
    _, index = _outbox(home)
    sent_to = [entry["email"] for entry in index]
    assert len(sent_to) == len(set(sent_to)) == len(subscribed)  # everyone once: the batch went out before the error
    assert counts[LedgerState.PLANNED] == 0
    # The batch whose confirmation failed is reported unconfirmed (reconciliation settles it), never resent.
    assert summary["unconfirmed_batches"] == 1 and counts[LedgerState.SENDING] == summary["unconfirmed_readers"] > 0
    # (The run's own count misses what the failed attempt sent before its error; the ledger's total has it.)
    assert summary["sent_total"] + summary["unconfirmed_readers"] == len(subscribed) and not summary["failure"]


def test_a_topic_opt_out_made_during_the_send_is_honoured(prefect_harness, home, db, audience, edition_path,
                                                          monkeypatch):
    """A reader who opts out of a topic of their planned copy before it is sent gets a copy without it, once.

    The claim re-checked the reader's status but not their topics, and the copy planned before
    the opt-out was sent as it was.
    """
    from pipeline.content.edition import load_edition
    from pipeline.flows.send_edition import send_edition
    from pipeline.store.models import ReaderInterest
    from pipeline.store.upsert import upsert_rows

    edition = load_edition(edition_path)
    claim, opted = SendLedger.claim, {}

    def topics(section_id):  # the ask the preparation adds has none
        return edition.by_id[section_id].topics if section_id in edition.by_id else ()

    def opt_out_first(self, batch, batch_id, transport):
        if not opted:  # after planning, before the first batch is claimed: one reader leaves a topic of their copy
            [entry] = [e for e in self.entries([batch.first_reader])]
            topic = next(t for sid, _ in entry.picks for t in topics(sid))
            with db.session() as session:
                upsert_rows(session.connection(), ReaderInterest.__table__,
                            [{"reader_id": entry.reader_id, "topic": topic, "opted_out": True,
                              "learned_clicks": 0.0, "learned_exposures": 0.0}], ["reader_id", "topic"], ["opted_out"])
            opted[entry.reader_id] = topic
        return claim(self, batch, batch_id, transport)

    monkeypatch.setattr(SendLedger, "claim", opt_out_first)
    summary = send_edition(edition=str(edition_path), audience="sample", today=TODAY)
    [(reader_id, topic)] = opted.items()
    _, index = _outbox(home)
    subscribed = {e for e, s in audience.items() if s == "subscribed"}
    assert sorted(entry["email"] for entry in index) == sorted(subscribed)  # everyone once, that reader too
    [mine] = [entry for entry in index if entry["reader_id"] == reader_id]
    assert mine["sections"] and not any(topic in topics(sid) for sid in mine["sections"])
    assert summary["replanned"] == 1 and SendLedger(db, "2026-12-07").counts()[LedgerState.PLANNED] == 0


def test_messages_are_complete_and_tagged(prefect_harness, home, db, audience, edition_path):
    """Each .eml has text and HTML parts, one-click unsubscribe headers and tagged links."""
    from pipeline.flows.send_edition import send_edition

    send_edition(edition=str(edition_path), audience="sample", limit=5, today=TODAY)
    folder, index = _outbox(home)
    for entry in index:
        mail = message_from_bytes((folder / entry["file"]).read_bytes(), policy=policy.default)
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["List-Unsubscribe"].startswith("<http")
        html = mail.get_body(("html",)).get_content()
        text = mail.get_body(("plain",)).get_content()
        assert "rf_e=2026-12-07" in html and "rf_s=" in html
        assert "Why you see this" in html and "Why you see this" in text
        assert "%%rf:" not in html and "%%rf:" not in text


def test_artifacts_published(prefect_harness, home, db, audience, edition_path):
    """The flow publishes a summary table artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from pipeline.flows.send_edition import send_edition

    send_edition(edition=str(edition_path), audience="sample", limit=3, today=TODAY)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["send-edition-summary"])))
    assert artifacts and artifacts[0].type == "table"
    assert "readers_per_second" in str(artifacts[0].data)


def test_edition_folder_sends_newest(prefect_harness, home, db, audience, edition_dir):
    """Given a folder, the flow sends its newest edition (what the weekly schedule does)."""
    from pipeline.flows.send_edition import send_edition

    newer = edition_dir / "2026-12-14.yaml"
    shutil.copy(edition_dir / "2026-12-07.yaml", newer)
    newer.write_text(newer.read_text().replace("id: 2026-12-07", "id: 2026-12-14"))
    summary = send_edition(edition=str(edition_dir), audience="sample", limit=2, today=TODAY)
    assert summary["edition"] == "2026-12-14"


def test_finished_in_turn_keeps_a_window_of_tasks_and_none_it_has_handed_back(prefect_harness):
    """Tasks run at most `window` at once, each comes back once, and a future handed back is no longer held.

    On Dask a future holds its task's final state and result: `prefect.futures.as_completed`
    kept every one of a send's futures to the end. (In a thread pool Prefect itself keeps each
    task's engine, result included, for the flow's transaction: not this helper's doing.)
    """
    import gc
    import threading
    import time
    import weakref

    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import as_completed
    from prefect.task_runners import ThreadPoolTaskRunner

    from pipeline.flows.send_edition import finished_in_turn

    lock = threading.Lock()
    running, most = [0], [0]

    @task(cache_policy=NO_CACHE)
    def work(number: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 if number % 3 else 0.05)  # some finish out of order
        with lock:
            running[0] -= 1
        return number

    def all_at_once(submit, items, window):
        return as_completed([submit(item) for item in items])

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def fan_out(helper) -> tuple[list[int], int]:
        seen, watched, alive = [], [], 0
        for future in helper(work.submit, range(24), 3):
            seen.append(future.result())
            watched.append(weakref.ref(future))
            del future
            gc.collect()
            alive = max(alive, sum(ref() is not None for ref in watched))
        return seen, alive

    seen, alive = fan_out(finished_in_turn)
    assert sorted(seen) == list(range(24)) and seen != list(range(24))  # all, once, as they finished
    assert most[0] <= 3  # 8 threads, but never more than the window running
    assert alive == 0  # nothing holds a future once handed back
    most[0] = 0
    seen, alive = fan_out(all_at_once)  # the check itself: as_completed holds them all, and runs 8 at once
    assert sorted(seen) == list(range(24)) and alive == 24 and most[0] > 3
