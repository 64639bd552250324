"""Flow `apply-engagement`: learn from every stored engagement event not yet applied, every 15 minutes.

One task runs `apply_events`, which already works in batches of events, each its own
transaction; a retry after a busy database or a dropped connection simply carries on with
the events still unapplied, so nothing is counted twice.
"""

from __future__ import annotations

import datetime as dt
import time

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from pipeline.delivery.reconcile import ReconcileReport, reconcile_all
from pipeline.engagement.learning import DEFAULT_BATCH, apply_events
from pipeline.flows.runtime import database
from pipeline.flows.send_edition import apply_waiting_decisions, retry_transient
from pipeline.settings import load_settings

__all__ = ["apply_engagement", "build_engagement_deployment", "DEFAULT_ENGAGEMENT_INTERVAL"]

DEFAULT_ENGAGEMENT_INTERVAL = dt.timedelta(minutes=15)


@task(name="apply-events", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 20], retry_jitter_factor=0.5,
      retry_condition_fn=retry_transient)
def apply_stored_events(batch_size: int | None = None) -> dict[str, int]:
    """Apply every unapplied event with the settings' half-life, soft-bounce limit and topic groups."""
    settings = load_settings()
    # Unsubscribes kept while the database was unavailable are events too: apply them with the rest.
    apply_waiting_decisions(settings)
    report = apply_events(database(settings), half_life_days=settings.learning_half_life_days,
                          soft_bounce_limit=settings.soft_bounce_limit, topic_groups=settings.topic_groups,
                          batch_size=batch_size or DEFAULT_BATCH)
    return report.summary()


@task(name="reconcile-sends", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 20],
      retry_jitter_factor=0.5, retry_condition_fn=retry_transient)
def reconcile_sends() -> dict[str, int]:
    """Settle unconfirmed SendGrid batches of every edition from the delivery events just stored."""
    settings = load_settings()
    total = ReconcileReport()
    for report in reconcile_all(database(settings), after=settings.reconcile_after).values():
        total.add(report)
    return total.summary()


@flow(name="apply-engagement", log_prints=False)
def apply_engagement(batch_size: int | None = None, report: bool = True) -> dict[str, int | float]:
    """Apply stored engagement events to readers (suppressions, opt-outs) and their topics; returns the summary.

    Then, unless `report` is false, runs the engagement-report flow so that its artifacts always
    show what the latest events did.
    """
    started = time.perf_counter()
    summary: dict[str, int | float] = dict(apply_stored_events(batch_size))
    # The same events settle sends left unconfirmed; the next send-edition run resends what was put back.
    summary.update(reconcile_sends())
    summary["seconds"] = round(time.perf_counter() - started, 2)
    create_table_artifact(key="apply-engagement-summary",
                          table=[{"metric": k, "value": str(v)} for k, v in summary.items()],
                          description=f"apply-engagement: {summary['events']} events applied")
    get_run_logger().info("applied %d events: %d exposures, %d clicks, %d readers suppressed in %.1fs",
                          summary["events"], summary["exposures"], summary["clicks"], summary["suppressed"],
                          summary["seconds"])
    if report:
        from pipeline.flows.engagement_report import engagement_report

        engagement_report()
    return summary


def build_engagement_deployment(*, interval: dt.timedelta | float | None = None, cron: str | None = None,
                                timezone: str = "UTC", name: str | None = None) -> RunnerDeployment:
    """The scheduled deployment of `apply-engagement`: every 15 minutes unless given an interval or a cron.

    At most one run at a time: a run still going when the next is due makes the new one cancel,
    since the running one will pick up the new events anyway.
    """
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron, Interval

    if cron is not None:
        schedule, default_name = Cron(cron, timezone=timezone), "on-schedule"
    else:
        every = interval if interval is not None else DEFAULT_ENGAGEMENT_INTERVAL
        every = every if isinstance(every, dt.timedelta) else dt.timedelta(seconds=every)
        schedule, default_name = Interval(every, timezone=timezone), f"every-{every.total_seconds() / 60:g}-minutes"
    return apply_engagement.to_deployment(
        name=name or default_name, schedules=[schedule],
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        description="Apply stored engagement events to readers and their topics.",
        tags=["readerfirst"], entrypoint_type=EntrypointType.MODULE_PATH)
