"""The send-edition flow on PostgreSQL with Dask workers: exactly once across processes and runs, resumable.

A small version of issue 13's million-reader send: 20,000 readers, a local Dask cluster of 2
worker processes, the official `sendgrid` client to the emulator, whose signed delivery events
reach the real web service and its webhook, as in production. Needs READERFIRST_TEST_POSTGRES_URL
(skipped locally without it, failed in CI).
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, select

from pipeline.audience.importer import import_audience
from pipeline.audience.sample import write_sample_csv
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.reconcile import reconcile_edition
from pipeline.emulator import running_emulator
from pipeline.emulator.signing import WebhookSigner, load_signing_key
from pipeline.settings import Settings, load_settings
from pipeline.store.database import Database
from pipeline.store.models import EngagementEvent, LedgerState, Reader, SendLedgerEntry, utcnow
from pipeline.web import create_app, running_server
from tests.conftest import EDITION
from tests.tools import postgres_database

distributed = pytest.importorskip("distributed", reason="the [dask] extra (pip install -e '.[test]' installs it)")

READERS = 20_000
TODAY = dt.date(2026, 12, 1)
EDITION_ID = "2026-12-07"


class Mailroom:
    """Everything a send on PostgreSQL and Dask talks to: the database, the emulator, the web service."""

    def __init__(self, db: Database, emulator: Any, subscribed: set[str]):
        self.db = db
        self.emulator = emulator
        self.subscribed = subscribed

    def received(self) -> Counter[str]:
        """Messages the emulator accepted, per recipient address (lower case)."""
        return Counter({email.lower(): n for email, n in self.emulator.store.count_by_recipient().items()})

    def counts(self) -> dict[str, int]:
        """The edition's ledger, readers per state."""
        return SendLedger(self.db, EDITION_ID).counts()

    def start_over(self) -> None:
        """Forget the edition's ledger and events, so that a test sends to everyone afresh."""
        with self.db.transaction() as connection:
            connection.execute(delete(SendLedgerEntry))
            connection.execute(delete(EngagementEvent))

    def settle(self) -> None:
        """Wait until the emulator answered every request and its events are stored by the webhook."""
        assert self.emulator.wait_idle(120), "the emulator did not post its events in time"


@pytest.fixture(scope="module")
def mailroom(prefect_harness, tmp_path_factory) -> Iterator[Mailroom]:
    """20,000 readers in PostgreSQL, the emulator posting signed events to the web service, settings for Dask.

    Module-wide, because Dask worker processes read the settings from the environment they started with.
    """
    home = tmp_path_factory.mktemp("dask-home")
    key_file = home / "webhook-key.pem"
    public_key = WebhookSigner(load_signing_key(key_file)).public_key
    with pytest.MonkeyPatch.context() as env, postgres_database() as db:
        env.setenv("READERFIRST_HOME", str(home))
        env.setenv("READERFIRST_SECRET", "test-secret-of-at-least-32-bytes!")
        env.setenv("READERFIRST_DATABASE_URL", db.url)
        env.setenv("READERFIRST_TASK_RUNNER", "dask")
        env.setenv("READERFIRST_DASK_WORKERS", "2")
        env.setenv("READERFIRST_CHUNK_SIZE", "2000")  # 10 delivery tasks: a killed worker has work left to lose
        env.delenv("READERFIRST_DASK_ADDRESS", raising=False)
        import_audience(db, write_sample_csv(home / "readers.csv", READERS, seed=3), "bench", today=TODAY)
        with db.session() as session:
            subscribed = {e.lower() for e in session.scalars(select(Reader.email).where(Reader.status == "subscribed"))}
        web = running_server(create_app(Settings(SENDGRID_WEBHOOK_PUBLIC_KEY=public_key), db))
        url = web.__enter__()
        try:
            with running_emulator(store_path=home / "emulator.db", webhook_url=url + "/webhooks/sendgrid",
                                  signing_key_path=key_file) as emulator:
                env.setenv("SENDGRID_API_KEY", emulator.api_key)
                env.setenv("SENDGRID_API_HOST", emulator.url)
                yield Mailroom(db, emulator, subscribed)
        finally:
            web.__exit__(None, None, None)


@pytest.fixture
def fresh(mailroom) -> Mailroom:
    """The mailroom with the edition not yet sent to anyone."""
    mailroom.settle()
    mailroom.start_over()
    return mailroom


@pytest.fixture(scope="module")
def cluster(mailroom) -> Iterator[Any]:
    """A local Dask cluster of 2 worker processes, one thread each, started with the module's settings."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


def send(settings: Settings) -> dict:
    """Run the send-edition flow with the task runner of `settings`."""
    from pipeline.flows.send_edition import send_edition
    from pipeline.flows.task_runners import with_task_runner

    return with_task_runner(send_edition, settings)(edition=str(EDITION), audience="bench", today=TODAY)


def in_thread(settings: Settings) -> tuple[threading.Thread, dict]:
    """Start a send in a thread; the dict gets its summary, or the error it raised."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = send(settings)
        except BaseException as error:  # noqa: BLE001 - the test looks at it
            outcome["error"] = error

    thread = threading.Thread(target=run, name="send-edition-run")
    thread.start()
    return thread, outcome


