"""`readerfirst events ...` and `readerfirst engagement ...`: what readers did, and learning from it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.text import Text

from pipeline.cli.console import console, err_console, fail, labelled, print_json, working
from pipeline.settings import load_settings

events_app = typer.Typer(help="Engagement events: load SendGrid exports.", no_args_is_help=True)
engagement_app = typer.Typer(help="Learning from engagement.", no_args_is_help=True)

__all__ = ["events_app", "engagement_app"]


@events_app.command("ingest")
def ingest(
    files: list[Path] = typer.Argument(..., help="SendGrid event exports: JSON arrays or JSON Lines."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON: [{file, events, stored, duplicates,"
                                     " quarantined, unattributed, problems}]."),
) -> None:
    """Store events from files, with the webhook's checks and dedupe; a file that is not an export is refused.

    Exit code 2 when a file was refused (nothing of it stored; the other files are loaded), 1 when
    the database could not take the events (what was stored stays: run the same command again).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.engagement.ingest import InvalidEventFile, ingest_file
    from pipeline.flows.runtime import database

    db = database(load_settings())
    reports = []
    refused = 0
    for path in files:
        try:
            report = ingest_file(db, path)
        except InvalidEventFile as exc:
            refused += 1
            err_console.print(labelled("error:", "bold red", str(exc)), soft_wrap=True)  # one line, however long
            continue
        except SQLAlchemyError as exc:
            # The class only: the database's message carries the statement's parameters (readers' data).
            fail(f"{path}: the database could not store the events ({type(exc).__name__}); run the same "
                 "command again to finish (events already stored are not stored twice)", code=1)
        reports.append({"file": str(path), "events": report.events, "stored": report.stored,
                        "duplicates": report.duplicates, "quarantined": report.quarantined,
                        "unattributed": report.unattributed, "problems": [str(p) for p in report.problems]})
        if json_output:
            continue
        console.print(f"{escape(str(path))}: {report.events} events, {report.stored} stored, {report.duplicates} duplicates,"
                      f" {report.quarantined} quarantined, {report.unattributed} for unknown readers")
        for problem in report.problems:
            err_console.print(Text(f"  {problem}", style="yellow"))
    if json_output:
        print_json(reports)
    if refused:
        raise typer.Exit(2)


@engagement_app.command("apply")
def apply(
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON (the keys printed without it)."),
) -> None:
    """Apply stored events to readers' profiles (the apply-engagement flow), then report."""
    from pipeline.cli.prefect_server import connect_flow_runs

    connect_flow_runs()
    from pipeline.flows.apply_engagement import apply_engagement

    with working("applying events (Prefect flow apply-engagement)", enabled=not json_output):
        summary = apply_engagement()
    if json_output:
        print_json(summary)
        return
    for key, value in summary.items():
        console.print(f"{key.replace('_', ' ')}: {escape(str(value))}")
