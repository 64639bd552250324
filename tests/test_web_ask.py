"""The ask's answer page over real HTTP: a GET shows, the page's POST records the need and the answer."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from sqlalchemy import select

from pipeline.audience.ask_tokens import FREE_TEXT, make_ask_token
from pipeline.settings import Settings
from pipeline.store.database import Database
from pipeline.store.models import AskAnswer, Reader, ReaderNeed, SendLedgerEntry
from pipeline.web import create_app, running_server
from tests.test_engagement_store import add_reader

SECRET = b"test-secret-of-at-least-32-bytes!"  # READERFIRST_SECRET set by the `home` fixture
TODAY = dt.date(2026, 12, 7)
EDITION = "2026-12-07"


@pytest.fixture
def site(db) -> str:
    """The web service on loopback, its clock fixed at TODAY."""
    with running_server(create_app(Settings(), db, today=lambda: TODAY)) as base:
        yield base


def sent_reader(db: Database, email: str = "ann@example.com", edition: str = EDITION) -> Reader:
    """A reader the edition was sent to (a ledger row), with the ask among their picks."""
    reader_id = add_reader(db, email)
    with db.session() as session:
        reader = session.get(Reader, reader_id)
        session.add(SendLedgerEntry(edition_id=edition, reader_id=reader_id, audience_id=reader.audience_id,
                                    variant_id="v", picks=[["ask", "we ask"]], state="sent"))
    with db.session() as session:
        return session.get(Reader, reader_id)


@pytest.fixture
def reader(db) -> Reader:
    """Ann, sent the edition's ask."""
    return sent_reader(db)


def link(site: str, reader: Reader, topic: str = "hiring", *, edition: str = EDITION,
         expires: dt.date = TODAY + dt.timedelta(days=30)) -> str:
    """The reader's answer link for `topic`."""
    return f"{site}/a/{make_ask_token(SECRET, reader.public_id, edition, topic, expires)}"


def nonce(html: str) -> str:
    """The form token the page embedded."""
    return re.search(r'name="form_token" value="([^"]+)"', html).group(1)


def answer(url: str, **fields: str) -> httpx.Response:
    """Open the link, then submit its form with `fields` (as a browser would)."""
    shown = httpx.get(url)
    assert shown.status_code == 200, shown.text
    return httpx.post(url, data={"form_token": nonce(shown.text), **fields})


def needs(db: Database, reader_id: int) -> dict[str, tuple[dt.date, str, str | None]]:
    """topic -> (until, source, words)."""
    with db.session() as session:
        return {n.topic: (n.until, n.source, n.words)
                for n in session.scalars(select(ReaderNeed).where(ReaderNeed.reader_id == reader_id))}


def answers(db: Database) -> list[tuple[int, str, str, str | None]]:
    """Every recorded answer: (reader, edition, topic, words)."""
    with db.session() as session:
        return [(a.reader_id, a.edition_id, a.topic, a.words)
                for a in session.scalars(select(AskAnswer).order_by(AskAnswer.id))]


def test_get_shows_the_form_and_records_nothing(site, db, reader):
    """Opening an answer link shows the topic, the 30/45/60-day choice and the words box, and records nothing."""
    response = httpx.get(link(site, reader))
    assert response.status_code == 200
    assert "You need help with <strong>Hiring</strong>" in response.text
    assert [int(d) for d in re.findall(r'name="days" value="(\d+)"', response.text)] == [30, 45, 60]
    assert 'name="words"' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert needs(db, reader.id) == {} and answers(db) == []


def test_the_pages_post_records_the_need_with_the_readers_words(site, db, reader):
    """The confirming POST records the need until the chosen day, the words beside it, and the answer."""
    response = answer(link(site, reader), days="60", words="  hiring our first\n data engineer ")
    assert response.status_code == 200
    assert "Saved: you need help with Hiring until 2027-02-05" in response.text
    assert needs(db, reader.id) == {"hiring": (TODAY + dt.timedelta(days=60), "ask", "hiring our first data engineer")}
    assert answers(db) == [(reader.id, EDITION, "hiring", "hiring our first data engineer")]


def test_the_confirmation_offers_the_second_need_and_then_stops(site, db, reader):
    """After the first answer the page offers signed links for a second need; after the second it offers none."""
    first = answer(link(site, reader, "hiring"))
    offered = dict((label, href) for href, label in re.findall(r'<li><a href="([^"]+)">([^<]+)</a>', first.text))
    assert "Hiring" not in offered and "Climate" in offered and "Something else, in my own words" in offered
    second = answer(site + offered["Climate"], days="30")
    assert "Saved: you need help with Climate" in second.text
    assert "And the second thing you need?" not in second.text
    assert set(needs(db, reader.id)) == {"hiring", "climate"}
    assert [a[2] for a in answers(db)] == ["hiring", "climate"]


def test_the_free_text_link_lets_the_reader_choose_the_topic(site, db, reader):
    """The free-text answer's page asks for the closest topic, and refuses a topic outside the list."""
    url = link(site, reader, FREE_TEXT)
    refused = answer(url, topic="astrology", words="stars")
    assert refused.status_code == 400 and "Choose the topic" in refused.text
    assert needs(db, reader.id) == {}
    saved = answer(url, topic="funding", words="a seed round before March")
    assert saved.status_code == 200
    assert needs(db, reader.id)["funding"][2] == "a seed round before March"


def test_answering_twice_counts_one_answer(site, db, reader):
    """The same answer posted twice (a double click) is one answer, with the latest expiry and words."""
    answer(link(site, reader), days="30", words="first")
    answer(link(site, reader), days="45", words="second")
    assert answers(db) == [(reader.id, EDITION, "hiring", "second")]
    assert needs(db, reader.id)["hiring"][0] == TODAY + dt.timedelta(days=45)


def test_a_link_for_an_edition_the_reader_was_not_sent_does_not_work(site, db, reader):
    """A genuine signature over an edition that was never sent to this reader is a plain 400."""
    response = httpx.get(link(site, reader, edition="2027-01-04"))
    assert response.status_code == 400
    assert "This link does not work" in response.text


def test_the_preference_page_shows_a_need_stated_in_the_ask(site, db, reader):
    """A need recorded from the ask appears on the preference page, where the reader can change it."""
    from pipeline.audience.tokens import make_token

    answer(link(site, reader, "data"))
    page = httpx.get(f"{site}/p/{make_token(SECRET, reader.public_id, 'p')}")
    assert re.search(r'<option value="data" selected>', page.text)
