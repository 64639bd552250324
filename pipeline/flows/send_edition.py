"""Flow `send-edition`: load audience -> select -> render -> send -> record, over chunks of readers.

Tasks work on chunks of readers (planning) and on groups of batches (delivery), never on
one reader, and receive only paths and ids. Only I/O tasks retry, and only on errors that
may pass. The send ledger, not Prefect, guarantees that nobody gets two copies; every run
starts by reconciling batches an earlier run left unconfirmed (pipeline/delivery/reconcile.py).
"""

from __future__ import annotations

import datetime as dt
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from pipeline.audience.directory import audience_id as find_audience, find_reader_id
from pipeline.content.edition import resolve_edition_path
from pipeline.delivery.dispatch import DeliveryReport, deliver_batches, may_pass
from pipeline.delivery.ledger import PlannedBatch, SendLedger
from pipeline.delivery.planning import PlanReport, plan_readers
from pipeline.delivery.reconcile import ReconcileReport, reconcile_edition
from pipeline.delivery.transport import MAX_BATCH
from pipeline.errors import PipelineError
from pipeline.flows.runtime import clear_halt, database, halt_signal, make_sender, make_transport, prepared_edition
from pipeline.flows.task_runners import check_task_runner, concurrent_tasks, default_task_runner
from pipeline.settings import Settings, load_settings
from pipeline.web.consent_spool import ConsentSpool

__all__ = ["send_edition", "retry_transient", "BatchGroup"]


def retry_transient(task, task_run, state) -> bool:
    """Retry only what may pass (`may_pass`): network and rate limits, a busy database. Never bad input."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - sorted by may_pass
        return may_pass(error)
    return False


_IO = dict(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 20], retry_jitter_factor=0.5,
           retry_condition_fn=retry_transient)


def apply_waiting_decisions(settings: Settings) -> int:
    """Apply reader decisions (unsubscribes, preferences) the web service kept while the database
    was unavailable; raises the database's error rather than let a send go on without them."""
    return ConsentSpool(settings.resolved_consent_spool_dir).drain(database(settings), strict=True).applied


@task(name="apply-reader-decisions", **_IO)
def apply_reader_decisions() -> int:
    """Before anything is planned: every unsubscribe a reader was promised is in the database."""
    return apply_waiting_decisions(load_settings())


@task(name="prepare-edition", cache_policy=NO_CACHE)
def check_edition(edition_path: str) -> dict:
    """Validate and compile the edition (pure: a bad edition fails here and sends nothing)."""
    settings = load_settings()
    prepared = prepared_edition(settings, edition_path)
    return {"id": prepared.edition.id, "path": str(prepared.edition.path), "sections": len(prepared.edition.sections),
            "worst_case_kb": round(prepared.layout.worst_case_html_bytes / 1024, 1)}


@task(name="load-audience", **_IO)
def load_audience(edition_path: str, audience: str, limit: int | None, to: str | None,
                  record: bool, chunk_size: int) -> tuple[int, list[tuple[int, int]]]:
    """The audience id and the readers still to send to (all, the first `limit`, or one), as
    ranges of reader ids of at most `chunk_size` readers each."""
    settings = load_settings()
    db = database(settings)
    audience_id = find_audience(db, audience)
    prepared = prepared_edition(settings, edition_path)
    ledger = SendLedger(db, prepared.edition.id)
    if record:
        ledger.record_sections(prepared.edition)
    if to:
        reader_id = find_reader_id(db, audience_id, to)
        if not ledger.readers_to_plan(audience_id, [reader_id]):
            raise PipelineError(f"{to} is unsubscribed, suppressed or already sent this edition")
        return audience_id, [(reader_id, reader_id)]
    return audience_id, ledger.plan_chunks(audience_id, chunk_size, limit=limit)


@task(name="select-sections", **_IO)
def select_chunk(edition_path: str, audience_id: int, first_reader: int, last_reader: int, today: dt.date,
                 record: bool) -> PlanReport:
    """Choose sections for the readers still to plan with ids from `first_reader` to `last_reader`,
    and record the plan in the ledger."""
    settings = load_settings()
    prepared = prepared_edition(settings, edition_path)
    ledger = SendLedger(database(settings), prepared.edition.id)
    reader_ids = ledger.readers_to_plan(audience_id, between=(first_reader, last_reader))
    return plan_readers(prepared, ledger, audience_id, reader_ids, today=today, record=record)


@task(name="release-unconfirmed", **_IO)
def release_unconfirmed(edition_id: str) -> int:
    """Put every unconfirmed batch of the edition back in the plan (explicit resend)."""
    ledger = SendLedger(database(load_settings()), edition_id)
    return sum(ledger.release(batch.batch_id) for batch in ledger.unconfirmed())


