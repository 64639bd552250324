"""The web service: SendGrid's Event Webhook and Inbound Parse, one-click unsubscribe, the preference centre,
the ask's answers and web versions.

`create_app()` builds the Starlette application from the settings; `serve()` runs it with
uvicorn; `running_server()` runs an application on a free loopback port in a thread (tests,
demos). The service opens its own database connection pool with a short SQLite busy timeout:
a webhook request that waited 30 s for a lock would be timed out by SendGrid anyway, and a
quick 503 gets the batch retried sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pipeline.content.topics import Taxonomy, load_taxonomy
from pipeline.settings import Settings, load_settings
from pipeline.store.database import Database, open_database
from pipeline.web.ask import ask_page, ask_submit
from pipeline.web.consent_spool import ConsentSpool
from pipeline.web.inbound import inbound_signature_check, receive_inbound_parse
from pipeline.web.pages import unavailable
from pipeline.web.preferences import preferences_page, preferences_submit
from pipeline.web.unsubscribe import unsubscribe_now, unsubscribe_page
from pipeline.web.web_version import web_version_page
from pipeline.web.webhook import SignatureCheck, receive_sendgrid_events

__all__ = ["WebState", "create_app", "serve", "open_web_database", "running_server", "WEB_BUSY_TIMEOUT_MS"]

WEB_BUSY_TIMEOUT_MS = 5_000
SPOOL_DRAIN_SECONDS = 2.0  # how often waiting reader decisions are offered to the database again

log = logging.getLogger(__name__)


@dataclass
class WebState:
    """What every request handler needs: settings, database, signing secret, taxonomy, the clock."""

    settings: Settings
    db: Database
    secret: bytes
    taxonomy: Taxonomy
    signature_check: SignatureCheck
    inbound_check: SignatureCheck  # Inbound Parse posts (replies); off (404) until a key is set
    today: Callable[[], dt.date]
    spool: ConsentSpool  # decisions acknowledged while the database could not take them


def open_web_database(url: str, *, busy_timeout_ms: int = WEB_BUSY_TIMEOUT_MS, synchronous: str = "FULL") -> Database:
    """The database for the web service: migrated; every commit durable before it returns.

    The webhook answers 2xx only once a batch is committed, and SendGrid never sends an
    acknowledged batch again, so a commit must survive power loss, not only a crash of the
    process. On SQLite (WAL) that takes `synchronous=FULL`: the WAL is synced at every commit
    (NORMAL, the send path's setting, syncs only at checkpoints, and the last commits can vanish
    with the power). On PostgreSQL it takes `synchronous_commit=on`, the server's default,
    set here on each connection so that a server configured otherwise cannot weaken it.
    `synchronous` exists for the benchmark, which measures what FULL costs against NORMAL.
    SQLite connections also get a busy timeout of `busy_timeout_ms`.
    """
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"synchronous={synchronous!r} is not FULL, NORMAL or EXTRA")
    db = open_database(url)
    if db.dialect == "sqlite":
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # Registered after the store's own pragmas, so these values win.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()

        event.listen(db.engine, "connect", _sqlite_pragmas)
        db.engine.dispose()  # connections made while migrating have the store's settings
    elif db.dialect == "postgresql":
        def _synchronous_commit(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET synchronous_commit TO on")
            cursor.close()
            dbapi_connection.commit()  # the SET opened a transaction; the setting outlives it

        event.listen(db.engine, "connect", _synchronous_commit)
        db.engine.dispose()
    return db


async def _health(request: Request) -> Response:
    """200 when the database answers, 503 when it does not."""
    def ping() -> None:
        with request.app.state.web.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(ping)
    except SQLAlchemyError:
        return PlainTextResponse("database unavailable\n", status_code=503)
    return PlainTextResponse("ok\n")


async def _drain_spool(state: WebState) -> None:
    """Offer waiting reader decisions to the database every few seconds, for as long as the service runs."""
    while True:
        try:
            if state.spool.pending():
                await run_in_threadpool(state.spool.drain, state.db)
        except OSError as exc:  # the spool folder itself failed: say so, and keep trying
            log.error("cannot read the consent spool %s: %s", state.spool.folder, exc.strerror)
        await asyncio.sleep(SPOOL_DRAIN_SECONDS)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """Any database failure a handler did not expect: 503 with Retry-After, never a 500 (nor its SQL)."""
    log.error("%s %s: the database is unavailable (%s)", request.method, request.url.path.split("/")[1],
              type(exc).__name__)
    return unavailable()


def create_app(settings: Settings | None = None, db: Database | None = None, *,
               taxonomy_path: Path | None = None, today: Callable[[], dt.date] | None = None) -> Starlette:
    """The web application; with no arguments everything comes from the environment.

    A database passed in is used as it is and left open; one opened here is closed on shutdown.
    """
    settings = settings or load_settings()
    owned = db is None
    database = db if db is not None else open_web_database(settings.resolved_database_url)
    check = SignatureCheck(settings.sendgrid_webhook_public_key, settings.webhook_max_age_seconds)
    if check.problem:
        # The pages still work: a webhook key mistake must not stop readers unsubscribing.
        log.warning("SendGrid event webhook off (it answers 503), preference and unsubscribe pages on: %s",
                    check.problem)
    state = WebState(settings=settings, db=database, secret=settings.signing_secret,
                     taxonomy=load_taxonomy(taxonomy_path or settings.topics_file), signature_check=check,
                     today=today or (lambda: dt.datetime.now(dt.UTC).date()),
                     spool=ConsentSpool(settings.resolved_consent_spool_dir),
                     inbound_check=inbound_signature_check(settings.sendgrid_inbound_public_key,
                                                           settings.webhook_max_age_seconds))
    if settings.sendgrid_inbound_public_key and state.inbound_check.problem:
        # Set but unusable: say so once, rather than answer 404 to SendGrid without a word.
        log.warning("Inbound Parse off (it answers 404): %s", state.inbound_check.problem)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        drainer = asyncio.create_task(_drain_spool(state))
        yield
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer
        if owned:
            database.dispose()

    app = Starlette(routes=[
        Route("/webhooks/sendgrid", receive_sendgrid_events, methods=["POST"]),
        Route("/webhooks/inbound", receive_inbound_parse, methods=["POST"]),
        Route("/u/{token}", unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", unsubscribe_now, methods=["POST"]),
        Route("/p/{token}", preferences_page, methods=["GET"]),
        Route("/p/{token}", preferences_submit, methods=["POST"]),
        Route("/a/{token}", ask_page, methods=["GET"]),
        Route("/a/{token}", ask_submit, methods=["POST"]),
        Route("/web/{token}", web_version_page, methods=["GET"]),
        Route("/healthz", _health, methods=["GET"]),
    ], lifespan=lifespan, exception_handlers={SQLAlchemyError: _database_unavailable})
    # Starlette would answer `/u/x/` with a redirect whose Location it builds from the Host
    # header, which the client chooses: an address in our name pointing anywhere. No redirects.
    app.router.redirect_slashes = False
    app.state.web = state
    return app


def serve(host: str = "127.0.0.1", port: int = 8025, *, workers: int = 1, log_level: str = "info",
          access_log: bool = False) -> None:
    """Run the web service until interrupted; settings come from the environment.

    With several workers each process opens its own pool; on SQLite they take turns to write.
    The access log is off by default: its lines would hold readers' unsubscribe and preference
    tokens, and anyone who reads them could use them.
    """
    # uvicorn's own logging set-up, extended so that readerfirst's lines are printed the same way.
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["pipeline"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    uvicorn.run("pipeline.web.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, log_config=log_config, access_log=access_log, proxy_headers=True,
                server_header=False)


@contextmanager
def running_server(app: Starlette, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` on a free port of `host` in a background thread; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="readerfirst-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web service did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()
