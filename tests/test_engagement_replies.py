"""Replies stored, listed, confirmed as needs, answered, and learned from as the strongest signal."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from pipeline.content.topics import load_taxonomy
from pipeline.engagement.inbound_parse import parse_inbound_form
from pipeline.engagement.learning import REPLY_CREDIT, apply_events
from pipeline.engagement.replies import (InvalidNeed, ReplyNotFound, confirm_reply, list_replies, mark_answered,
                                         store_reply)
from pipeline.emulator.inbound import InboundReply, inbound_form
from pipeline.store.models import EditionSection, ReaderInterest, ReaderNeed
from tests.test_cli import run
from tests.test_web_inbound import DOMAIN, EDITION, ROOT, SECRET, reader_sent, reply_address

TAXONOMY = load_taxonomy(ROOT / "editions" / "topics.yaml")
NOW = dt.datetime(2026, 12, 8, 9, 0)


def receive(db, to: str, text: str, sender: str = "ann@example.com", **fields) -> int:
    """Store one reply posted to `to`, as the web service would; returns its id."""
    body, content_type = inbound_form(InboundReply(sender, to, "Re: this week", text, **fields))
    stored = store_reply(db, parse_inbound_form(body, content_type), secret=SECRET.encode(), reply_domain=DOMAIN,
                         taxonomy=TAXONOMY, now=NOW)
    return stored.reply_id


def test_replies_are_listed_by_edition_topic_and_unanswered(db):
    """The editor's filters select by edition, by suggested topic and by whether it was answered."""
    _, ann = reader_sent(db)
    _, bob = reader_sent(db, "bob@example.com", edition="2026-12-14")
    first = receive(db, reply_address(ann), "Help with fundraising please")
    second = receive(db, reply_address(bob, "2026-12-14"), "Hiring is our problem", sender="bob@example.com")
    mark_answered(db, first)
    assert [r.id for r in list_replies(db, edition=EDITION)] == [first]
    assert [r.id for r in list_replies(db, topic="hiring")] == [second]
    assert [r.id for r in list_replies(db, unanswered=True)] == [second]


def test_confirming_a_reply_records_the_need_for_its_reader(db):
    """`confirm` records the topic as the reader's need from the reply, for the days chosen."""
    reader_id, public_id = reader_sent(db)
    reply_id = receive(db, reply_address(public_id), "We need to hire two engineers")
    until = confirm_reply(db, reply_id, "hiring", days=45, taxonomy=TAXONOMY, today=dt.date(2026, 12, 8))
    assert until == dt.date(2027, 1, 22)
    with db.session() as session:
        [need] = session.scalars(select(ReaderNeed))
    assert (need.reader_id, need.topic, need.until, need.source) == (reader_id, "hiring", until, "reply")
    assert list_replies(db)[0].confirmed_topic == "hiring"


def test_confirming_refuses_unknown_topics_days_and_unattributed_replies(db):
    """An unknown topic, a length not offered, or a reply that names no reader records nothing."""
    _, public_id = reader_sent(db)
    reply_id = receive(db, reply_address(public_id), "hello")
    stray = receive(db, f"reply+{'a' * 48}@{DOMAIN}", "hello from nobody")
    with pytest.raises(InvalidNeed, match="unknown topic"):
        confirm_reply(db, reply_id, "astrology", days=30, taxonomy=TAXONOMY)
    with pytest.raises(InvalidNeed, match="30, 45 or 60"):
        confirm_reply(db, reply_id, "hiring", days=90, taxonomy=TAXONOMY)
    with pytest.raises(ReplyNotFound, match="unattributed"):
        confirm_reply(db, stray, "hiring", days=30, taxonomy=TAXONOMY)
    with db.session() as session:
        assert session.scalars(select(ReaderNeed)).all() == []


def test_a_reply_credits_its_topics_more_than_a_click(db):
    """Learning folds a reply into the topics it names as REPLY_CREDIT clicks, with the message seen."""
    reader_id, public_id = reader_sent(db)
    with db.session() as session:
        session.add(EditionSection(edition_id=EDITION, section_id="s1", position=0, kind="story", title="Hiring",
                                   topics=["hiring"]))
    receive(db, reply_address(public_id), "Funding is what we need")
    report = apply_events(db, half_life_days=60, soft_bounce_limit=3, topic_groups={}, now=NOW)
    assert report.replies == 1 and report.by_type["reply"] == 1
    with db.session() as session:
        learned = {i.topic: (i.learned_clicks, i.learned_exposures)
                   for i in session.scalars(select(ReaderInterest).where(ReaderInterest.reader_id == reader_id))}
    assert learned["funding"] == pytest.approx((REPLY_CREDIT, 1.0))
    assert learned["hiring"] == pytest.approx((0.0, 1.0))  # the section they got was seen, not clicked


def test_the_replies_command_lists_as_json_and_confirms(db, home):
    """`readerfirst replies --json` lists for scripts; `replies confirm` and `replies answered` act on one."""
    _, public_id = reader_sent(db)
    reply_id = receive(db, reply_address(public_id), "Our roadmap needs work")
    listed = json.loads(run(home, "replies", "--json", "--unanswered").stdout)
    assert [(r["id"], r["suggested_topics"], r["attributed"]) for r in listed] == [(reply_id, ["product"], True)]
    confirmed = json.loads(run(home, "replies", "confirm", str(reply_id), "product", "--days", "60", "--json").stdout)
    assert confirmed["topic"] == "product"
    run(home, "replies", "answered", str(reply_id))
    assert json.loads(run(home, "replies", "--json", "--unanswered").stdout) == []
    refused = run(home, "replies", "confirm", "999", "product", check=False)
    assert refused.returncode == 2 and "no such reply" in refused.stderr and "Traceback" not in refused.stderr


def test_replies_are_stored_listed_and_confirmed_on_postgres():
    """On PostgreSQL the replies table takes a reply once, lists it by topic and confirms its need."""
    from tests.tools import postgres_database

    with postgres_database() as pg:
        reader_id, public_id = reader_sent(pg)
        words = "Investors and a seed round are on my mind"
        first = receive(pg, reply_address(public_id), words, message_id="<pg-1@reader.example>")
        assert receive(pg, reply_address(public_id), words, message_id="<pg-1@reader.example>") == first
        assert [r.id for r in list_replies(pg, topic="funding")] == [first]
        confirm_reply(pg, first, "funding", days=60, taxonomy=TAXONOMY, today=dt.date(2026, 12, 8))
        with pg.session() as session:
            assert session.scalars(select(ReaderNeed.topic).where(ReaderNeed.reader_id == reader_id)).all() == ["funding"]