@task(name="reconcile-unconfirmed", **_IO)
def reconcile_unconfirmed(edition_id: str) -> ReconcileReport:
    """Settle batches earlier runs left unconfirmed from SendGrid's events: sent, or planned again."""
    settings = load_settings()
    return reconcile_edition(database(settings), edition_id, after=settings.reconcile_after)


def _flow_run_id() -> object:
    """The flow run this task belongs to (a halt on Dask is shared by that run's tasks only)."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    return context.task_run.flow_run_id if context is not None else None


@task(name="render-and-send", **_IO)
def send_batches(edition_path: str, group: BatchGroup, sandbox: bool = False) -> DeliveryReport:
    """Render and send a group of batches (each one variant), confirming each in the ledger."""
    settings = load_settings()
    prepared = prepared_edition(settings, edition_path)
    ledger = SendLedger(database(settings), prepared.edition.id)
    # An unsubscribe kept while this send was running takes effect before these readers are claimed.
    apply_waiting_decisions(settings)
    transport = make_transport(settings, sandbox=sandbox)
    try:
        report = deliver_batches(prepared, ledger, transport, make_sender(settings), group.batches,
                                 # The setting is the total in flight, shared by the tasks that run at once.
                                 parallel=max(1, settings.sendgrid_parallel // concurrent_tasks(settings))
                                 if transport.name == "sendgrid" else 1,
                                 halt=halt_signal(prepared.edition.id, _flow_run_id()))
    finally:
        transport.close()
    report.requests = getattr(transport, "requests", report.batches)
    report.retries = getattr(transport, "retries", 0)
    return report


class BatchGroup:
    """Planned batches that one delivery task sends, opaque to Prefect and Dask on their way to it.

    Both walk the tuples they find in a task's parameters: Prefect looks in each for futures
    (thousands of batches, on every submit), and Dask rebuilds tuple subclasses, turning
    Prefect's `quote(batches)` into a quote of a one-element tuple. A plain object is passed as it is.
    """

    __slots__ = ("batches",)

    def __init__(self, batches: Sequence[PlannedBatch]):
        self.batches = tuple(batches)

    def __getstate__(self) -> tuple[PlannedBatch, ...]:
        return self.batches

    def __setstate__(self, state: tuple[PlannedBatch, ...]) -> None:
        self.batches = state


Item = TypeVar("Item")


def finished_in_turn(submit: Callable[[Item], PrefectFuture], items: Iterable[Item], window: int
                     ) -> Iterator[PrefectFuture]:
    """Submit a task for each item, at most `window` at once, and yield each future as it finishes.

    Keeps nothing it has yielded: `prefect.futures.as_completed` holds every future it is given,
    each with its task's result, until the last one finishes, so the flow's memory grew with the
    number of chunks, that is with the audience. The window stays full while a result is handled.
    """
    finished: queue.SimpleQueue[PrefectFuture] = queue.SimpleQueue()
    pending = iter(items)

    def start_next() -> int:
        """Submit the next item's task: 1, or 0 when none is left."""
        for item in pending:
            submit(item).add_done_callback(finished.put)
            return 1
        return 0

    running = 0
    while running < window and start_next():
        running += 1
    while running:
        done = [finished.get()]  # popped as it is yielded: this frame keeps no reference to it
        running += start_next() - 1
        yield done.pop()


def _groups(batches: Sequence[PlannedBatch], readers_per_group: int) -> list[BatchGroup]:
    groups: list[list[PlannedBatch]] = [[]]
    size = 0
    for batch in batches:
        if groups[-1] and size + batch.readers > readers_per_group:
            groups.append([])
            size = 0
        groups[-1].append(batch)
        size += batch.readers
    return [BatchGroup(g) for g in groups if g]


