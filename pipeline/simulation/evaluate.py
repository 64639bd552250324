"""Evaluating personalisation against simulated readers, through the production code paths.

`run_evaluation` builds a fresh temporary database, generates the model's readers and imports
them with `import_audience`, then for each edition: generates an edition file (checked by
`load_edition` / `prepare_edition`), plans every sendable reader with `plan_readers` (the
personalised policy, with a holdout that gets the editorial newsletter), sends with
`deliver_batches`, lets the simulated readers respond, stores their responses as SendGrid
webhook events (`parse_events` + `store_events`, or the real signed webhook when the transport
is the emulator), and learns with `apply_events`. Then the next edition, a week later in
simulated time. Nothing in the loop knows the hidden preferences except the readers
themselves and the measurement (see `measures.py`).

Transports: `record` (default; the Transport protocol, recording who got what without writing
files), `outbox` (the real local outbox into the run's folder, one `.eml` per reader, about 3 ms
each), `emulator` (SendGrid's official client to the in-process SendGrid emulator, whose own
simulated readers post signed events to readerfirst's webhook endpoint). With the emulator,
events carry real time, so no decay happens between editions; with the others, edition n is
sent at START + (n - 1) weeks and events keep that simulated time.

With `replies=True`, messages carry per-reader Reply-To addresses and readers who read one may
write back (`pipeline.simulation.replies`): the reply is stored as the Inbound Parse endpoint
stores it (`store_reply`: attributed by its token, a `reply` event for learning), directly with
`record` and `outbox`, and through the emulator's signed Inbound Parse post with `emulator`.

With `asks=True`, editions carry the ask (READERFIRST_ASK=auto) and readers who open a copy
with it may answer (`pipeline.simulation.asks`): the answer is recorded as the answer page's
POST records it, after the same checks of the signed link (`ask_answers.py`), with `record`
and `outbox`; with `emulator`, the emulator's readers open their answer link on the run's web
service and send the page's form over HTTP, as in `readerfirst demo`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from pipeline.audience.ask_tokens import ask_link_values, ask_merge_name
from pipeline.audience.importer import import_audience
from pipeline.audience.reply_address import make_reply_address
from pipeline.content.ask import ask_topics, asked_in
from pipeline.content.edition import Edition
from pipeline.content.policy import DEFAULT_EXPLORATION, editorial_sections
from pipeline.content.topics import load_taxonomy
from pipeline.delivery.dispatch import Sender, deliver_batches
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.outbox import OutboxTransport
from pipeline.delivery.planning import plan_readers, plan_settings
from pipeline.delivery.preparation import prepare_edition
from pipeline.delivery.transport import MAX_BATCH, Transport
from pipeline.emulator.events import delivery_events
from pipeline.emulator.store import Delivery
from pipeline.engagement.inbound_parse import InboundMessage
from pipeline.engagement.learning import apply_events
from pipeline.engagement.replies import store_reply
from pipeline.engagement.sendgrid_events import parse_events
from pipeline.engagement.store import store_events
from pipeline.errors import ConfigurationError, PipelineError
from pipeline.settings import PROJECT_ROOT
from pipeline.simulation.ask_answers import record_simulated_answer
from pipeline.simulation.asks import AskHabit, simulated_answer
from pipeline.simulation.engagement import response_events, section_link
from pipeline.simulation.inputs import write_audience, write_edition, write_taxonomy
from pipeline.simulation.measures import (
    ArmCounts,
    EditionMeasure,
    ReaderOutcome,
    check_goals,
    json_number,
    lift_over_editions,
    measure_edition,
)
from pipeline.simulation.models import ReaderModel, load_reader_model, reader_model_yaml
from pipeline.simulation.readers import Candidate, ShownSection, SimulatedAudience
from pipeline.simulation.replies import ReplyHabit, simulated_reply
from pipeline.simulation.transport import RecordingTransport
from pipeline.store.database import Database, open_database
from pipeline.store.models import EngagementEvent, LedgerState, Reader, SendLedgerEntry

__all__ = ["AUDIENCE", "EVENT_SOURCE", "START", "TRANSPORTS", "Evaluation", "run_evaluation"]

TRANSPORTS = ("record", "outbox", "emulator")
START = dt.datetime(2027, 1, 4, 7, 0)  # a Monday, 07:00 UTC: edition 1 of every run
AUDIENCE = "simulated"
EVENT_SOURCE = "simulation"
_WEEK = dt.timedelta(days=7)
_PLAN_CHUNK = 5_000  # readers per plan_readers call, as the send-edition flow's chunk size
_STORE_CHUNK = 20_000  # events per store_events transaction
_SECRET = "readerfirst-simulation-signing-key-0001"  # simulated readers only: never a real installation's key
_SENDER = Sender(from_email="newsletter@readerfirst.example", from_name="readerfirst simulation",
                 public_url="http://127.0.0.1:8025", secret=_SECRET.encode())
REPLY_DOMAIN = "replies.simulation.example"


@dataclass
class Evaluation:
    """The figures of a run: one EditionMeasure per edition, the goals, and how the run was made."""

    model: ReaderModel
    seed: int
    readers: int
    transport: str
    policy: str
    holdout_share: float
    measures: list[EditionMeasure] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # The lift over every edition, with a 95% bootstrap interval over readers and editions.
    lift_interval: tuple[float, float, float] = (math.nan, math.nan, math.nan)

    def as_json(self) -> dict[str, Any]:
        """`{"editions": [...]}`, exactly the documented shape."""
        return {"editions": [m.as_json() for m in self.measures]}

    def details(self) -> dict[str, Any]:
        """Everything: the run's settings, every figure per edition (live arms included), the goals."""
        return {"model": self.model.name, "model_file": str(self.model.path) if self.model.path else None,
                "seed": self.seed, "readers": self.readers, "transport": self.transport, "policy": self.policy,
                "holdout_share": self.holdout_share, "seconds": round(self.seconds, 2),
                "editions": [m.details() for m in self.measures], "goals": self.goals,
                "lift_over_editions": {"lift": json_number(self.lift_interval[0]),
                                       "ci": [json_number(self.lift_interval[1]), json_number(self.lift_interval[2])],
                                       "bootstrap": "readers and editions"}}


