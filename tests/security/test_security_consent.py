"""Consent under an unlucky database: an acknowledged unsubscribe is never lost, and never a 500."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from pipeline.audience.tokens import make_token
from pipeline.settings import Settings
from pipeline.store.models import EngagementEvent, Reader, ReaderInterest
from pipeline.web import create_app, open_web_database, running_server
from pipeline.web.consent_spool import PREFERENCES, UNSUBSCRIBE, ConsentSpool
from pipeline.web.forms import make_form_token
from tests.test_engagement_store import add_reader

SECRET = b"test-secret-of-at-least-32-bytes!"  # READERFIRST_SECRET set by the `home` fixture
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
_LOCKER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
"""


@contextmanager
def locked(database_file: Path) -> Iterator[None]:
    """Another process holds SQLite's write lock on `database_file` until the block ends."""
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(database_file)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        yield
    finally:
        locker.stdin.write("\n")
        locker.stdin.flush()
        locker.wait(timeout=30)


@pytest.fixture
def web_db(home):
    """The web service's own database pool (short busy timeout, as `readerfirst web` opens it)."""
    database = open_web_database(f"sqlite:///{home / 'readerfirst.db'}", busy_timeout_ms=200)
    yield database
    database.dispose()


@pytest.fixture
def reader(db) -> Reader:
    """A subscribed reader."""
    reader_id = add_reader(db, "ann@example.com")
    with db.session() as session:
        return session.get(Reader, reader_id)


@pytest.fixture
def site(web_db) -> Iterator[str]:
    """The web service on loopback over the short-timeout pool."""
    with running_server(create_app(Settings(), web_db)) as base:
        yield base


def status(db, reader_id: int) -> str:
    """The reader's stored status."""
    with db.session() as session:
        return session.get(Reader, reader_id).status


def wait_for(condition, seconds: float = 15.0) -> bool:
    """Poll `condition` until true or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def spool(home: Path) -> ConsentSpool:
    """The consent spool of the test's home folder."""
    return ConsentSpool(home / "consent-spool")


def test_one_click_under_a_locked_database_is_kept_then_applied(home, db, site, reader):
    """With the write lock held elsewhere, one-click answers 200, keeps the decision on disk, and applies it once free."""
    token = make_token(SECRET, reader.public_id, "u")
    with locked(home / "readerfirst.db"):
        answer = httpx.post(f"{site}/u/{token}", data=ONE_CLICK, timeout=30)
        assert answer.status_code == 200 and "You are unsubscribed" in answer.text
        assert len(spool(home).pending()) == 1
        assert status(db, reader.id) == "subscribed"  # the database could not take it yet
    assert wait_for(lambda: status(db, reader.id) == "unsubscribed")
    assert spool(home).pending() == []
    with db.session() as session:
        [event] = session.scalars(select(EngagementEvent).where(EngagementEvent.event_type == "unsubscribe")).all()
    assert (event.reader_id, event.reason) == (reader.id, "one-click")


def test_neither_database_nor_spool_is_503_and_changes_nothing(home, db, web_db, reader):
    """When the spool cannot be written either, the answer is 503 with Retry-After and nothing is half-done."""
    blocked = home / "not-a-folder"
    blocked.write_text("a file where the spool folder should be")
    app = create_app(Settings(READERFIRST_CONSENT_SPOOL=blocked / "spool"), web_db)
    token = make_token(SECRET, reader.public_id, "u")
    with running_server(app) as site, locked(home / "readerfirst.db"):
        answer = httpx.post(f"{site}/u/{token}", data=ONE_CLICK, timeout=30)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
    assert status(db, reader.id) == "subscribed"
    assert not (blocked / "spool").exists()


