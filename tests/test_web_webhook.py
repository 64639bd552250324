"""The signed Event Webhook over real HTTP: verified, bounded, stored before it is answered, never lost."""

from __future__ import annotations

import base64
import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from pipeline.settings import Settings
from pipeline.store.database import Database
from pipeline.store.models import EngagementEvent, QuarantinedEvent
from pipeline.web import create_app, open_web_database, running_server
from pipeline.web.webhook import failure_summary
from tests.test_engagement_sendgrid_events import sendgrid_event
from tests.test_engagement_store import add_reader
from tests.tools import postgres_database

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
ROOT = Path(__file__).resolve().parent.parent


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key, as SendGrid makes for each account."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers SendGrid adds: a base64 DER signature of timestamp + raw body, and the timestamp."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp, "Content-Type": "application/json"}


def body_of(events: list[dict]) -> bytes:
    """A webhook body as SendGrid sends it: a JSON array ending with CRLF."""
    return json.dumps(events).encode() + b"\r\n"


def batch(n: int, prefix: str = "e", **fields: object) -> list[dict]:
    """`n` events with distinct ids."""
    return [sendgrid_event("delivered", sg_event_id=f"{prefix}{i}", **fields) for i in range(n)]


def event_count(db: Database) -> int:
    """Stored engagement events."""
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(EngagementEvent))


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    """The test's webhook signing key."""
    return new_key()


@pytest.fixture
def serve_app(db, key):
    """Serve the app on loopback with the test key; call it with settings overrides (and a database)."""
    with_servers: list = []

    def start(database: Database | None = None, **overrides: object) -> str:
        settings = Settings(SENDGRID_WEBHOOK_PUBLIC_KEY=public_key_of(key), **overrides)
        manager = running_server(create_app(settings, database or db))
        with_servers.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(with_servers):
        manager.__exit__(None, None, None)


@pytest.fixture
def url(serve_app) -> str:
    """The webhook URL of a server with default settings."""
    return serve_app() + "/webhooks/sendgrid"


def test_valid_signed_batch_is_stored_before_the_answer(url, db, key):
    """A correctly signed batch is answered 200 with counts, and every event is already stored."""
    reader_id = add_reader(db)
    body = body_of(batch(3, reader_id=str(reader_id)))
    answer = httpx.post(url, content=body, headers=signed(key, body))
    assert answer.status_code == 200
    assert answer.json() == {"stored": 3, "duplicates": 0, "quarantined": 0, "unattributed": 0, "refusals": 0}
    with db.session() as session:
        assert set(session.scalars(select(EngagementEvent.reader_id))) == {reader_id}


def test_duplicate_batch_is_stored_once(url, db, key):
    """The same batch delivered twice (SendGrid retries) is answered 200 both times and stored once."""
    body = body_of(batch(50))
    first = httpx.post(url, content=body, headers=signed(key, body))
    second = httpx.post(url, content=body, headers=signed(key, body))
    assert (first.json()["stored"], second.json()["stored"], second.json()["duplicates"]) == (50, 0, 50)
    assert event_count(db) == 50


def test_events_for_unknown_readers_and_editions_are_stored(url, db, key):
    """Events naming no known reader or edition are stored (unattributed), not dropped."""
    body = body_of(batch(2, reader_id="424242", edition_id="1999-01-01") + [
        sendgrid_event("bounce", sg_event_id="no-args", edition_id=None, reader_id=None, variant_id=None)])
    answer = httpx.post(url, content=body, headers=signed(key, body))
    assert answer.json() == {"stored": 3, "duplicates": 0, "quarantined": 0, "unattributed": 2, "refusals": 0}
    with db.session() as session:
        rows = session.execute(select(EngagementEvent.reader_id, EngagementEvent.edition_id)).all()
    assert sorted(rows, key=str) == sorted([(None, "1999-01-01"), (None, "1999-01-01"), (None, None)], key=str)


def test_malformed_event_is_quarantined_and_the_rest_stored(url, db, key):
    """One malformed event is quarantined with its reason while the rest of the batch is stored."""
    events = batch(3)
    events[1]["reader_id"] = "not-a-number"
    body = body_of(events)
    answer = httpx.post(url, content=body, headers=signed(key, body))
    assert answer.status_code == 200 and answer.json()["quarantined"] == 1
    assert event_count(db) == 2
    with db.session() as session:
        [row] = session.scalars(select(QuarantinedEvent))
    assert row.source == "sendgrid-webhook" and "reader_id='not-a-number' is not an integer" in row.reason


def test_without_a_public_key_events_are_refused(db, key, home):
    """With no SENDGRID_WEBHOOK_PUBLIC_KEY the webhook answers 503 saying so, and stores nothing."""
    app = create_app(Settings(SENDGRID_WEBHOOK_PUBLIC_KEY=None), db)
    with running_server(app) as base:
        body = body_of(batch(1))
        answer = httpx.post(base + "/webhooks/sendgrid", content=body, headers=signed(key, body))
    assert answer.status_code == 503 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in answer.text
    assert event_count(db) == 0