def assert_everyone_once(room: Mailroom, before: Counter[str]) -> None:
    """Every subscribed reader got exactly one message since `before`, nobody else got one, the ledger agrees."""
    got = room.received() - before
    twice = sorted(email for email, n in got.items() if n > 1)
    assert not twice, f"{len(twice)} readers got the edition more than once"
    assert set(got) == room.subscribed, f"{len(room.subscribed - set(got))} readers got nothing"
    counts = room.counts()
    assert counts[LedgerState.SENT] == len(room.subscribed)
    assert counts[LedgerState.PLANNED] == counts[LedgerState.SENDING] == 0


def test_two_concurrent_runs_on_dask_and_threads_send_everyone_once(fresh):
    """Two runs of the same edition at once, one on its own local Dask cluster and one on threads, never send a
    reader twice and together send everyone."""
    before = fresh.received()
    dask_run, dask_outcome = in_thread(load_settings())
    threads_run, threads_outcome = in_thread(load_settings().model_copy(update={"task_runner": "threads"}))
    for thread in (dask_run, threads_run):
        thread.join(600)
    assert "error" not in dask_outcome and "error" not in threads_outcome, (dask_outcome, threads_outcome)
    fresh.settle()
    assert_everyone_once(fresh, before)
    sent = dask_outcome["summary"]["sent"] + threads_outcome["summary"]["sent"]
    assert sent == len(fresh.subscribed)


def test_worker_killed_mid_send_loses_nobody_and_the_next_run_finishes(fresh, cluster):
    """A Dask worker process killed while sending loses nobody and duplicates nobody: once SendGrid's events are
    in, reconciliation settles what it had claimed and the next run sends the rest."""
    before = fresh.received()
    settings = load_settings().model_copy(update={"dask_address": cluster.scheduler_address})
    run, outcome = in_thread(settings)
    deadline = time.monotonic() + 600
    while not fresh.counts()[LedgerState.SENT] and run.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first batch is confirmed: the workers are sending
    # SendGrid's event times are whole seconds: a second more, and the batches in flight at the kill have
    # requests processed before them in an earlier second, which reconciliation needs to put them back.
    time.sleep(1.5)
    with distributed.Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)
    assert run.is_alive(), "the send finished before a worker could be killed"
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    run.join(600)
    assert not run.is_alive()
    fresh.settle()
    # Whatever the killed worker had claimed is `sending`: sent if SendGrid's events say so, else planned
    # again once the wait is over (here: as if an hour had passed). Nothing is ever sent blindly twice.
    reconcile_edition(fresh.db, EDITION_ID, after=3600, now=utcnow() + dt.timedelta(hours=1, seconds=1))
    again = send(settings)
    fresh.settle()
    assert again["unconfirmed_batches"] == 0 and again["failure"] == ""
    assert_everyone_once(fresh, before)


def test_the_local_clusters_workers_keep_no_profile():
    """The local cluster's workers run without Dask's statistical profiler, whose history of a tree
    a second grew a worker's memory with the send's length (issue 13: peak RSS flat with the audience)."""
    from pipeline.flows.task_runners import task_runner_for

    runner = task_runner_for(Settings(READERFIRST_TASK_RUNNER="dask", READERFIRST_DASK_WORKERS=1,
                                      READERFIRST_DATABASE_URL="postgresql://reader:secret@127.0.0.1/readerfirst"))
    with distributed.LocalCluster(**runner.cluster_kwargs) as local, distributed.Client(local) as client:
        client.submit(time.sleep, 2.5, pure=False).result()  # longer than the profiler's cycle of 1 s
        kept = client.run(lambda dask_worker: (len(dask_worker.profile_history), len(dask_worker.profile_keys)))
    assert list(kept.values()) == [(0, 0)]


@dataclass
class Parcel:
    """A task's argument, counted among the flow process's live objects once its task is done."""

    number: int


def _open_parcel(parcel: Parcel) -> int:
    return parcel.number


def test_the_flow_process_keeps_no_log_of_every_task(prefect_harness):
    """The client and the local cluster's scheduler, both in the flow's process, keep Dask's log of
    recent messages short: at its default of 1,000 batches it held every submitted task with its
    arguments, so the flow process grew with the number of chunks (issue 13: peak RSS flat)."""
    from prefect import flow, task

    from pipeline.flows.dask_runner import LOG_LENGTH
    from pipeline.flows.task_runners import task_runner_for

    tasks = 5 * LOG_LENGTH
    runner = task_runner_for(Settings(READERFIRST_TASK_RUNNER="dask", READERFIRST_DASK_WORKERS=1,
                                      READERFIRST_DATABASE_URL="postgresql://reader:secret@127.0.0.1/readerfirst"))
    open_parcel = task(_open_parcel, name="open-parcel")

    @flow(task_runner=runner)
    def one_at_a_time() -> tuple[int, int]:
        total = sum(open_parcel.submit(Parcel(n)).result() for n in range(tasks))  # one task per message batch
        gc.collect()
        return total, sum(isinstance(kept, Parcel) for kept in gc.get_objects())

    total, alive = one_at_a_time()
    assert total == sum(range(tasks))
    # The client's log and the scheduler's to the one worker: LOG_LENGTH batches each, one task a batch.
    assert 0 < alive <= 2 * LOG_LENGTH, f"{alive} of {tasks} tasks' arguments are still alive"