def test_preference_save_under_a_locked_database_is_kept_in_order(home, db, site, reader):
    """A preference save the database cannot take is kept, shown as chosen, and applied after the lock."""
    url = f"{site}/p/{make_token(SECRET, reader.public_id, 'p')}"
    form = {"form_token": make_form_token(SECRET, reader.public_id), "topic": ["climate", "ai"],
            "need_topic_1": "hiring", "need_until_1": (dt.date.today() + dt.timedelta(days=40)).isoformat()}
    with locked(home / "readerfirst.db"):
        answer = httpx.post(url, data=form, headers={"Origin": "http://127.0.0.1:8025"}, timeout=30)
        assert answer.status_code == 200 and "Saved" in answer.text, answer.text[:500]
        assert [p.name for p in spool(home).pending()]
    assert wait_for(lambda: not spool(home).pending())
    with db.session() as session:
        declared = {i.topic for i in session.scalars(select(ReaderInterest).where(
            ReaderInterest.reader_id == reader.id, ReaderInterest.declared_weight > 0))}
    assert declared == {"climate", "ai"}


def test_a_broken_database_is_503_on_every_page_never_500(home, db, reader):
    """A database that cannot be read gives 503 pages; a genuine one-click is still kept and answered 200."""
    broken_file = home / "broken.db"
    broken_file.write_bytes(b"this is not a database" * 100)
    from pipeline.store.database import Database, create_database_engine

    broken = Database(url=f"sqlite:///{broken_file}", engine=create_database_engine(f"sqlite:///{broken_file}"))
    u = make_token(SECRET, reader.public_id, "u")
    p = make_token(SECRET, reader.public_id, "p")
    with running_server(create_app(Settings(), broken)) as site:
        for path in (f"/u/{u}", f"/p/{p}"):
            answer = httpx.get(site + path, timeout=30)
            assert (answer.status_code, answer.headers.get("retry-after")) == (503, "30"), path
            assert "not a database" not in answer.text and "SELECT" not in answer.text
        assert httpx.get(site + "/healthz", timeout=30).status_code == 503
        kept = httpx.post(f"{site}/u/{u}", data=ONE_CLICK, timeout=30)
    assert kept.status_code == 200
    [path] = spool(home).pending()
    assert reader.public_id in path.read_text()
    broken.dispose()


