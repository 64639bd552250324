"""Scheduled deployments: `readerfirst serve` registers them and runs their flow runs."""

from __future__ import annotations

from prefect.deployments.runner import EntrypointType, RunnerDeployment

from pipeline.flows.send_edition import send_edition

__all__ = ["DEFAULT_SEND_CRON", "build_deployments"]

DEFAULT_SEND_CRON = "0 7 * * 1"  # Mondays at 07:00


def build_deployments(*, editions: str, audience: str, cron: str = DEFAULT_SEND_CRON,
                      timezone: str = "UTC") -> list[RunnerDeployment]:
    """The deployments `readerfirst serve` runs: the weekly send of the newest edition and
    learning from engagement every 15 minutes."""
    from pipeline.flows.apply_engagement import build_engagement_deployment

    from prefect.schedules import Cron

    weekly = send_edition.to_deployment(
        name=f"weekly-{audience}", schedules=[Cron(cron, timezone=timezone)],
        parameters={"edition": editions, "audience": audience},
        description=f"Send the newest edition in {editions} to audience {audience!r}.",
        tags=["readerfirst"], entrypoint_type=EntrypointType.MODULE_PATH)
    return [weekly, build_engagement_deployment()]
