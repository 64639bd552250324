"""`readerfirst report`: the engagement report as one HTML file, Markdown or JSON."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape

from pipeline.cli.console import console, err_console, fail, working
from pipeline.errors import PipelineError
from pipeline.report.model import DEFAULT_BOUNCE_THRESHOLD, Report
from pipeline.settings import load_settings

__all__ = ["ReportFormat", "report", "register", "write_report"]


class ReportFormat(str, Enum):
    """The formats `readerfirst report` writes."""

    html = "html"
    md = "md"
    json = "json"


# The renderer of each format, by name in pipeline.report: loaded when a report is written.
_RENDER = {ReportFormat.html: "render_html", ReportFormat.md: "render_markdown", ReportFormat.json: "render_json"}
_SUFFIXES = {".html": ReportFormat.html, ".htm": ReportFormat.html, ".md": ReportFormat.md,
             ".markdown": ReportFormat.md, ".json": ReportFormat.json}


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_report(text: str, out: Path) -> None:
    """Write `text` to `out` whole or not at all: a failed write never leaves half a report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; a report is an ordinary file, shared as the umask allows.
        os.chmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _flagged(result: Report) -> str:
    flagged = [f"{e.edition_id} ({', '.join(n for n, f in (('spam', e.spam_flag), ('bounces', e.bounce_flag)) if f)})"
               for e in result.editions if e.spam_flag or e.bounce_flag]
    return f"; [red]above threshold: {escape(', '.join(flagged))}[/]" if flagged else ""


def report(
    edition: str | None = typer.Option(None, "--edition", help="Report this edition only."),
    since: dt.datetime | None = typer.Option(None, "--since", formats=["%Y-%m-%d"],
                                             help="Only editions first sent on or after this date (YYYY-MM-DD)."),
    format_: ReportFormat | None = typer.Option(None, "--format", "-f", case_sensitive=False,
                                                help="html, md or json (default: from --out's suffix, else md)."),
    out: Path | None = typer.Option(None, "--out", "-o", dir_okay=False,
                                    help="File to write (default: standard output)."),
    bounce_threshold: float = typer.Option(DEFAULT_BOUNCE_THRESHOLD, "--bounce-threshold", min=0.0, max=1.0,
                                           help="Flag bounce rates above this fraction (0.02 = 2%)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Engagement per edition, section and topic, personalised vs holdout, trends and learned interests."""
    import pipeline.report
    from pipeline.flows.runtime import database

    if out is not None and out.exists() and not force:
        fail(f"{out}: already exists; choose another --out, or add --force to overwrite it")
    chosen = format_ or (_SUFFIXES.get(out.suffix.lower(), ReportFormat.md) if out else ReportFormat.md)
    try:
        with working("building the report"):
            result = pipeline.report.build_report(database(load_settings()), edition=edition,
                                                  since=since.date() if since else None,
                                                  bounce_threshold=bounce_threshold)
    except PipelineError as exc:
        fail(str(exc))
    text = getattr(pipeline.report, _RENDER[chosen])(result)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        err_console.print(f"{len(result.editions)} editions{_flagged(result)}")
        return
    write_report(text, out)
    console.print(f"wrote the {chosen.value} report of {len(result.editions)} editions to {escape(str(out))}"
                  f"{_flagged(result)}")


def register(app: typer.Typer) -> None:
    """Add `report` to `app`."""
    app.command("report")(report)
