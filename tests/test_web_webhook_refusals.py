"""A reader's "no" from SendGrid's Event Webhook is in force once it is answered, not only after learning runs."""

from __future__ import annotations

import datetime as dt
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from pipeline.audience.directory import opted_out_readers, sendable_reader_ids
from pipeline.engagement import learning
from pipeline.engagement.learning import apply_events
from pipeline.engagement.sendgrid_events import parse_events
from pipeline.engagement.store import store_events
from pipeline.store.models import Reader, ReaderInterest
from tests.test_engagement_sendgrid_events import TIMESTAMP, sendgrid_event
from tests.test_engagement_store import add_reader
from tests.test_web_webhook import body_of, key, serve_app, signed  # noqa: F401 - fixtures
from tests.tools import postgres_database

GROUPS = {"1201": "climate"}
AT = dt.datetime(2026, 12, 7)  # TIMESTAMP


def reader_row(db, reader_id: int) -> tuple:
    """(status, suppressed_reason, suppressed_at) of one reader."""
    with db.session() as session:
        row = session.execute(select(Reader.status, Reader.suppressed_reason, Reader.suppressed_at)
                              .where(Reader.id == reader_id)).one()
    return tuple(row)


def opted_out(db, reader_id: int, topic: str) -> bool | None:
    with db.session() as session:
        return session.scalar(select(ReaderInterest.opted_out)
                              .where(ReaderInterest.reader_id == reader_id, ReaderInterest.topic == topic))


def learn(db):
    return apply_events(db, half_life_days=60.0, soft_bounce_limit=3, topic_groups=GROUPS,
                        now=AT + dt.timedelta(days=1))


def post(url: str, key, events: list[dict]) -> dict:
    body = body_of(events)
    answer = httpx.post(url, content=body, headers=signed(key, body))
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("kind, status, reason", [("unsubscribe", "unsubscribed", "unsubscribe"),
                                                  ("spamreport", "unsubscribed", "spam_report"),
                                                  ("bounce", "cleaned", "hard_bounce")])
def test_a_refusal_is_in_force_when_the_webhook_answers(serve_app, key, db, kind, status, reason):
    """An unsubscribe, spam report or hard bounce takes the reader out of every send at once; learning, run
    later, changes nothing more."""
    ann, bob = add_reader(db), add_reader(db, "bob@example.com")
    url = serve_app() + "/webhooks/sendgrid"
    answer = post(url, key, [sendgrid_event(kind, sg_event_id="r1", reader_id=str(ann), type="bounce"),
                             sendgrid_event("delivered", sg_event_id="d1", email="bob@example.com",
                                            reader_id=str(bob))])
    assert answer["refusals"] == 1
    assert reader_row(db, ann) == (status, reason, AT)
    assert sendable_reader_ids(db, 1) == [bob]
    learn(db)
    assert reader_row(db, ann) == (status, reason, AT)


def test_the_first_suppression_stands(serve_app, key, db):
    """A reader who unsubscribed on the web keeps that reason and time; a later spam report only adds an event."""
    ann = add_reader(db)
    earlier = AT - dt.timedelta(days=2)
    with db.session() as session:
        reader = session.get(Reader, ann)
        reader.status, reader.suppressed_reason, reader.suppressed_at = "unsubscribed", "unsubscribe", earlier
    answer = post(serve_app() + "/webhooks/sendgrid", key, [sendgrid_event("spamreport", reader_id=str(ann))])
    assert answer["refusals"] == 1
    assert reader_row(db, ann) == ("unsubscribed", "unsubscribe", earlier)


def test_a_forged_reader_id_suppresses_nobody(serve_app, key, db):
    """An event whose custom args name a reader with another address is not theirs: nobody is suppressed."""
    ann = add_reader(db)
    answer = post(serve_app() + "/webhooks/sendgrid", key,
                  [sendgrid_event("unsubscribe", email="mallory@example.com", reader_id=str(ann))])
    assert (answer["unattributed"], answer["refusals"]) == (1, 0)
    assert reader_row(db, ann) == ("subscribed", None, None)


def test_group_choices_apply_at_once_newest_first(serve_app, key, db):
    """A group opt-out is in force at once; in a batch where the reader took it back later, the opt-in wins,
    and an unmapped group changes nothing."""
    ann, bob = add_reader(db), add_reader(db, "bob@example.com")
    url = serve_app(READERFIRST_TOPIC_GROUPS=GROUPS) + "/webhooks/sendgrid"
    answer = post(url, key, [
        sendgrid_event("group_unsubscribe", sg_event_id="g1", reader_id=str(ann), asm_group_id=1201),
        sendgrid_event("group_resubscribe", sg_event_id="g2", email="bob@example.com", reader_id=str(bob),
                       asm_group_id=1201, timestamp=TIMESTAMP + 60),
        sendgrid_event("group_unsubscribe", sg_event_id="g3", email="bob@example.com", reader_id=str(bob),
                       asm_group_id=1201),
        sendgrid_event("group_unsubscribe", sg_event_id="g4", reader_id=str(ann), asm_group_id=9999)])
    assert answer["refusals"] == 3
    assert (opted_out(db, ann, "climate"), opted_out(db, bob, "climate")) == (True, False)
    assert opted_out_readers(db, [ann, bob], {"climate"}) == {ann}
    learn(db)  # applies the same choices again, in the order they were made: nothing changes
    assert (opted_out(db, ann, "climate"), opted_out(db, bob, "climate")) == (True, False)


