"""SendGrid delivery end to end: the official client over HTTP to the emulator on loopback."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import signal
import subprocess
import time

import pytest
from sqlalchemy import insert, select

from pipeline.audience.importer import import_audience
from pipeline.audience.sample import write_sample_csv
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.sendgrid import SendGridRefused
from pipeline.emulator import FaultPlan, running_emulator
from pipeline.store.models import LedgerState, Reader, SendLedgerEntry
from tests.conftest import EDITION, SAMPLE_AUDIENCE
from tests.sendgrid_spec import assert_payload_valid, spec_path

TODAY = dt.date(2026, 12, 1)


@pytest.fixture
def sendgrid_env(monkeypatch, home):
    """Point readerfirst at a fresh emulator (SENDGRID_API_KEY/HOST); every payload is checked against the spec."""

    def start(check_payloads: bool = True, **options):
        if check_payloads:
            spec_path()  # here, not in the emulator's thread: without the spec the test is skipped by name
        observer = assert_payload_valid if check_payloads else None
        context = running_emulator(store_path=home / "emulator.db", payload_observer=observer, **options)
        emulator = context.__enter__()
        started.append(context)
        monkeypatch.setenv("SENDGRID_API_KEY", emulator.api_key)
        monkeypatch.setenv("SENDGRID_API_HOST", emulator.url)
        monkeypatch.setenv("READERFIRST_SENDGRID_PARALLEL", "2")
        # Personalised readers only, so assertions on one reader's reasons cannot meet the holdout.
        monkeypatch.setenv("READERFIRST_HOLDOUT_SHARE", "0")
        return emulator

    started: list = []
    yield start
    for context in started:
        context.__exit__(None, None, None)


def _subscribed(db) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Reader.email).where(Reader.status == "subscribed")))


def test_every_reader_gets_one_personalised_message(prefect_harness, db, sendgrid_env):
    """Each subscribed reader receives exactly one message, with their name, reasons and headers merged."""
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env()
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    summary = send_edition(edition=str(EDITION), audience="sample", today=TODAY)
    counts = emulator.store.count_by_recipient()
    assert set(counts) == _subscribed(db) and set(counts.values()) == {1}
    # The minimum number of requests: one per variant (no variant here has more than 1,000 readers).
    assert summary["requests"] == summary["variants"] == emulator.stats()["accepted"]
    (message,) = emulator.store.messages_for("kemi.moreau.0@example.com")
    assert message.subject == "Kemi, your brief for the week of 7 December"
    assert "Hi Kemi," in message.html and "Hi Kemi," in message.text
    assert "you follow Climate" in message.html and "%%rf" not in message.html + message.text
    assert message.custom_args["edition_id"] == "2026-12-07" and message.custom_args["holdout"] == "0"
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ledger = SendLedger(db, "2026-12-07")
    assert ledger.counts()[LedgerState.SENT] == len(counts)


def test_what_sendgrid_delivers_is_what_readerfirst_renders(prefect_harness, db, sendgrid_env, monkeypatch):
    """Every reader's message, as the emulator applies the request's substitutions, is byte-identical to
    the copy readerfirst merges itself (shared values written into the content, the rest substituted)."""
    from pipeline.delivery.dispatch import _envelope
    from pipeline.delivery.ledger import ClaimedEntry
    from pipeline.flows.runtime import make_sender, prepared_edition
    from pipeline.flows.send_edition import send_edition
    from pipeline.rendering.message import personalise
    from pipeline.settings import load_settings

    emulator = sendgrid_env()
    monkeypatch.setenv("READERFIRST_HOLDOUT_SHARE", "0.3")  # holdout batches share every reason
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    summary = send_edition(edition=str(EDITION), audience="sample", today=TODAY)
    assert summary["holdout"] > 0 and summary["sent"] > 0
    settings = load_settings()
    prepared, sender = prepared_edition(settings, EDITION), make_sender(settings)
    with db.session() as session:
        entries = session.execute(select(Reader.id, Reader.public_id, Reader.email, Reader.first_name,
                                         Reader.last_name, SendLedgerEntry.picks, SendLedgerEntry.holdout,
                                         Reader.timezone)
                                  .join(SendLedgerEntry, SendLedgerEntry.reader_id == Reader.id)
                                  .where(SendLedgerEntry.state == LedgerState.SENT)).all()
    assert len(entries) == summary["sent"]
    for row in entries:
        entry = ClaimedEntry(*row)
        envelope = _envelope(prepared, sender, entry)
        expected = personalise(prepared.layout.variant(tuple(sid for sid, _ in entry.picks)), envelope.values,
                               envelope.subject)
        (message,) = emulator.store.messages_for(entry.email)
        assert (message.subject, message.html, message.text) == (expected.subject, expected.html, expected.text), entry.email


def test_reader_data_cannot_smuggle_substitution_tags(prefect_harness, db, sendgrid_env, tmp_path):
    """A reader named like a substitution tag, HTML or a template gets only their own text, escaped."""
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env()
    people = tmp_path / "people.csv"
    people.write_text("email,first_name,interests\n"
                      "evil@example.com,%%rf:unsubscribe_url%% -first_name- <b>x</b> {{ 7*7 }},climate\n"
                      "plain@example.com,Plain,climate\n")
    import_audience(db, people, "tricky", today=TODAY)
    send_edition(edition=str(EDITION), audience="tricky", today=TODAY)
    (evil,) = emulator.store.messages_for("evil@example.com")
    (plain,) = emulator.store.messages_for("plain@example.com")
    assert "&lt;b&gt;x&lt;/b&gt;" in evil.html and "<b>x</b>" not in evil.html
    assert "{{ 7*7 }}" in evil.html
    # SendGrid substitutes in subjects too: the reader's own tag-like text stays inert there.
    assert evil.subject == ("%\u200b%rf:unsubscribe_url%\u200b% -first_name- <b>x</b> {{ 7*7 }},"
                            " your brief for the week of 7 December")
    assert ("Hi &#37;&#37;rf:unsubscribe_url&#37;&#37; -first_name- &lt;b&gt;x&lt;/b&gt; {{ 7*7 }},"
            " here is what we picked for you") in evil.html
    # The tag-like name expanded nowhere: each reader's own unsubscribe link appears as often as
    # in a plain reader's message, and never inside the greeting.
    evil_link = evil.headers["List-Unsubscribe"].strip("<>")
    plain_link = plain.headers["List-Unsubscribe"].strip("<>")
    assert evil.html.count(evil_link) == plain.html.count(plain_link) == 1
    assert evil.text.count(evil_link) == plain.text.count(plain_link) == 1


def test_faults_still_deliver_every_reader_exactly_once(prefect_harness, db, sendgrid_env):
    """With 30% of requests answered 429, 500 or slowly (certain failures, retried), everyone gets one copy in one run.

    Dropped connections and timeouts are not retried (the request may have gone out); they are
    covered with reconciliation in tests/security/test_security_sending.py.
    """
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env(faults=FaultPlan.spread(0.3, kinds=("429", "500", "slow"), slow_seconds=0.2, seed=11))
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    summary = send_edition(edition=str(EDITION), audience="sample", today=TODAY)
    stats = emulator.stats()
    assert sum(stats["faults"].values()) > 10  # the faults really happened
    assert all(stats["faults"][kind] > 0 for kind in ("429", "500", "slow"))
    counts = emulator.store.count_by_recipient()
    assert set(counts) == _subscribed(db) and set(counts.values()) == {1}
    assert summary["retries"] > 0 and summary["unconfirmed_batches"] == 0


def test_dropped_connection_is_never_retried_and_left_unconfirmed(prefect_harness, db, sendgrid_env):
    """A connection dropped after the request was written is not retried: the batch stays unconfirmed, nothing is sent twice."""
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env(faults=FaultPlan(drop_after=1.0))
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    summary = send_edition(edition=str(EDITION), audience="sample", limit=5, today=TODAY)
    stats = emulator.stats()
    # One request per batch, each accepted once and never repeated, though no answer came back.
    assert stats["requests"] == stats["accepted"] == summary["unconfirmed_batches"] >= 1
    assert emulator.store.total() == 5 and set(emulator.store.count_by_recipient().values()) == {1}
    assert summary["sent"] == 0 and summary["unconfirmed_readers"] == 5
    assert SendLedger(db, "2026-12-07").counts()[LedgerState.SENDING] == 5


def test_refused_request_stops_the_send_and_shows_sendgrids_errors(prefect_harness, db, sendgrid_env, monkeypatch):
    """A 400 on no personalization (here the sender's address) stops the send with SendGrid's message and field."""
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env(check_payloads=False)  # this test sends a payload SendGrid must refuse
    monkeypatch.setenv("READERFIRST_SENDGRID_PARALLEL", "1")
    monkeypatch.setenv("READERFIRST_FROM_EMAIL", "news@@readerfirst.example")
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    with pytest.raises(SendGridRefused) as refused:
        send_edition(edition=str(EDITION), audience="sample", today=TODAY)
    message = str(refused.value)
    assert "HTTP 400" in message and "(field: from.email)" in message
    assert emulator.api_key not in message
    counts = SendLedger(db, "2026-12-07").counts()
    assert counts[LedgerState.SENDING] == 0 and counts[LedgerState.FAILED] == 0  # went back to planned
    assert counts[LedgerState.PLANNED] > 0 and counts[LedgerState.SENT] == emulator.store.total() == 0


def test_reader_sendgrid_refuses_fails_alone_and_the_rest_is_sent(prefect_harness, db, sendgrid_env):
    """A 400 naming one personalization marks that reader failed with SendGrid's message; everyone else is sent."""
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env(check_payloads=False)  # the first request carries an address SendGrid refuses
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    with db.session() as session:  # bad data that slipped past import, e.g. written by another tool
        session.execute(insert(Reader).values(audience_id=1, public_id="f" * 32, email="broken..dots@example.com",
                                              first_name="", last_name="", timezone="", status="subscribed", tags=[]))
    summary = send_edition(edition=str(EDITION), audience="sample", today=TODAY)
    ledger = SendLedger(db, "2026-12-07")
    counts = ledger.counts()
    assert counts[LedgerState.FAILED] == 1 and summary["failed"] == 1 and summary["failed_total"] == 1
    assert counts[LedgerState.SENT] == len(_subscribed(db)) - 1 == emulator.store.total()
    [failed] = ledger.failed()
    assert failed.email == "broken..dots@example.com"
    assert failed.reason == "SendGrid refused this reader: Does not contain a valid address. (field to.0.email)"
    assert set(emulator.store.count_by_recipient().values()) == {1}


def test_a_reader_refused_before_the_rest_went_unanswered_stays_failed(prefect_harness, db, sendgrid_env):
    """SendGrid refuses one reader by name, then accepts the rest but the answer is lost: that reader is failed.

    The rest may be in inboxes and stays unconfirmed for reconciliation; the refused reader was
    never sent. The refusal was once lost with the error, the reader left in the unconfirmed
    batch, and reconciliation then recorded them as sent.
    """
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env(check_payloads=False, faults=FaultPlan(drop_after=1.0))  # every answer lost
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    with db.session() as session:
        session.execute(insert(Reader).values(audience_id=1, public_id="f" * 32, email="broken..dots@example.com",
                                              first_name="", last_name="", timezone="", status="subscribed", tags=[]))
    summary = send_edition(edition=str(EDITION), audience="sample", today=TODAY)
    ledger = SendLedger(db, "2026-12-07")
    counts = ledger.counts()
    [failed] = ledger.failed()
    assert failed.email == "broken..dots@example.com" and failed.reason.startswith("SendGrid refused this reader")
    assert counts[LedgerState.FAILED] == 1 and counts[LedgerState.SENT] == 0
    assert counts[LedgerState.SENDING] == summary["unconfirmed_readers"] == len(_subscribed(db)) - 1
    assert emulator.store.total() == len(_subscribed(db)) - 1  # each accepted once, the refused reader never


def test_refused_personalizations_are_left_out_and_the_rest_sent_in_one_more_request(sendgrid_env):
    """The transport drops the readers a 400 names (non-ASCII local part) and sends the others; the receipt names them."""
    import dataclasses

    from pipeline.delivery.sendgrid import SendGridTransport
    from tests.test_delivery_sendgrid_payload import sample_batch

    emulator = sendgrid_env(check_payloads=False)
    batch = sample_batch(4)
    envelopes = list(batch.envelopes)
    envelopes[1] = dataclasses.replace(envelopes[1], email="jürgen@example.com")
    envelopes[3] = dataclasses.replace(envelopes[3], email="x@bücher.example")
    transport = SendGridTransport(emulator.api_key, emulator.url, timeout=5)
    receipt = transport.send(dataclasses.replace(batch, envelopes=tuple(envelopes)))
    assert set(receipt.refused) == {envelopes[1].reader_id, envelopes[3].reader_id}
    assert all("Does not contain a valid address." in why for why in receipt.refused.values())
    assert receipt.message_id and transport.requests == 2
    assert sorted(emulator.store.count_by_recipient()) == ["reader0@example.com", "reader2@example.com"]
    assert emulator.stats()["rejected"] == {"400": 1}


def test_202_without_message_id_is_recorded_as_unknown():
    """A 202 without X-Message-Id (not sandbox) gives no made-up id: the receipt's message id is None."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    from pipeline.delivery.sendgrid import SendGridTransport
    from tests.test_delivery_sendgrid_payload import sample_batch

    class Accepting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accepting)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        transport = SendGridTransport("SG.test-key", f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
        receipt = transport.send(sample_batch())
    finally:
        server.shutdown()
        server.server_close()
    assert receipt.message_id is None and receipt.delivered and receipt.refused == {}


def test_api_key_never_logged_or_shown(prefect_harness, db, sendgrid_env, monkeypatch, caplog):
    """A wrong key gives SendGrid's 401 message; the key appears in no log line or error."""
    from pipeline.flows.send_edition import send_edition

    sendgrid_env()
    secret_key = "SG.wrong-key-" + "x" * 30
    monkeypatch.setenv("SENDGRID_API_KEY", secret_key)
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SendGridRefused) as refused:
        send_edition(edition=str(EDITION), audience="sample", limit=3, today=TODAY)
    assert "HTTP 401" in str(refused.value)
    assert secret_key not in str(refused.value) and secret_key not in caplog.text
    assert secret_key not in repr(refused.value)


