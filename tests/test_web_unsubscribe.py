"""One-click unsubscribe over real HTTP: a POST works at once without cookies, a GET never unsubscribes."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, update

from pipeline.audience.tokens import make_token
from pipeline.settings import Settings
from pipeline.store.models import EngagementEvent, Reader
from pipeline.web import create_app, running_server
from tests.test_engagement_store import add_reader

SECRET = b"test-secret-of-at-least-32-bytes!"  # READERFIRST_SECRET set by the `home` fixture
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def site(db) -> str:
    """The web service on loopback, with the test database and secret."""
    with running_server(create_app(Settings(), db)) as base:
        yield base


@pytest.fixture
def reader(db) -> Reader:
    """A subscribed reader."""
    reader_id = add_reader(db, "ann@example.com")
    with db.session() as session:
        return session.get(Reader, reader_id)


def current(db, reader_id: int) -> Reader:
    """The reader as stored now."""
    with db.session() as session:
        return session.get(Reader, reader_id)


def unsubscribe_events(db) -> list[EngagementEvent]:
    """Unsubscribe events recorded so far."""
    with db.session() as session:
        return list(session.scalars(select(EngagementEvent).where(EngagementEvent.event_type == "unsubscribe")))


def test_one_click_post_unsubscribes_at_once_without_cookies(site, db, reader):
    """An RFC 8058 POST with no cookies is answered 200 (no redirect, no cookie) and the reader is unsubscribed."""
    token = make_token(SECRET, reader.public_id, "u")
    with httpx.Client(follow_redirects=False) as client:
        answer = client.post(f"{site}/u/{token}", data=ONE_CLICK)
    assert answer.status_code == 200 and "set-cookie" not in answer.headers and "location" not in answer.headers
    assert "You are unsubscribed" in answer.text
    after = current(db, reader.id)
    assert (after.status, after.suppressed_reason) == ("unsubscribed", "unsubscribe")
    assert after.suppressed_at is not None
    [event] = unsubscribe_events(db)
    assert (event.reader_id, event.email, event.reason) == (reader.id, "ann@example.com", "one-click")
    assert event.provider_event_id == f"web-u-{reader.public_id}-1"


def test_repeated_one_click_post_is_idempotent(site, db, reader):
    """A second one-click POST answers 200 again, records no second event and keeps the first time."""
    url = f"{site}/u/{make_token(SECRET, reader.public_id, 'u')}"
    assert httpx.post(url, data=ONE_CLICK).status_code == 200
    first = current(db, reader.id).suppressed_at
    assert httpx.post(url, data=ONE_CLICK).status_code == 200
    assert current(db, reader.id).suppressed_at == first
    assert len(unsubscribe_events(db)) == 1


def test_get_shows_a_button_and_does_not_unsubscribe(site, db, reader):
    """A GET (what link scanners send) shows a page whose form POSTs to the same URL, and changes nothing."""
    token = make_token(SECRET, reader.public_id, "u")
    answer = httpx.get(f"{site}/u/{token}")
    assert answer.status_code == 200
    assert f'<form method="post" action="/u/{token}">' in answer.text and "<button" in answer.text
    assert answer.headers["referrer-policy"] == "no-referrer" and answer.headers["cache-control"] == "no-store"
    assert current(db, reader.id).status == "subscribed" and unsubscribe_events(db) == []


def test_the_confirmation_button_unsubscribes(site, db, reader):
    """Submitting the confirmation page's form unsubscribes the reader."""
    answer = httpx.post(f"{site}/u/{make_token(SECRET, reader.public_id, 'u')}", data={"confirm": "yes"})
    assert answer.status_code == 200 and current(db, reader.id).status == "unsubscribed"
    assert unsubscribe_events(db)[0].reason == "unsubscribe page"


def test_a_bounced_reader_who_unsubscribes_keeps_the_bounce_reason(site, db, reader):
    """A reader already suppressed by a hard bounce is marked unsubscribed and keeps the bounce as reason."""
    with db.session() as session:
        session.execute(update(Reader).where(Reader.id == reader.id).values(suppressed_reason="hard_bounce"))
    httpx.post(f"{site}/u/{make_token(SECRET, reader.public_id, 'u')}", data=ONE_CLICK)
    after = current(db, reader.id)
    assert (after.status, after.suppressed_reason) == ("unsubscribed", "hard_bounce")
