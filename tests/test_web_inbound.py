"""SendGrid's Inbound Parse over real HTTP: signed posts become replies with their reader and edition."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from pipeline.audience.reply_address import make_reply_address
from pipeline.emulator.inbound import InboundPoster, InboundReply, inbound_form
from pipeline.emulator.signing import WebhookSigner, load_signing_key
from pipeline.settings import Settings
from pipeline.store.database import Database
from pipeline.store.models import EngagementEvent, Reader, Reply, SendLedgerEntry
from pipeline.web import create_app, running_server
from tests.test_engagement_store import add_reader

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "replies.example.com"
EDITION = "2026-12-07"
SECRET = "test-secret-of-at-least-32-bytes!"  # the `home` fixture's READERFIRST_SECRET


def reader_sent(db: Database, email: str = "ann@example.com", edition: str = EDITION) -> tuple[int, str]:
    """A reader who was sent `edition` (a ledger row); returns (id, public id)."""
    reader_id = add_reader(db, email)
    with db.session() as session:
        reader = session.get(Reader, reader_id)
        session.add(SendLedgerEntry(edition_id=edition, reader_id=reader_id, audience_id=reader.audience_id,
                                    variant_id="v1", picks=[["s1", "you follow Hiring"]], state="sent"))
        return reader_id, reader.public_id


def reply_address(public_id: str, edition: str = EDITION) -> str:
    """The reader's reply address for `edition`, as a send makes it."""
    return make_reply_address(SECRET.encode(), DOMAIN, public_id, edition)


def stored_replies(db: Database) -> list[Reply]:
    """Every stored reply, in id order."""
    with db.session() as session:
        return list(session.scalars(select(Reply).order_by(Reply.id)))


def post(url: str, signer: WebhookSigner | None, reply: InboundReply, **extra: bytes) -> httpx.Response:
    """Post `reply` as SendGrid's Inbound Parse does, signed by `signer` (unsigned when None)."""
    body, content_type = inbound_form(reply, extra=extra or None)
    headers = {"Content-Type": content_type}
    if signer is not None:
        headers.update(signer.headers(str(int(time.time())), body))
    return httpx.post(url, content=body, headers=headers)


@pytest.fixture
def signer() -> WebhookSigner:
    """The signing key of the test's Inbound Parse security policy."""
    return WebhookSigner(load_signing_key(None))


@pytest.fixture
def serve(db, signer):
    """Start the web service with the inbound key and reply domain set (overrides allowed); yields a starter."""
    managers = []

    def start(database: Database | None = None, **overrides: object) -> str:
        settings = Settings(**{"SENDGRID_INBOUND_PUBLIC_KEY": signer.public_key, "READERFIRST_REPLY_DOMAIN": DOMAIN,
                               "READERFIRST_TOPICS": str(ROOT / "editions" / "topics.yaml"), **overrides})
        manager = running_server(create_app(settings, database or db))
        managers.append(manager)
        return manager.__enter__() + "/webhooks/inbound"

    yield start
    for manager in reversed(managers):
        manager.__exit__(None, None, None)


def test_a_signed_reply_is_stored_with_its_reader_edition_words_and_suggested_needs(serve, db, signer):
    """A reply to a reader's address is stored attributed, quotes stripped, needs suggested, and a reply event made."""
    reader_id, public_id = reader_sent(db)
    answer = post(serve(), signer, InboundReply(
        from_address="ann@example.com", to_address=f"Ann's newsletter <{reply_address(public_id)}>",
        subject="Re: This week", text="We are recruiting our first designer.\n\nOn Mon, 7 Dec 2026, "
        "readerfirst wrote:\n> Hiring: how to run interviews\n\nSent from my iPhone\n"))
    assert answer.status_code == 200 and answer.json()["attributed"] is True
    [reply] = stored_replies(db)
    assert (reply.reader_id, reply.edition_id, reply.attributed) == (reader_id, EDITION, True)
    assert reply.text == "We are recruiting our first designer."
    assert reply.suggested_topics == ["hiring", "design"]
    with db.session() as session:
        [event] = session.scalars(select(EngagementEvent))
    assert (event.event_type, event.reader_id, event.edition_id) == ("reply", reader_id, EDITION)


def test_the_same_message_posted_twice_is_stored_once(serve, db, signer):
    """SendGrid's retry of a post (same Message-ID) is acknowledged and changes nothing."""
    _, public_id = reader_sent(db)
    reply = InboundReply("ann@example.com", reply_address(public_id), "Re: hi", "Need help with funding")
    url = serve()
    first, second = post(url, signer, reply), post(url, signer, reply)
    assert (first.status_code, second.status_code, second.json()["duplicate"]) == (200, 200, True)
    assert len(stored_replies(db)) == 1


def test_an_unsigned_post_is_refused_when_protection_is_configured(serve, db, signer):
    """Without the signature headers, or signed by another key, the post is refused 403 and nothing stored."""
    _, public_id = reader_sent(db)
    reply = InboundReply("ann@example.com", reply_address(public_id), "Re: hi", "hello")
    url = serve()
    assert post(url, None, reply).status_code == 403
    assert post(url, WebhookSigner(load_signing_key(None)), reply).status_code == 403
    assert stored_replies(db) == []


def test_the_endpoint_is_absent_until_a_key_is_configured(db, home):
    """With no SENDGRID_INBOUND_PUBLIC_KEY the endpoint answers 404: it never takes unprotected replies."""
    with running_server(create_app(Settings(), db)) as base:
        reply = InboundReply("ann@example.com", "reply+x@r.example.com", "Re", "hi")
        body, content_type = inbound_form(reply)
        assert httpx.post(base + "/webhooks/inbound", content=body,
                          headers={"Content-Type": content_type}).status_code == 404
    assert stored_replies(db) == []


def test_a_locked_database_answers_503_and_the_retry_is_stored(serve, db, signer, home):
    """While another connection holds the write lock the post is answered 503 (SendGrid retries), then stored."""
    _, public_id = reader_sent(db)
    path = home / "readerfirst.db"
    impatient = Database(url=f"sqlite:///{path}",
                         engine=create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2}))
    url = serve(impatient)
    reply = InboundReply("ann@example.com", reply_address(public_id), "Re: hi", "Need help with data")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        locked = post(url, signer, reply)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert locked.status_code == 503 and locked.headers["Retry-After"]
    assert stored_replies(db) == []
    assert post(url, signer, reply).status_code == 200
    assert len(stored_replies(db)) == 1
    impatient.dispose()


def test_the_emulator_posts_replies_the_service_accepts(serve, db, signer):
    """The emulator's Inbound Parse poster signs as SendGrid does, and its post is stored attributed."""
    reader_id, public_id = reader_sent(db)
    poster = InboundPoster(serve(), signer)
    status = poster.post(InboundReply("ann@example.com", reply_address(public_id), "Re: hi",
                                      "I need help with remote work"))
    assert status == 200 and poster.posted == 1
    [reply] = stored_replies(db)
    assert (reply.reader_id, reply.suggested_topics) == (reader_id, ["remote-work"])