@dataclass(frozen=True)
class _Delivery:
    """How a run sends: the transport, and for the emulator, how to wait until its events are stored."""

    transport: Transport
    wait_for_events: Callable[[], bool] | None = None
    public_url: str | None = None  # the web service readers' links go to, when one runs


@contextmanager
def _delivery(kind: str, folder: Path, db: Database, model: ReaderModel, seed: int,
              replies: bool = False, asks: bool = False) -> Iterator[_Delivery]:
    """The transport of `kind`, with whatever it needs running for the duration of the run."""
    if kind == "record":
        yield _Delivery(RecordingTransport())
        return
    if kind == "outbox":
        yield _Delivery(OutboxTransport(folder / "outbox"))
        return
    from pipeline.delivery.sendgrid import RetryPolicy, SendGridTransport
    from pipeline.emulator import WebhookSigner, load_signing_key, running_emulator
    from pipeline.settings import Settings
    from pipeline.simulation.asks import AskHabit
    from pipeline.web.app import create_app, running_server

    # The webhook must know the emulator's key before the emulator exists: make the key first.
    key_path = folder / "webhook-key.pem"
    public_key = WebhookSigner(load_signing_key(key_path)).public_key
    inbound = {"SENDGRID_INBOUND_PUBLIC_KEY": public_key, "READERFIRST_REPLY_DOMAIN": REPLY_DOMAIN} if replies else {}
    if replies or asks:  # replies suggest, and the answer page offers, the model's topics
        inbound["READERFIRST_TOPICS"] = str(write_taxonomy(model, folder))
    settings = Settings(READERFIRST_HOME=folder, READERFIRST_SECRET=_SECRET, SENDGRID_WEBHOOK_PUBLIC_KEY=public_key,
                        **inbound)
    with ExitStack() as stack:
        base = stack.enter_context(running_server(create_app(settings, db)))
        emulator = stack.enter_context(running_emulator(
            webhook_url=f"{base}/webhooks/sendgrid", signing_key_path=key_path, reader_model=model.path,
            reader_seed=seed, reader_editions=folder / "editions", event_batch_wait=0.05,
            inbound_url=f"{base}/webhooks/inbound" if replies else None,
            ask_habit=AskHabit() if asks else None))
        transport = SendGridTransport(emulator.api_key, emulator.url, timeout=30.0, retry=RetryPolicy(attempts=3))
        # The webhook stores a batch before it answers: once the emulator has posted everything, it is stored.
        yield _Delivery(transport, lambda: emulator.flush_events(120.0), public_url=base)


