"""The `readerfirst` command line."""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperArgument

from pipeline.cli import (audience, demo, engagement, evaluate, prefect_server, reader, replies, report, sending,
                          services, starter, store)
from pipeline.cli.console import err_console, fail
from pipeline.cli.failures import debug_requested, explain

__all__ = ["app", "main"]


def _usage_name(self: TyperArgument) -> str:
    """EDITION, FILE...: typer 0.29 writes a required argument as `{edition}`, which reads as a choice."""
    name = self.display_name_raw.upper()
    return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")


TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]

# Plain help (rich_markup_mode=None): typer's rich help labels every flag `<bool>`.
app = typer.Typer(help="readerfirst: newsletters where every section serves the reader."
                       " Add --debug (or set READERFIRST_DEBUG=1) to see the traceback of an error.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
app.add_typer(store.app, name="db")
app.add_typer(audience.app, name="audience")
app.add_typer(reader.app, name="reader")
app.add_typer(replies.app, name="replies")
app.add_typer(engagement.events_app, name="events")
app.add_typer(engagement.engagement_app, name="engagement")
app.add_typer(prefect_server.app, name="prefect-server")
sending.register(app)
services.register(app)
evaluate.register(app)
report.register(app)
demo.register(app)
starter.register(app)


def main() -> None:
    """Entry point of the console script: one line per error, a traceback only with --debug."""
    debug = debug_requested(sys.argv)
    # Prefect logs every task at INFO; the CLI shows its own progress instead.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - every error becomes one line, or a traceback with --debug
        if debug:
            raise
        failure = explain(exc)
        fail(failure.message, failure.code)