def test_refusals_are_applied_in_the_events_transaction_on_postgresql():
    """PostgreSQL's store path applies them too, with the events, and twice is the same as once."""
    with postgres_database() as pg:
        ann = add_reader(pg)
        events, _ = parse_events([sendgrid_event("unsubscribe", reader_id=str(ann)),
                                  sendgrid_event("group_unsubscribe", sg_event_id="g1", reader_id=str(ann),
                                                 asm_group_id=1201)])
        for _ in range(2):  # SendGrid's retry of the same batch
            report = store_events(pg, events, [], source="test", refusals_now=True, topic_groups=GROUPS)
            assert report.refusals == 2
        assert reader_row(pg, ann) == ("unsubscribed", "unsubscribe", AT)
        assert opted_out(pg, ann, "climate") is True


def test_without_refusals_now_the_store_leaves_readers_to_learning(db):
    """Other callers (event file imports, the simulation) store only; learning applies the refusal."""
    ann = add_reader(db)
    events, _ = parse_events([sendgrid_event("unsubscribe", reader_id=str(ann))])
    assert store_events(db, events, [], source="test").refusals == 0
    assert reader_row(db, ann) == ("subscribed", None, None)
    assert learn(db).suppressed == 1
    assert reader_row(db, ann)[:2] == ("unsubscribed", "unsubscribe")


class _PausingAfterGroupChoice:
    """A learning batch's connection that, once its group-choice upsert holds a reader_interests row, waits for the
    webhook's transaction to start and gives it time to take what it can before going on to the readers rows."""

    def __init__(self, connection, locked, started):
        self._connection, self._locked, self._started = connection, locked, started

    def __getattr__(self, name):
        return getattr(self._connection, name)

    def execute(self, statement, *args, **kwargs):
        result = self._connection.execute(statement, *args, **kwargs)
        if statement is learning.GROUP_CHOICE:
            self._locked.set()
            self._started.wait(10)
            time.sleep(0.7)
        return result


def test_the_webhook_and_learning_lock_in_the_same_order_on_postgresql(monkeypatch):
    """A learning batch (a group choice, then a soft bounce's reader change) and a webhook batch (a spam report and a
    group opt-out) of the same reader, interleaved: both take reader_interests before readers, so neither is chosen
    as a deadlock's victim (the webhook took readers first once, and PostgreSQL aborted it)."""
    locked, started = threading.Event(), threading.Event()
    start_batch = learning._BatchWork.__init__

    def pausing(self, run, connection, raw, events):
        start_batch(self, run, connection, raw, events)
        self.connection = _PausingAfterGroupChoice(self.connection, locked, started)

    monkeypatch.setattr(learning._BatchWork, "__init__", pausing)
    errors: dict[str, BaseException] = {}
    with postgres_database() as pg:
        ann = add_reader(pg)
        with pg.session() as session:
            session.add(ReaderInterest(reader_id=ann, topic="climate", declared_weight=1.0))
        stored, _ = parse_events([
            sendgrid_event("group_resubscribe", sg_event_id="old-g", reader_id=str(ann), asm_group_id=1201),
            sendgrid_event("bounce", sg_event_id="old-b", reader_id=str(ann), type="blocked")])
        store_events(pg, stored, [], source="test")
        arriving, _ = parse_events([
            sendgrid_event("spamreport", sg_event_id="new-s", reader_id=str(ann), timestamp=TIMESTAMP + 60),
            sendgrid_event("group_unsubscribe", sg_event_id="new-g", reader_id=str(ann), asm_group_id=1201,
                           timestamp=TIMESTAMP + 60)])

        def learn():
            try:
                learning.apply_events(pg, half_life_days=60.0, soft_bounce_limit=3, topic_groups=GROUPS)
            except Exception as error:  # noqa: BLE001 - the assertion below reports it
                errors["learning"] = error

        def webhook():
            locked.wait(10)
            started.set()
            try:
                store_events(pg, arriving, [], source="webhook", refusals_now=True, topic_groups=GROUPS)
            except Exception as error:  # noqa: BLE001 - the assertion below reports it
                errors["webhook"] = error

        threads = [threading.Thread(target=learn), threading.Thread(target=webhook)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert locked.is_set() and not errors, errors
        assert reader_row(pg, ann)[:2] == ("unsubscribed", "spam_report")
        assert opted_out(pg, ann, "climate") is True  # the newer choice, whichever transaction went first