def test_public_key_pasted_as_pem_is_accepted(db, key):
    """A public key pasted as PEM (armour and line breaks) verifies like the bare base64 one."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with running_server(create_app(Settings(SENDGRID_WEBHOOK_PUBLIC_KEY=pem), db)) as base:
        body = body_of(batch(1))
        assert httpx.post(base + "/webhooks/sendgrid", content=body, headers=signed(key, body)).status_code == 200


def test_web_database_commits_are_synced_to_disk_and_the_send_path_stays_normal(db, home):
    """The web service's SQLite connections run synchronous=FULL (a 2xx survives power loss); the store's default stays NORMAL."""
    web = open_web_database(f"sqlite:///{home / 'readerfirst.db'}")
    try:
        with web.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        web.dispose()
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_web_database_on_postgres_forces_synchronous_commit(monkeypatch):
    """On PostgreSQL the web service's connections commit synchronously even when the database's default is off."""
    with postgres_database() as pg:
        with pg.engine.begin() as connection:
            name = connection.exec_driver_sql("SELECT current_database()").scalar()
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
        try:
            web = open_web_database(pg.url)
            with web.engine.connect() as connection:
                assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            web.dispose()
            pg.engine.dispose()
            with pg.engine.connect() as connection:  # any other connection gets the database's default
                assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        finally:
            with pg.engine.begin() as connection:
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" RESET synchronous_commit')


def test_failure_summary_names_the_error_never_the_readers_data():
    """A database or disk error is summarised by its classes and code: no statement, no parameters, no path."""
    with postgres_database() as pg:
        add_reader(pg, "secret.reader@example.com")
        with pytest.raises(SQLAlchemyError) as caught:
            add_reader(pg, "secret.reader@example.com")
    assert "secret.reader" in str(caught.value)  # what the log line must not repeat
    assert failure_summary(caught.value) == ("sqlalchemy.exc.IntegrityError from psycopg.errors.UniqueViolation "
                                             "(23505)")
    disk = OSError(errno.ENOSPC, "No space left on device", "/home/ann/readerfirst.db")
    assert failure_summary(disk) == "OSError (ENOSPC)"


# --- the kill test: a real server process killed with SIGKILL in the middle of a batch ---------------


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(env: dict[str, str], port: int) -> subprocess.Popen:
    """The web service in its own process (uvicorn on the app factory), once it answers /healthz."""
    code = ("import uvicorn; uvicorn.run('pipeline.web:create_app', factory=True, host='127.0.0.1', "
            f"port={port}, log_level='warning')")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the service did not start within 60 s")


def test_service_killed_mid_batch_stores_every_event_exactly_once(tmp_path, key):
    """A service killed with SIGKILL mid-batch keeps what it answered, none of the cut batch, and all after the resend."""
    database = tmp_path / "kill.db"
    env = {**os.environ, "READERFIRST_HOME": str(tmp_path / "home"), "READERFIRST_SECRET": "kill-test-secret-of-at-least-32-bytes",
           "READERFIRST_DATABASE_URL": f"sqlite:///{database}", "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_of(key),
           "READERFIRST_WEBHOOK_MAX_BYTES": str(256 * 1024 * 1024)}
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/sendgrid"
    small = [body_of(batch(500, f"s{n}-")) for n in range(3)]
    big = body_of(batch(60_000, "big-"))
    process = start_service(env, port)
    try:
        for body in small:
            assert httpx.post(url, content=body, headers=signed(key, body), timeout=60).status_code == 200
        uploaded = threading.Event()
        outcome: list[object] = []

        def upload() -> Iterator[bytes]:
            for start in range(0, len(big), 1 << 20):
                yield big[start:start + (1 << 20)]
            uploaded.set()

        def send_big() -> None:
            headers = {**signed(key, big), "Content-Length": str(len(big))}
            try:
                outcome.append(httpx.post(url, content=upload(), headers=headers, timeout=120))
            except httpx.TransportError as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send_big)
        sender.start()
        assert uploaded.wait(60)
        time.sleep(0.2)  # the whole body is in: the server is now parsing or storing it
        process.kill()
        process.wait(30)
        sender.join(60)
        assert isinstance(outcome[0], httpx.TransportError), "the batch was answered before the kill"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)

    check = Database(url=f"sqlite:///{database}", engine=create_engine(f"sqlite:///{database}"))
    try:
        # The cut batch left nothing behind: one transaction, never committed.
        assert event_count(check) == 1500
        process = start_service(env, port)
        try:
            # SendGrid retries every batch it got no 2xx for; resending all of them must change nothing else.
            for body in [*small, big]:
                answer = httpx.post(url, content=body, headers=signed(key, body), timeout=120)
                assert answer.status_code == 200
        finally:
            process.kill()
            process.wait(30)
        with check.session() as session:
            ids = list(session.scalars(select(EngagementEvent.provider_event_id)))
        expected = {f"s{n}-{i}" for n in range(3) for i in range(500)} | {f"big-{i}" for i in range(60_000)}
        assert len(ids) == len(expected) and set(ids) == expected
    finally:
        check.dispose()
