"""What flows and the CLI share at run time: the database, the transport and the sender.

Built from settings once per process, so that tasks receive only small, serialisable
arguments (paths, ids) and each worker opens its own connections.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from pipeline.content.edition import resolve_edition_path
from pipeline.delivery.dispatch import Sender
from pipeline.delivery.outbox import OutboxTransport
from pipeline.delivery.preparation import PreparedEdition, prepare_edition
from pipeline.delivery.transport import Transport
from pipeline.errors import ConfigurationError
from pipeline.settings import Settings
from pipeline.store.database import Database, open_database

__all__ = ["database", "make_transport", "make_sender", "prepared_edition", "halt_signal", "halt_every_send", "clear_halt"]

_halts: dict[str, threading.Event] = {}
_halts_lock = threading.Lock()


def halt_signal(edition_id: str, flow_run_id: object = None) -> threading.Event:
    """The event that stops every delivery task of this edition's send: in this process, or, in a
    task on a Dask worker, on every worker of the cluster (a Dask `Event` named after the flow run)."""
    if flow_run_id is not None:
        try:
            from distributed import Event, get_client, get_worker

            get_worker()  # raises ValueError outside a Dask worker's task
        except (ImportError, ValueError):
            pass
        else:
            # Bound to this task's client: deliver_batches checks it from threads of its own.
            return Event(f"readerfirst-halt-{edition_id}-{flow_run_id}", client=get_client())
    with _halts_lock:
        return _halts.setdefault(edition_id, threading.Event())


def halt_every_send() -> None:
    """Stop every send in flight in this process between two batches (the send runner is stopping)."""
    with _halts_lock:
        for event in _halts.values():
            event.set()


def clear_halt(edition_id: str) -> None:
    """Forget a previous send's halt, at the start of a new send of the edition."""
    with _halts_lock:
        _halts.pop(edition_id, None)


@lru_cache(maxsize=4)
def _database(url: str) -> Database:
    return open_database(url)


def database(settings: Settings) -> Database:
    """The database of these settings, migrated, shared within the process."""
    return _database(settings.resolved_database_url)


def prepared_edition(settings: Settings, edition: Path | str) -> PreparedEdition:
    """The edition at `edition` (a file, or a folder for its newest edition), validated and compiled
    with the templates and sender identity of these settings (cached while nothing changes)."""
    return prepare_edition(resolve_edition_path(edition), settings.templates_dir, identity=settings.sender_identity(),
                           ask=settings.ask)


def make_transport(settings: Settings, *, sandbox: bool = False) -> Transport:
    """SendGrid when SENDGRID_API_KEY is set, else the local outbox.

    Real mail (a SendGrid host that is not loopback) is refused unless READERFIRST_PUBLIC_URL is
    a public https address (otherwise every message would carry unsubscribe links that cannot work)
    and the footer's organisation and postal address are set (CAN-SPAM requires them).
    """
    if settings.sendgrid_api_key is not None:
        from pipeline.delivery.sendgrid import SendGridTransport

        problem = (settings.public_url_problem() or settings.identity_problem()) if settings.sends_beyond_loopback else None
        if problem:
            raise ConfigurationError(problem)

        return SendGridTransport.from_settings(settings, sandbox=sandbox)
    if sandbox:
        raise ConfigurationError("--sandbox asks SendGrid to validate without delivering: set SENDGRID_API_KEY")
    return OutboxTransport(settings.resolved_outbox_dir)


def make_sender(settings: Settings) -> Sender:
    """Who newsletters come from and how their links are signed."""
    return Sender(from_email=settings.from_email, from_name=settings.from_name, public_url=settings.public_url,
                  secret=settings.signing_secret, reply_domain=settings.reply_domain or None)