def _public_id(seed: int, email: str) -> str:
    """A reader's public id derived from (seed, address) instead of drawn at random."""
    return hashlib.blake2b(f"{seed}\x1f{email}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class _Delivered:
    """One reader's sent ledger entry."""

    reader_id: int
    email: str
    section_ids: tuple[str, ...]
    holdout: bool
    message_id: str
    variant_id: str


class _Run:
    """One evaluation in progress: the database, the audience and the figures so far."""

    def __init__(self, model: ReaderModel, folder: Path, seed: int, db: Database, delivery: _Delivery, *,
                 policy_options: dict[str, Any], half_life_days: float, replies: bool = False, asks: bool = False):
        self.model, self.folder, self.seed, self.db, self.delivery = model, folder, seed, db, delivery
        self.options, self.half_life = policy_options, half_life_days
        self.audience = SimulatedAudience(model, seed)
        self.outcomes: list[list[ReaderOutcome]] = []  # per edition, for the bootstrap over readers and editions
        self.replies = replies
        self.asks = asks
        self.answers = 0  # answers to the ask recorded so far
        self.sender = dataclasses.replace(_SENDER, reply_domain=REPLY_DOMAIN) if replies else _SENDER
        if delivery.public_url is not None:  # links (the ask's answers) lead to the web service that runs
            self.sender = dataclasses.replace(self.sender, public_url=delivery.public_url)

    def import_readers(self, count: int) -> int:
        path = write_audience(self.audience, self.folder / "audience.csv", count, seed=self.seed,
                              first_sent=START.date())
        # The simulated topics are the model's, not the sample edition's: check readers against them.
        taxonomy = self.taxonomy = load_taxonomy(write_taxonomy(self.model, self.folder))
        report = import_audience(self.db, path, AUDIENCE, today=START.date(), taxonomy=taxonomy)
        with self.db.session() as session:
            self.audience_id = session.scalar(select(Reader.audience_id).limit(1))
            # The import draws public ids at random (uuid4), and the holdout and the policy's
            # streams are keyed on them: re-key them from (seed, address) so a run can be repeated.
            rows = session.execute(select(Reader.id, Reader.email)).all()
            session.execute(update(Reader), [{"id": rid, "public_id": _public_id(self.seed, email)}
                                             for rid, email in rows])
        return report.created

    def edition(self, number: int) -> EditionMeasure:
        sent_at = START + _WEEK * (number - 1)
        path = write_edition(self.model, self.folder / "editions", number, seed=self.seed, sent=sent_at.date())
        prepared = prepare_edition(path, PROJECT_ROOT / "templates", newsletter_name=_SENDER.from_name,
                                   ask="auto" if self.asks else "off")
        ledger = SendLedger(self.db, prepared.edition.id)
        ledger.record_sections(prepared.edition)
        reader_ids = ledger.readers_to_plan(self.audience_id)
        for start in range(0, len(reader_ids), _PLAN_CHUNK):
            plan_readers(prepared, ledger, self.audience_id, reader_ids[start:start + _PLAN_CHUNK],
                         today=sent_at.date(), **self.options)
        deliver_batches(prepared, ledger, self.delivery.transport, self.sender, ledger.planned_batches(MAX_BATCH))
        delivered = self._delivered(prepared.edition.id)
        emulated = self.delivery.wait_for_events is not None
        if emulated:
            if not self.delivery.wait_for_events():
                raise PipelineError("the emulator could not post every event to the webhook within 120 s")
        else:
            self._respond(number, prepared.edition, delivered, int(sent_at.replace(tzinfo=dt.UTC).timestamp()))
        live = self._live(prepared.edition.id, delivered)
        outcomes = self._outcomes(number, prepared.edition, delivered)
        self.outcomes.append(outcomes)
        measure = measure_edition(number, prepared.edition.id, outcomes, live)
        apply_events(self.db, half_life_days=self.half_life, soft_bounce_limit=3, topic_groups={},
                     now=None if emulated else sent_at + dt.timedelta(days=6))
        return measure

    def _delivered(self, edition_id: str) -> list[_Delivered]:
        t = SendLedgerEntry
        with self.db.session() as session:
            rows = session.execute(select(t.reader_id, Reader.email, t.picks, t.holdout, t.message_id, t.variant_id)
                                   .join(Reader, Reader.id == t.reader_id)
                                   .where(t.edition_id == edition_id, t.state == LedgerState.SENT)
                                   .order_by(t.reader_id)).all()
        return [_Delivered(rid, email, tuple(p[0] for p in picks), bool(holdout), message_id or "", variant or "")
                for rid, email, picks, holdout, message_id, variant in rows]

    def _shown(self, edition: Edition, section_ids: tuple[str, ...]) -> list[ShownSection]:
        return [ShownSection(sid, edition.by_id[sid].topics, i) for i, sid in enumerate(section_ids)]

    def _respond(self, number: int, edition: Edition, delivered: list[_Delivered], sent_at: int) -> None:
        """Simulate every delivered reader and store what they did as SendGrid webhook events."""
        urls = {s.id: url for s in edition.sections if (url := section_link(s, edition.id)) is not None}
        events: list[dict[str, Any]] = []
        for entry in delivered:
            args = {"edition_id": edition.id, "reader_id": str(entry.reader_id), "variant_id": entry.variant_id,
                    "holdout": "1" if entry.holdout else "0"}
            sent = delivery_events(entry.message_id, [Delivery(entry.message_id, entry.email, "to", args)],
                                   [edition.id], sent_at)
            response = self.audience.respond(entry.email, number, self._shown(edition, entry.section_ids))
            if self.replies and response.opened:
                self._reply(number, edition, entry, sent_at)
            if self.asks and response.opened and asked_in(edition, entry.section_ids):
                self._answer(number, edition, entry, sent_at)
            base = {k: v for k, v in sent[-1].items() if k not in ("event", "sg_event_id", "response", "timestamp")}
            events += sent + response_events(response, base=base, section_urls=urls, delivered_at=sent_at)
        for start in range(0, len(events), _STORE_CHUNK):
            parsed, quarantined = parse_events(events[start:start + _STORE_CHUNK])
            store_events(self.db, parsed, quarantined, source=EVENT_SOURCE)

    def _reply(self, number: int, edition: Edition, entry: _Delivered, sent_at: int) -> None:
        """Store the reply this reader writes, if they write one, as the Inbound Parse endpoint would."""
        text = simulated_reply(self.audience, entry.email, number, self._shown(edition, entry.section_ids),
                               ReplyHabit())
        if text is None:
            return
        address = make_reply_address(_SECRET.encode(), REPLY_DOMAIN, _public_id(self.seed, entry.email), edition.id)
        message = InboundMessage(from_address=entry.email, recipients=(address,), subject="Re: your newsletter",
                                 text=text, message_id=f"<sim-{edition.id}-{entry.reader_id}@readers.simulation>",
                                 raw_size=len(text))
        store_reply(self.db, message, secret=_SECRET.encode(), reply_domain=REPLY_DOMAIN, taxonomy=self.taxonomy,
                    now=dt.datetime.fromtimestamp(sent_at, dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=3))

    def _answer(self, number: int, edition: Edition, entry: _Delivered, sent_at: int) -> None:
        """Record this reader's answer to the ask, if they give one, as the answer page's POST would."""
        answer = simulated_answer(self.audience, entry.email, number, ask_topics(edition),
                                  self._shown(edition, entry.section_ids), AskHabit())
        if answer is None:
            return
        # The link in their copy: made as deliver_batches made it, on the real day (links expire in
        # real days, so they are checked on that day too, not on the simulated one).
        made = dt.datetime.now(dt.UTC).date()
        link = ask_link_values(self.sender.secret, self.sender.public_url, _public_id(self.seed, entry.email),
                               edition.id, [answer.topic], made)[ask_merge_name(answer.topic)]
        # The need runs from the simulated day (planning reads it on simulated days); the answer is
        # stamped now, after the ledger's (real) sending time, as the report orders the two.
        day = dt.datetime.fromtimestamp(sent_at, dt.UTC).date()
        if record_simulated_answer(self.db, self.sender.secret, link, answer, link_day=made, today=day):
            self.answers += 1

    def _live(self, edition_id: str, delivered: list[_Delivered]) -> dict[str, ArmCounts]:
        """What each arm's readers did, read back from the stored events."""
        arm_of = {d.reader_id: "holdout" if d.holdout else "personalised" for d in delivered}
        arms = {"personalised": ArmCounts(), "holdout": ArmCounts()}
        for arm in arm_of.values():
            arms[arm].delivered += 1
        e = EngagementEvent
        with self.db.session() as session:
            rows = session.execute(select(e.reader_id, e.event_type, e.section_id)
                                   .where(e.edition_id == edition_id, e.reader_id.is_not(None))).all()
        clicks, openers = set(), set()
        for reader_id, kind, section_id in rows:
            arm = arms.get(arm_of.get(reader_id, ""))
            if arm is None:
                continue
            if kind == "click" and section_id:
                clicks.add((reader_id, section_id))
            elif kind == "open":
                openers.add(reader_id)
            elif kind == "unsubscribe":
                arm.unsubscribes += 1
            elif kind == "spam_report":
                arm.spam_reports += 1
        for reader_id, _ in clicks:
            arms[arm_of[reader_id]].clicks += 1
        for reader_id in openers:
            arms[arm_of[reader_id]].openers += 1
        return arms

    def _outcomes(self, number: int, edition: Edition, delivered: list[_Delivered]) -> list[ReaderOutcome]:
        """Expected outcomes of each personalised reader under their copy, the editorial one and the oracle's."""
        editorial = self._shown(edition, editorial_sections(edition).section_ids)
        candidates = [Candidate(s.id, s.topics, s.pinned) for s in edition.sections]
        offered = {t for s in edition.sections for t in s.topics}
        outcomes = []
        for entry in delivered:
            if entry.holdout:
                continue
            shown = self._shown(edition, entry.section_ids)
            got = self.audience.expect(entry.email, number, shown)
            usual = self.audience.expect(entry.email, number, editorial)
            best = self.audience.expect(entry.email, number, self.audience.oracle(
                entry.email, number, candidates, k=edition.sections_per_reader, max_per_topic=edition.max_per_topic))
            reader = self.audience.reader(entry.email)
            need = reader.need_active(number) and reader.need in offered
            on_need = [s for s in shown if reader.need in s.topics] if need else []
            need_clicks = (self.model.engagement.open_rate * sum(self.audience.click_chances(entry.email, number, on_need))
                           if on_need else 0.0)
            outcomes.append(ReaderOutcome(got.clicks, usual.clicks, best.clicks, got.unsubscribe, usual.unsubscribe,
                                          drifted=reader.drifted(number), declared=bool(reader.declared),
                                          reader_id=entry.reader_id, need=need, need_served=bool(on_need),
                                          need_clicks=need_clicks))
        return outcomes


def run_evaluation(model: ReaderModel | Path | str, *, editions: int = 8, readers: int = 5_000, seed: int = 1,
                   transport: str = "record", policy: str = "thompson", holdout_share: float = 0.1,
                   exploration: float = DEFAULT_EXPLORATION, half_life_days: float = 60.0,
                   folder: Path | None = None,
                   on_edition: Callable[[EditionMeasure], None] | None = None, replies: bool = False,
                   asks: bool = False) -> Evaluation:
    """Run `editions` editions for `readers` simulated readers of `model`; deterministic for a seed.

    `policy`, `seed` (also the policy's seed), `exploration` and `holdout_share` go to
    `plan_readers` as they are, never from the environment, so a run can be repeated anywhere.
    `folder` keeps the run's database, audience file, editions (and outbox); by default a
    temporary folder, removed afterwards. `on_edition` is called with each edition's figures.
    `replies` lets readers write back, `asks` puts the ask in editions and lets readers answer it
    (see the module docstring).
    """
    if transport not in TRANSPORTS:
        raise ConfigurationError(f"--transport {transport!r}: use one of {', '.join(TRANSPORTS)}")
    if editions < 1 or readers < 1:
        raise ConfigurationError("an evaluation needs at least one edition and one reader")
    started = time.perf_counter()
    options = {"policy": policy, "seed": seed, "exploration": exploration, "holdout_share": holdout_share}
    plan_settings(**options)  # a wrong policy or share fails here, before anything is generated
    with ExitStack() as stack:
        work = folder or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="readerfirst-evaluate-")))
        work.mkdir(parents=True, exist_ok=True)
        if (work / "simulation.db").exists():
            raise ConfigurationError(f"{work} already holds a simulation run: give an empty or new folder")
        if not isinstance(model, ReaderModel):
            model = load_reader_model(model)
        elif model.path is None:
            # The emulator reads the model from a file: both sides must read the same one.
            saved = work / "reader-model.yaml"
            saved.write_text(reader_model_yaml(model), encoding="utf-8")
            model = load_reader_model(saved)
        result = Evaluation(model=model, seed=seed, readers=readers, transport=transport, policy=policy,
                            holdout_share=holdout_share)
        db = open_database(f"sqlite:///{work / 'simulation.db'}")
        stack.callback(db.dispose)
        delivery = stack.enter_context(_delivery(transport, work, db, model, seed, replies, asks))
        run = _Run(model, work, seed, db, delivery, policy_options=options, half_life_days=half_life_days,
                   replies=replies, asks=asks)
        run.import_readers(readers)
        for number in range(1, editions + 1):
            measure = run.edition(number)
            result.measures.append(measure)
            if on_edition is not None:
                on_edition(measure)
        result.lift_interval = lift_over_editions(run.outcomes, seed=seed)
    result.goals = check_goals(result.measures, model.drift.at_edition if model.drift else None)
    result.seconds = time.perf_counter() - started
    return result
