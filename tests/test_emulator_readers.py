"""Simulated readers inside the SendGrid emulator: signed opens, clicks and unsubscribes, as the evaluation predicts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook

from pipeline.audience.importer import import_audience
from pipeline.delivery.dispatch import Sender, deliver_batches
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.planning import plan_readers
from pipeline.delivery.preparation import prepare_edition
from pipeline.delivery.sendgrid import SendGridTransport
from pipeline.emulator import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGridEmulator,
    running_emulator,
)
from pipeline.emulator.command import build_parser, config_from_args
from pipeline.emulator.readers import SimulatedReaders
from pipeline.emulator.server import EmulatorConfig
from pipeline.engagement.sendgrid_events import parse_events
from pipeline.errors import ConfigurationError
from pipeline.simulation.engagement import section_links_in_html
from pipeline.simulation.evaluate import run_evaluation
from pipeline.simulation.inputs import write_audience
from pipeline.simulation.models import InvalidReaderModel, load_reader_model
from pipeline.simulation.readers import ShownSection, SimulatedAudience

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
SEED = 21

# Eager readers, so that a few dozen of them produce every kind of event.
EAGER = """\
name: eager
topics: {climate: 3, ai: 3, hiring: 2, security: 2, design: 1, funding: 1, remote-work: 1, product: 1, data: 1,
         leadership: 1}
preferences: {concentration: 0.3}
declared: {share: 0.5, topics: 1}
engagement: {open_rate: 0.9, click_rate: 1.0, position_decay: 0.9, machine_open_share: 0.3}
unsubscribe: {base: 0.3, poorly_served: 0.6}
complaint: {base: 0.05, poorly_served: 0.1}
"""


@pytest.fixture
def eager_model(tmp_path) -> Path:
    """The eager reader model as a file."""
    path = tmp_path / "eager.yaml"
    path.write_text(EAGER, encoding="utf-8")
    return path


def send_sample_edition(db, tmp_path: Path, model_path: Path, emulator: SendGridEmulator, readers: int) -> None:
    """Import simulated readers of the model and send them the sample edition through the emulator."""
    audience = SimulatedAudience(load_reader_model(model_path), SEED)
    import_audience(db, write_audience(audience, tmp_path / "audience.csv", readers, seed=SEED), "sim")
    prepared = prepare_edition(EDITION, ROOT / "templates")
    ledger = SendLedger(db, prepared.edition.id)
    ledger.record_sections(prepared.edition)
    plan_readers(prepared, ledger, 1, ledger.readers_to_plan(1), today=dt.date(2026, 12, 7), policy="thompson",
                 seed=1, holdout_share=0.2)
    transport = SendGridTransport(emulator.api_key, emulator.url, timeout=10)
    sender = Sender("news@example.com", "News", "http://127.0.0.1:8025", b"secret")
    deliver_batches(prepared, ledger, transport, sender, ledger.planned_batches(1000))
    assert emulator.flush_events(30)


def test_simulated_readers_post_signed_opens_clicks_and_unsubscribes(db, tmp_path, receiver, eager_model):
    """Every POST verifies with SendGrid's helper, and carries human and machine opens, clicks and unsubscribes."""
    with running_emulator(webhook_url=receiver.url, reader_model=eager_model, reader_seed=SEED,
                          reader_editions=ROOT / "editions") as emulator:
        send_sample_edition(db, tmp_path, eager_model, emulator, readers=60)
        public_key = emulator.public_key
    helper = EventWebhook(public_key)
    for headers, body in receiver.posts:
        assert helper.verify_signature(body.decode("utf-8"), headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])
    events = receiver.events()
    kinds = {(e["event"], e.get("sg_machine_open")) for e in events}
    assert {("open", False), ("open", True), ("click", None), ("unsubscribe", None)} <= kinds
    parsed, quarantined = parse_events(events)
    assert not quarantined
    clicks = [e for e in parsed if e.event_type == "click"]
    assert clicks and all(e.reader_id is not None and e.edition_id == "2026-12-07" and e.section_id for e in clicks)
    assert {e.holdout for e in parsed} == {False, True}


def test_clicked_urls_are_links_of_sections_the_reader_got(db, tmp_path, receiver, eager_model):
    """A click's URL is in the reader's own message and carries rf_s of one of its sections."""
    with running_emulator(webhook_url=receiver.url, reader_model=eager_model, reader_seed=SEED,
                          reader_editions=ROOT / "editions") as emulator:
        send_sample_edition(db, tmp_path, eager_model, emulator, readers=40)
        clicks = [e for e in receiver.events() if e["event"] == "click"]
        assert len(clicks) > 20
        for click in clicks:
            html = emulator.store.messages_for(click["email"])[0].html
            links = section_links_in_html(html)
            section = dict(parse_qsl(urlsplit(click["url"]).query))["rf_s"]
            assert section in links and links[section] == click["url"]


