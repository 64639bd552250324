"""The `readerfirst` command line."""

from __future__ import annotations

import os
import sys

import typer

from pipeline.cli import audience, demo, engagement, evaluate, prefect_server, report, sending, services, store
from pipeline.cli.console import console, fail
from pipeline.errors import PipelineError

__all__ = ["app", "main"]

app = typer.Typer(help="readerfirst: newsletters where every section serves the reader.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(store.app, name="db")
app.add_typer(audience.app, name="audience")
app.add_typer(engagement.events_app, name="events")
app.add_typer(engagement.engagement_app, name="engagement")
app.add_typer(prefect_server.app, name="prefect-server")
sending.register(app)
services.register(app)
evaluate.register(app)
report.register(app)
demo.register(app)


def main() -> None:
    """Entry point of the console script: clear errors, never a traceback for bad input."""
    # Prefect logs every task at INFO; the CLI shows its own progress instead.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        app()
    except PipelineError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