def test_sandbox_validates_and_delivers_nothing(prefect_harness, db, sendgrid_env):
    """--sandbox sends every request in sandbox mode: accepted (200), nothing delivered, ledger unchanged."""
    from pipeline.flows.send_edition import send_edition

    emulator = sendgrid_env()
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    summary = send_edition(edition=str(EDITION), audience="sample", sandbox=True, today=TODAY)
    assert summary["sandbox_validated"] == len(_subscribed(db)) and summary["sent"] == 0
    assert emulator.store.total() == 0 and emulator.stats()["sandbox"] == summary["requests"]
    assert SendLedger(db, "2026-12-07").counts()[LedgerState.SENT] == 0


def test_kill_nine_at_random_points_never_sends_twice(prefect_harness, home, db, sendgrid_env, tmp_path):
    """Killing the sender with SIGKILL at random points, then resuming, never gives anyone two copies."""
    emulator = sendgrid_env(faults=FaultPlan.spread(0.15, kinds=("slow",), slow_seconds=0.15, seed=3))
    audience_file = write_sample_csv(tmp_path / "five-thousand.csv", 5000, seed=21)
    import_audience(db, audience_file, "big", today=TODAY)
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "READERFIRST_CHUNK_SIZE": "500"}
    ledger = SendLedger(db, "2026-12-07")
    rng = random.Random(5)
    kills = 0
    while True:
        process = subprocess.Popen(["readerfirst", "send", str(EDITION), "--audience", "big"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        if kills < 4:
            # Kill at a random moment once this run is really sending (its ledger is moving).
            before = ledger.counts()[LedgerState.SENT]
            deadline = time.monotonic() + 120
            while process.poll() is None and ledger.counts()[LedgerState.SENT] == before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.6))
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                kills += 1
                continue
        process.wait(timeout=300)
        assert process.returncode == 0, process.stderr.read().decode()[-3000:]
        break
    assert kills >= 2, "the test must actually interrupt sends"
    unconfirmed = {entry for batch in ledger.unconfirmed() for entry in _batch_emails(db, batch.batch_id)}
    counts = emulator.store.count_by_recipient()
    subscribed = _subscribed(db)
    assert max(counts.values()) == 1  # nobody ever got two copies
    assert {e for e in subscribed if counts.get(e) != 1} <= unconfirmed
    assert set(counts) <= subscribed


def _batch_emails(db, batch_id: str) -> set[str]:
    from pipeline.store.models import SendLedgerEntry

    with db.session() as session:
        return set(session.scalars(select(Reader.email).join(SendLedgerEntry, SendLedgerEntry.reader_id == Reader.id)
                                   .where(SendLedgerEntry.batch_id == batch_id)))


def test_rate_limit_waits_for_reset(db, sendgrid_env):
    """A 429 makes the transport wait until X-RateLimit-Reset before trying again."""
    from pipeline.delivery.sendgrid import SendGridTransport

    emulator = sendgrid_env(faults=FaultPlan.spread(1.0, kinds=("429",), seed=1))
    waits: list[float] = []
    transport = SendGridTransport(emulator.api_key, emulator.url, sleep=waits.append, timeout=5)
    from tests.test_delivery_sendgrid_payload import sample_batch

    with pytest.raises(Exception, match="failed after 6 attempts"):
        transport.send(sample_batch())
    assert len(waits) == 5 and all(0 <= w <= 2.5 for w in waits)  # no pointless wait after the last try
    assert emulator.store.total() == 0
