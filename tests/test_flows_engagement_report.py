"""The engagement-report flow under Prefect's own test harness: artifacts published, errors not retried."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.report import build_report
from tests.test_report_metrics import load_world


@pytest.fixture
def world(db):
    """The known-answer world in the test home's database (the one the flow's settings open)."""
    load_world(db)
    return db


def _artifacts(flow_run_id) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    # Keyless artifacts are Prefect's own (a failed run's stored exception): only ours have keys.
    return {artifact.key: artifact for artifact in found if artifact.key}


def test_flow_publishes_the_report_as_markdown_and_table(prefect_harness, world):
    """The flow returns the report and publishes it whole as markdown and per edition as a table."""
    from pipeline.flows.engagement_report import (
        EDITIONS_ARTIFACT,
        REPORT_ARTIFACT,
        engagement_report,
    )

    state = engagement_report(return_state=True)
    returned = state.result()
    expected = build_report(world).as_dict()
    assert {k: v for k, v in returned.items() if k != "generated_at"} == \
        {k: v for k, v in expected.items() if k != "generated_at"}
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert set(artifacts) == {REPORT_ARTIFACT, EDITIONS_ARTIFACT}
    markdown, table = artifacts[REPORT_ARTIFACT], artifacts[EDITIONS_ARTIFACT]
    assert markdown.type == "markdown" and "# Engagement report: every edition sent" in markdown.data
    assert "| 2026-12-07 | 2026-12-07 | 10 | 9 | 1 | 1 | **20.00% ⚠** |" in markdown.data
    rows = {row["edition"]: row for row in json.loads(table.data)}
    assert table.type == "table" and list(rows) == ["2026-11-23", "2026-11-30", "2026-12-07"]
    assert (rows["2026-12-07"]["clickers"], rows["2026-12-07"]["CTR"], rows["2026-12-07"]["CTOR"]) == \
        ("5", "55.56%", "83.33%")
    assert rows["2026-12-07"]["spam rate"] == "**11.11% ⚠**"


def test_flow_takes_the_since_filter(prefect_harness, world):
    """With `since`, the artifacts cover only the editions first sent on or after that date."""
    from pipeline.flows.engagement_report import EDITIONS_ARTIFACT, engagement_report

    state = engagement_report(since=dt.date(2026, 12, 1), return_state=True)
    assert [e["edition_id"] for e in state.result()["editions"]] == ["2026-12-07"]
    table = _artifacts(state.state_details.flow_run_id)[EDITIONS_ARTIFACT]
    assert [row["edition"] for row in json.loads(table.data)] == ["2026-12-07"]


def test_unknown_edition_fails_the_run_without_artifacts(prefect_harness, world):
    """An edition never sent fails the run with an error naming it and the editions sent, and publishes nothing."""
    from pipeline.flows.engagement_report import engagement_report
    from pipeline.report import UnknownEdition

    state = engagement_report(edition="2027-01-04", return_state=True)
    assert state.is_failed()
    with pytest.raises(UnknownEdition, match="2027-01-04.*2026-11-23, 2026-11-30, 2026-12-07"):
        state.result()
    assert _artifacts(state.state_details.flow_run_id) == {}