def test_kept_unsubscribe_is_applied_before_the_next_send_plans(prefect_harness, home, db, reader, edition_path):
    """An unsubscribe left in the spool (the web service died before applying it) stops the next send to that reader."""
    from pipeline.flows.send_edition import send_edition

    other = add_reader(db, "bo@example.com")
    with db.session() as session:
        audience_id = session.get(Reader, reader.id).audience_id
        session.get(Reader, other).audience_id = audience_id
    spool(home).keep(UNSUBSCRIBE, reader.public_id, via="one-click")
    with db.session() as session:
        from pipeline.store.models import Audience

        audience = session.get(Audience, audience_id).name
    summary = send_edition(edition=str(edition_path), audience=audience, today=dt.date(2026, 12, 1))
    assert summary["sent"] == 1
    assert status(db, reader.id) == "unsubscribed"
    index = (home / "outbox" / "2026-12-07" / "index.jsonl").read_text()
    assert "bo@example.com" in index and "ann@example.com" not in index
    assert spool(home).pending() == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_killed_web_service_loses_no_acknowledged_unsubscribe(home, db, reader):
    """`readerfirst web` killed right after acknowledging an unsubscribe it could only spool: the decision survives."""
    port = _free_port()
    env = {**os.environ, "READERFIRST_HOME": str(home), "READERFIRST_SECRET": SECRET.decode()}
    with locked(home / "readerfirst.db"):
        service = subprocess.Popen(["readerfirst", "web", "--port", str(port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: _answers(port), 60)
            answer = httpx.post(f"http://127.0.0.1:{port}/u/{make_token(SECRET, reader.public_id, 'u')}",
                                data=ONE_CLICK, timeout=30)
            assert answer.status_code == 200
        finally:
            service.send_signal(signal.SIGKILL)
            service.wait(timeout=30)
    assert status(db, reader.id) == "subscribed"
    report = spool(home).drain(db)
    assert (report.applied, report.left) == (1, 0)
    assert status(db, reader.id) == "unsubscribed"


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def test_spool_applies_in_order_once_and_sets_aside_what_it_cannot_read(home, db, reader):
    """Decisions apply oldest first and only once; a hand-edited file is set aside, never applied nor deleted."""
    keep = spool(home)
    keep.keep(PREFERENCES, reader.public_id, offered=["ai", "climate"], checked=["ai"], needs=[])
    keep.keep(PREFERENCES, reader.public_id, offered=["ai", "climate"], checked=["climate"], needs=[])
    (keep.folder / "00000000000000000001-zz.json").write_text('{"kind": "unsubscribe"')
    report = keep.drain(db)
    assert (report.applied, report.unreadable, report.left) == (2, 1, 0)
    with db.session() as session:
        declared = {i.topic for i in session.scalars(select(ReaderInterest).where(
            ReaderInterest.reader_id == reader.id, ReaderInterest.declared_weight > 0))}
    assert declared == {"climate"}  # the later save wins
    assert [p.name for p in keep.folder.glob("*.unreadable")] == ["00000000000000000001-zz.json.unreadable"]
    keep.keep(UNSUBSCRIBE, reader.public_id, via="one-click")
    keep.keep(UNSUBSCRIBE, reader.public_id, via="one-click")
    assert keep.drain(db).applied == 2
    with db.session() as session:
        assert len(session.scalars(select(EngagementEvent).where(EngagementEvent.reader_id == reader.id)).all()) == 1


def test_an_error_in_applying_a_kept_unsubscribe_never_sets_it_aside(home, db, reader, monkeypatch):
    """Only a file that is not a decision is set aside: an unsubscribe whose applying fails stays, and applies later.

    Reading and applying were one step, and an OSError or ValueError from the applying (not the
    database's own error) set the promised unsubscribe aside as unreadable, never to be applied.
    """
    import pipeline.web.consent_spool as consent_spool

    keep = spool(home)
    keep.keep(UNSUBSCRIBE, reader.public_id, via="one-click")
    real = consent_spool.unsubscribe_reader

    def failing(*args, **kwargs):
        raise OSError("the disk under the database hiccuped")

    monkeypatch.setattr(consent_spool, "unsubscribe_reader", failing)
    with pytest.raises(OSError):
        keep.drain(db)
    assert len(keep.pending()) == 1 and not list(keep.folder.glob("*.unreadable"))
    monkeypatch.setattr(consent_spool, "unsubscribe_reader", real)
    assert keep.drain(db).applied == 1
    with db.session() as session:
        assert session.get(Reader, reader.id).status == "unsubscribed"


def test_the_first_decision_kept_makes_its_folders_durable(tmp_path, monkeypatch):
    """Keeping the first decision creates the spool's folders and flushes each new entry in its parent.

    The decision's file and its folder were fsynced, but not the new folder's entry in its
    parent, so a power loss right after the first unsubscribe could lose the whole folder.
    """
    import pipeline.web.consent_spool as consent_spool

    flushed: list[Path] = []
    real = consent_spool._fsync_folder
    monkeypatch.setattr(consent_spool, "_fsync_folder", lambda folder: (flushed.append(Path(folder)), real(folder)))
    folder = tmp_path / "home" / "consent-spool"
    kept = ConsentSpool(folder).keep(UNSUBSCRIBE, "0" * 32, via="one-click")
    assert kept.parent == folder and folder.is_dir()
    assert flushed == [tmp_path, tmp_path / "home", folder]  # each new entry's parent, then the decision's folder
    flushed.clear()
    ConsentSpool(folder).keep(UNSUBSCRIBE, "1" * 32, via="one-click")
    assert flushed == [folder]


def test_concurrent_keeps_lose_nothing(home):
    """Many threads keeping decisions at once leave one whole file each."""
    keep = spool(home)
    threads = [threading.Thread(target=lambda n=n: keep.keep(UNSUBSCRIBE, f"reader-{n}", via="x")) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = keep.pending()
    assert len(kept) == 40 and all(os.stat(p).st_mode & 0o077 == 0 for p in kept)
    assert sorted(p.read_text().split('"public_id":"')[1].split('"')[0] for p in kept) == sorted(
        f"reader-{n}" for n in range(40))
