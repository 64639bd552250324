"""Prefect flows: the only place with @flow and @task; thin wrappers over the domain packages."""

from __future__ import annotations

__all__ = ["send_edition", "apply_engagement"]


def __getattr__(name: str):
    # Importing Prefect costs about a second: only pay it when a flow is actually used.
    if name == "send_edition":
        from pipeline.flows.send_edition import send_edition

        return send_edition
    if name == "apply_engagement":
        from pipeline.flows.apply_engagement import apply_engagement

        return apply_engagement
    raise AttributeError(name)
