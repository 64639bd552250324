"""Scheduled deployments: what `readerfirst serve` registers and what prefect.yaml declares."""

from __future__ import annotations

import importlib

import yaml

from pipeline.flows.schedules import DEFAULT_SEND_CRON, build_deployments
from tests.conftest import ROOT


def test_serve_registers_weekly_send_with_its_schedule(prefect_harness):
    """The weekly deployment reaches the Prefect API with its cron schedule and parameters."""
    from prefect.client.orchestration import get_client

    deployment, learning = build_deployments(editions="/srv/editions", audience="main", cron="30 6 * * 2",
                                             timezone="Europe/London")
    assert learning.name == "every-15-minutes"
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert stored.name == "weekly-main"
    assert stored.parameters == {"edition": "/srv/editions", "audience": "main"}
    (schedule,) = stored.schedules
    assert schedule.schedule.cron == "30 6 * * 2" and schedule.schedule.timezone == "Europe/London"
    assert schedule.active


def test_default_schedule_is_weekly():
    """By default the send runs once a week."""
    deployment, learning = build_deployments(editions="editions", audience="sample")
    assert deployment.schedules[0].schedule.cron == DEFAULT_SEND_CRON == "0 7 * * 1"
    assert learning.schedules[0].schedule.interval.total_seconds() == 900


def test_prefect_yaml_points_at_the_flow():
    """prefect.yaml's entrypoint resolves to the send-edition flow and its cron is weekly."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployment, learning = config["deployments"]
    assert learning["schedules"][0]["interval"] == 900
    assert learning["entrypoint"] == "pipeline/flows/apply_engagement.py:apply_engagement"
    path, name = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert getattr(module, name).name == "send-edition"
    assert deployment["schedules"][0]["cron"] == DEFAULT_SEND_CRON
    assert set(deployment["parameters"]) == {"edition", "audience"}
