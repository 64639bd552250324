"""The apply-engagement flow under Prefect's own test harness, and its 15-minute deployment."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from pipeline.store.models import EngagementEvent, Reader, UnappliedEvent
from tests.test_engagement_learning import AI, add, interests, seed


@pytest.fixture
def world(db, monkeypatch):
    """The seeded learning world in the test home's database, with ASM group 1201 mapped to climate."""
    monkeypatch.setenv("READERFIRST_TOPIC_GROUPS", '{"1201": "climate"}')
    return seed(db)


def test_flow_applies_stored_events_and_publishes_a_summary(prefect_harness, world):
    """The flow applies every stored event, suppresses and opts out as told, and publishes a table artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    from pipeline.flows.apply_engagement import apply_engagement

    add(world, "delivered")
    add(world, "click", section="s-ai")
    add(world, "hard_bounce", reader=3)
    add(world, "group_unsubscribe", reader=2, edition=None, raw={"asm_group_id": 1201})
    state = apply_engagement(return_state=True)
    summary = state.result()
    assert (summary["events"], summary["exposures"], summary["clicks"], summary["suppressed"],
            summary["opt_outs"]) == (4, 1, 1, 1, 1)
    assert interests(world)["ai"][:2] == (0.5, round(AI, 9)) and interests(world, 2)["climate"][3] is True  # ai at place 2, its click shared with data
    with world.session() as session:
        assert session.scalar(select(Reader.status).where(Reader.id == 3)) == "cleaned"
        assert session.scalar(select(func.count()).select_from(EngagementEvent)) == 4
        assert session.scalars(select(UnappliedEvent.event_id)).all() == []  # every one applied
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["apply-engagement-summary"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    rows = {row["metric"]: row["value"] for row in json.loads(artifact.data)}
    assert artifact.type == "table" and rows["events"] == "4" and rows["suppressed"] == "1"


def test_second_run_applies_nothing(prefect_harness, world):
    """A run with nothing new applies no event and changes no profile."""
    from pipeline.flows.apply_engagement import apply_engagement

    add(world, "delivered")
    apply_engagement()
    before = interests(world)
    again = apply_engagement()
    assert again["events"] == 0 and interests(world) == before


def test_deployment_reaches_the_api_every_15_minutes(prefect_harness):
    """The deployment registers with a 15-minute interval and at most one run at a time."""
    from prefect.client.orchestration import get_client

    from pipeline.flows.apply_engagement import build_engagement_deployment

    deployment = build_engagement_deployment()
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert stored.name == "every-15-minutes"
    (schedule,) = stored.schedules
    assert schedule.schedule.interval == dt.timedelta(minutes=15) and schedule.active
    assert stored.global_concurrency_limit is not None and stored.global_concurrency_limit.limit == 1


def test_deployment_takes_a_cron_instead():
    """Given a cron, the deployment runs on it instead of the interval."""
    from pipeline.flows.apply_engagement import build_engagement_deployment

    deployment = build_engagement_deployment(cron="*/15 * * * *")
    assert deployment.schedules[0].schedule.cron == "*/15 * * * *"
    assert deployment.entrypoint == "pipeline.flows.apply_engagement.apply_engagement"


def test_flow_reconciles_unconfirmed_sendgrid_batches(prefect_harness, db):
    """The flow settles a SendGrid batch left unconfirmed from the delivery events it just stored, and says so."""
    from pipeline.audience.directory import sendable_reader_ids
    from pipeline.audience.importer import import_audience
    from pipeline.delivery.ledger import PlannedEntry, SendLedger
    from pipeline.flows.apply_engagement import apply_engagement
    from pipeline.store.models import LedgerState
    from tests.conftest import SAMPLE_AUDIENCE
    from tests.test_delivery_reconcile import EDITION, claim, post_events

    import_audience(db, SAMPLE_AUDIENCE, "sample", today=dt.date(2026, 12, 1))
    readers = sendable_reader_ids(db, 1)[:4]
    SendLedger(db, EDITION).record_plan(1, [PlannedEntry(r, "v1", [["s1", "why"]]) for r in readers])
    batch = claim(db, readers[0], readers[-1], "lost-answer")
    post_events(db, batch[:1], "processed")
    summary = apply_engagement(report=False)
    assert summary["reconciled_confirmed"] == 4 and summary["reconciled_batches_confirmed"] == 1
    assert SendLedger(db, EDITION).counts()[LedgerState.SENT] == 4