@flow(name="send-edition", task_runner=default_task_runner(), log_prints=False)
def send_edition(edition: str, audience: str, dry_run: bool = False, limit: int | None = None,
                 to: str | None = None, today: dt.date | None = None, sandbox: bool = False,
                 resend_unconfirmed: bool = False) -> dict:
    """Send `edition` (a file, or a folder for its newest edition) to every reader of `audience`
    not yet sent it; returns the summary.

    `sandbox` has SendGrid validate every request and deliver nothing (the ledger is left as
    it was). `resend_unconfirmed` first puts batches left unconfirmed by a crash back in the
    plan: only use it once you know those readers did not get the edition.
    """
    logger = get_run_logger()
    settings = load_settings()
    check_task_runner(settings)
    started = time.perf_counter()
    today = today or dt.date.today()
    edition = str(resolve_edition_path(edition))
    info = check_edition(edition)
    clear_halt(info["id"])
    apply_reader_decisions()
    reconciled = ReconcileReport()
    if not dry_run and not sandbox:
        reconciled = reconcile_unconfirmed(info["id"])
        if reconciled.confirmed or reconciled.put_back:
            logger.info("reconciled: %d readers confirmed sent by SendGrid events, %d put back to be sent again",
                        reconciled.confirmed, reconciled.put_back)
        if reconciled.held:
            logger.warning("%d readers of unconfirmed batches held: no SendGrid event came for this edition since they"
                           " were handed over, so the event webhook may not be reaching readerfirst (see `readerfirst"
                           " status`)", reconciled.held)
    if resend_unconfirmed and not dry_run:
        released = release_unconfirmed(info["id"])
        logger.warning("resending %d readers of unconfirmed batches", released)
    chunk = settings.chunk_size
    audience_id, chunks = load_audience(edition, audience, limit, to, not dry_run, chunk)
    logger.info("edition %s: %d chunks of up to %d readers to plan", info["id"], len(chunks), chunk)
    progress = create_progress_artifact(progress=0.0, key=None,
                                        description=f"send-edition {info['id']}: selecting and sending")
    steps = max(1, len(chunks)) * 2
    done = 0

    plan = PlanReport()
    # A few tasks queued per worker keep them busy; more would only be held in memory.
    window = 4 * concurrent_tasks(settings)
    for future in finished_in_turn(lambda span: select_chunk.submit(edition, audience_id, *span, today, not dry_run),
                                   chunks, window):
        plan.add(future.result())
        done += 1
        update_progress_artifact(progress, progress=100.0 * done / steps)

    planned_at = time.perf_counter()
    delivery = DeliveryReport()
    failure: BaseException | None = None
    ledger = SendLedger(database(settings), info["id"])
    if not dry_run:
        # A limited send (--limit, --to) sends only within the span of readers it planned.
        limited = limit is not None or bool(to)
        limited_span = (chunks[0][0], chunks[-1][1]) if limited and chunks else None
        for second_round in (False, True):
            if second_round:
                if not delivery.replanned or failure is not None:
                    break
                # Readers who opted out of a topic of their copy while the send ran went back to be
                # planned: plan them again (the others are sending or sent) and send them now.
                logger.info("%d readers opted out of a topic of their copy during the send: planning them again",
                            delivery.replanned)
                for future in finished_in_turn(lambda span: select_chunk.submit(edition, audience_id, *span, today,
                                                                                True), chunks, window):
                    future.result()
            groups = [] if limited and not chunks else _groups(ledger.planned_batches(MAX_BATCH, limited_span), chunk)
            for future in finished_in_turn(lambda group: send_batches.submit(edition, group, sandbox), groups, window):
                try:
                    delivery.add(future.result())
                except Exception as exc:  # noqa: BLE001 - reported in the summary, then re-raised
                    failure = failure or exc
                if not second_round:
                    done += steps / 2 / max(1, len(groups))
                    update_progress_artifact(progress, progress=min(100.0, 100.0 * done / steps))
    update_progress_artifact(progress, progress=100.0)

    seconds = time.perf_counter() - started
    counts = ledger.counts()
    unconfirmed = ledger.unconfirmed()
    summary = {
        "edition": info["id"], "audience": audience, "dry_run": dry_run,
        "transport": "none (dry run)" if dry_run else make_transport(settings, sandbox=sandbox).name
        + (" (sandbox)" if sandbox else ""),
        "readers_selected": plan.readers, "holdout": plan.holdout, "variants": len(plan.variants),
        "batches": delivery.batches, "requests": delivery.requests, "retries": delivery.retries,
        "sent": delivery.sent, "skipped": delivery.skipped, "failed": delivery.failed,
        "sandbox_validated": delivery.validated, "sent_total": counts["sent"], "failed_total": counts["failed"],
        "reconciled_sent": reconciled.confirmed, "reconciled_put_back": reconciled.put_back,
        "reconciled_held": reconciled.held,
        "unconfirmed_batches": len(unconfirmed),
        "unconfirmed_readers": sum(b.readers for b in unconfirmed), "replanned": delivery.replanned,
        "seconds": round(seconds, 2), "plan_seconds": round(planned_at - started, 2),
        "send_seconds": round(time.perf_counter() - planned_at, 2), "readers_per_second": round((plan.readers if dry_run else delivery.sent) / seconds, 1)
        if seconds else 0.0,
        "top_sections": ", ".join(f"{sid} ({n})" for sid, n in plan.sections.most_common(5)),
        "failure": str(failure).splitlines()[0] if failure else "",
    }
    create_table_artifact(key="send-edition-summary", table=[{"metric": k, "value": str(v)} for k, v in summary.items()],
                          description=f"send-edition {info['id']} to {audience}")
    logger.info("sent %d readers in %d batches (%d variants) in %.1fs", delivery.sent, delivery.batches,
                len(plan.variants), seconds)
    if failure is not None:
        raise failure
    return summary