def test_the_emulator_and_the_evaluation_agree_on_every_reader(db, tmp_path, receiver, eager_model):
    """The emulator's clicks, opens and unsubscribes are exactly what SimulatedAudience.respond predicts."""
    audience = SimulatedAudience(load_reader_model(eager_model), SEED)
    topics = {s.id: s.topics for s in prepare_edition(EDITION, ROOT / "templates").edition.sections}
    with running_emulator(webhook_url=receiver.url, reader_model=eager_model, reader_seed=SEED,
                          reader_editions=ROOT / "editions") as emulator:
        send_sample_edition(db, tmp_path, eager_model, emulator, readers=40)
        expected: set[tuple[str, str]] = set()
        for email in {e["email"] for e in receiver.events()}:
            links = section_links_in_html(emulator.store.messages_for(email)[0].html)
            shown = [ShownSection(sid, topics[sid], i) for i, sid in enumerate(links)]
            response = audience.respond(email, 1, shown)
            expected |= {(email, f"click:{s}") for s in response.clicks}
            expected |= {(email, "unsubscribe")} if response.unsubscribed else set()
            expected |= {(email, "spamreport")} if response.spam_report else set()
    seen = {(e["email"], f"click:{dict(parse_qsl(urlsplit(e['url']).query))['rf_s']}") for e in receiver.events()
            if e["event"] == "click"}
    seen |= {(e["email"], e["event"]) for e in receiver.events() if e["event"] in ("unsubscribe", "spamreport")}
    assert seen == expected and len(seen) > 30


def test_evaluation_through_the_emulator_matches_the_recording_transport(tmp_path):
    """Edition 1 through the emulator and the signed webhook gives the same figures as the fast path."""
    model = ROOT / "audiences" / "reader-models" / "focused.yaml"
    fast = run_evaluation(model, editions=1, readers=150, seed=4)
    emulated = run_evaluation(model, editions=1, readers=150, seed=4, transport="emulator", folder=tmp_path)
    assert emulated.as_json() == fast.as_json()
    for arm in ("personalised", "holdout"):
        assert emulated.measures[0].live[arm] == fast.measures[0].live[arm]
    assert fast.measures[0].live["personalised"].clicks > 0


def test_editions_are_numbered_as_the_emulator_meets_them(tmp_path):
    """The first distinct edition id is edition 1, the next 2; an unknown edition's sections get no clicks."""
    readers = SimulatedReaders(load_reader_model(ROOT / "audiences" / "reader-models" / "focused.yaml"), 1, tmp_path)
    assert [readers.edition_number(e) for e in ("a", "b", "a", "c")] == [1, 2, 1, 3]
    html = "".join(f'<a href="https://x.example.com/{i}?rf_e=zz&amp;rf_s=s{i}">x</a>' for i in range(5))
    delivered = [{"event": "delivered", "email": f"r{i}@example.com", "timestamp": 1_800_000_000,
                  "sg_message_id": f"m{i}", "edition_id": "zz"} for i in range(200)]
    events = readers.events_for(delivered, html)
    assert {e["event"] for e in events} >= {"open"}
    assert not [e for e in events if e["event"] == "click"]


def test_reader_model_settings_are_checked_at_start(tmp_path, eager_model):
    """A reader model needs a webhook, and an invalid model file stops the emulator from starting."""
    with pytest.raises(ConfigurationError, match="--webhook-url"):
        EmulatorConfig(api_key="k", reader_model=eager_model)
    broken = tmp_path / "broken.yaml"
    broken.write_text("topics: {a: 1}\n", encoding="utf-8")
    with pytest.raises(InvalidReaderModel, match="topics"):
        SendGridEmulator(EmulatorConfig(api_key="k", webhook_url="http://127.0.0.1:9/x", reader_model=broken))


def test_the_command_line_takes_the_reader_options(tmp_path, eager_model, monkeypatch):
    """--reader-model, --reader-seed and --reader-editions reach the emulator's configuration."""
    monkeypatch.setenv("SENDGRID_API_KEY", "k")
    args = build_parser().parse_args(["--store", str(tmp_path / "s.db"), "--webhook-url",
                                      "http://127.0.0.1:9/h", "--reader-model", str(eager_model), "--reader-seed",
                                      "5", "--reader-editions", str(tmp_path)])
    config = config_from_args(args)
    assert (Path(config.reader_model), config.reader_seed, Path(config.reader_editions)) == (eager_model, 5, tmp_path)
    plain = config_from_args(build_parser().parse_args(["--store", str(tmp_path / "s.db")]))
    assert plain.reader_model is None and plain.reader_seed == 0
