"""`readerfirst events ...` and `readerfirst engagement ...`: what readers did, and learning from it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from pipeline.cli.console import console, err_console
from pipeline.flows.runtime import database
from pipeline.settings import load_settings

events_app = typer.Typer(help="Engagement events: load SendGrid exports.", no_args_is_help=True)
engagement_app = typer.Typer(help="Learning from engagement.", no_args_is_help=True)

__all__ = ["events_app", "engagement_app"]


@events_app.command("ingest")
def ingest(files: list[Path] = typer.Argument(..., help="SendGrid event exports: JSON arrays or JSON Lines.")) -> None:
    """Store events from files, with the webhook's checks and dedupe (each file all or nothing)."""
    from pipeline.engagement.ingest import ingest_file

    db = database(load_settings())
    for path in files:
        report = ingest_file(db, path)
        console.print(f"{path}: {report.events} events, {report.stored} stored, {report.duplicates} duplicates,"
                      f" {report.quarantined} quarantined, {report.unattributed} for unknown readers")
        for problem in report.problems:
            err_console.print(f"  [yellow]{escape(str(problem))}[/]")


@engagement_app.command("apply")
def apply() -> None:
    """Apply stored events to readers' profiles (the apply-engagement flow), then report."""
    from pipeline.cli.prefect_server import connect_flow_runs

    connect_flow_runs()
    from pipeline.flows.apply_engagement import apply_engagement

    summary = apply_engagement()
    for key, value in summary.items():
        console.print(f"{key.replace('_', ' ')}: {escape(str(value))}")
