"""Flow `engagement-report`: compute the engagement report and publish it as Prefect artifacts.

Run after each apply-engagement run, so the report in the Prefect UI stays current: one
markdown artifact (the whole report, as `readerfirst report --format md` writes it) and one
table artifact (a row per edition), both under fixed keys so the UI keeps their history.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.flows.runtime import database
from pipeline.flows.send_edition import retry_transient
from pipeline.report import DEFAULT_BOUNCE_THRESHOLD, Report, build_report, edition_rows, render_markdown
from pipeline.settings import load_settings

__all__ = ["engagement_report", "REPORT_ARTIFACT", "EDITIONS_ARTIFACT"]

REPORT_ARTIFACT = "engagement-report"
EDITIONS_ARTIFACT = "engagement-report-editions"


@task(name="compute-report", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 20],
      retry_jitter_factor=0.5, retry_condition_fn=retry_transient)
def compute_report(edition: str | None, since: dt.date | None, bounce_threshold: float) -> Report:
    """Read the report from the database (retried only when the database is busy or unreachable)."""
    return build_report(database(load_settings()), edition=edition, since=since, bounce_threshold=bounce_threshold)


@flow(name="engagement-report", log_prints=False)
def engagement_report(edition: str | None = None, since: dt.date | None = None,
                      bounce_threshold: float = DEFAULT_BOUNCE_THRESHOLD) -> dict:
    """Compute the engagement report (every edition, one, or those first sent since a date), publish it
    as a markdown and a table artifact, and return it as JSON-ready data."""
    report = compute_report(edition, since, bounce_threshold)
    scope = report.scope()
    create_markdown_artifact(key=REPORT_ARTIFACT, markdown=render_markdown(report),
                             description=f"Engagement report: {scope}")
    create_table_artifact(key=EDITIONS_ARTIFACT, table=edition_rows(report),
                          description=f"Engagement per edition: {scope}")
    flagged = [e.edition_id for e in report.editions if e.spam_flag or e.bounce_flag]
    logger = get_run_logger()
    logger.info("engagement report: %d editions, %d flagged", len(report.editions), len(flagged))
    if flagged:
        # A warning, so that it stands out in the run's logs and any notification on them.
        logger.warning("spam or bounce rate above its threshold in %s", ", ".join(flagged))
    return report.as_dict()
