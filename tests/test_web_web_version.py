"""The web version over real HTTP: a reader's own copy, from the send ledger, without tracking."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from pipeline.delivery.dispatch import Sender, _envelope
from pipeline.delivery.ledger import ClaimedEntry
from pipeline.flows.runtime import prepared_edition
from pipeline.rendering.links import read_tag, untag_url, web_version_url
from pipeline.rendering.message import personalise
from pipeline.settings import Settings
from pipeline.store.models import LedgerState, Reader, SendLedgerEntry
from pipeline.web import create_app, running_server
from tests.conftest import EDITION
from tests.test_engagement_store import add_reader

SECRET = b"test-secret-of-at-least-32-bytes!"  # READERFIRST_SECRET set by the `home` fixture
PUBLIC_URL = "http://127.0.0.1:8025"
PICKS = [["hiring-clinic", "you said you need help with Hiring until 2027-01-15"],
         ["heat-pumps-offices", "you follow Climate"], ["ai-links", "you follow AI"]]
HREF = re.compile(r'href="([^"]*)"')


def add_sent_copy(db, email: str = "ann@example.com", *, picks=PICKS, state: str = LedgerState.SENT,
                  timezone: str = "America/New_York", edition_id: str = "2026-12-07") -> Reader:
    """A reader who was sent `picks` of the sample edition, as the send ledger records it."""
    reader_id = add_reader(db, email)
    with db.session() as session:
        reader = session.get(Reader, reader_id)
        reader.timezone = timezone
        session.add(SendLedgerEntry(edition_id=edition_id, reader_id=reader_id, audience_id=reader.audience_id,
                                    variant_id="v1", picks=picks, state=state))
        session.flush()
        session.expunge(reader)
        return reader


@pytest.fixture
def site(db):
    """The web service on loopback, reading editions from the shipped editions/ folder."""
    with running_server(create_app(Settings(), db)) as base:
        yield base


def the_email(reader: Reader, picks=PICKS) -> str:
    """The HTML the reader's email had, as the send renders it."""
    settings = Settings()
    prepared = prepared_edition(settings, EDITION)
    sender = Sender(from_email="n@example.com", from_name="n", public_url=settings.public_url, secret=SECRET)
    entry = ClaimedEntry(reader.id, reader.public_id, reader.email, reader.first_name, reader.last_name, picks,
                         False, reader.timezone)
    envelope = _envelope(prepared, sender, entry)
    return personalise(prepared.layout.variant(tuple(s for s, _ in picks)), envelope.values, "").html


def test_web_version_is_the_readers_email_without_tracking(db, site):
    """GET /web/<token> shows the reader's sections, reasons and event time in their zone, with every link untracked."""
    reader = add_sent_copy(db)
    url = web_version_url(SECRET, site, reader.public_id, "2026-12-07")
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["x-robots-tag"].startswith("noindex")
    assert "script-src" not in response.headers["content-security-policy"]
    page, email = response.text, the_email(reader)
    assert HREF.sub("", page) == HREF.sub("", email)  # the same document, links aside
    email_links = HREF.findall(email)
    assert any(read_tag(h.replace("&amp;", "&"))[0] == "2026-12-07" for h in email_links)
    page_links = HREF.findall(page)
    assert len(page_links) == len(email_links)
    assert not [h for h in page_links if "rf_e=" in h or "utm_" in h]
    assert page_links == [untag_url(h.replace("&amp;", "&")).replace("&", "&amp;") for h in email_links]
    # Their sections in their order, the event in New York time with its zone, the date unbroken.
    assert page.index("Hiring clinic") < page.index("Heat pumps cut") < page.index("AI, briefly")
    assert "Thu 10 Dec 2026, 13:00\u00a0EST" in page
    assert "until 2027\u201101\u201115" in page


def test_web_version_renders_in_the_edition_zone_without_a_reader_zone(db, site):
    """A reader with no declared zone sees the event in the event's own zone, abbreviation shown."""
    reader = add_sent_copy(db, timezone="")
    page = httpx.get(web_version_url(SECRET, site, reader.public_id, "2026-12-07")).text
    assert "Thu 10 Dec 2026, 18:00\u00a0GMT" in page


@pytest.mark.parametrize("state", [LedgerState.PLANNED, LedgerState.SKIPPED, LedgerState.FAILED])
def test_no_web_version_of_a_copy_never_sent(db, site, state):
    """A reader planned, skipped or refused for the edition got no email: their link shows the plain 404."""
    reader = add_sent_copy(db, state=state)
    response = httpx.get(web_version_url(SECRET, site, reader.public_id, "2026-12-07"))
    assert response.status_code == 404 and "This link does not work" in response.text


def test_sections_removed_from_the_edition_since_are_left_out(db, site):
    """An edition edited after the send shows the reader's sections that still exist, in their order."""
    reader = add_sent_copy(db, picks=[["gone-section", "r"], *PICKS[1:]])
    page = httpx.get(web_version_url(SECRET, site, reader.public_id, "2026-12-07")).text
    assert page.index("Heat pumps cut") < page.index("AI, briefly") and "Hiring clinic" not in page
