"""`readerfirst audience ...`: importing and generating audiences."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipeline.cli.console import console, err_console, print_json, progress_bar
from pipeline.errors import ConfigurationError
from pipeline.project import find_project
from pipeline.settings import load_settings

# Each command imports the domain modules it uses: `readerfirst send` or `--help` never loads an importer.
# pipeline.audience.records.STATUSES, written out for the help (tests/test_cli.py checks they agree).
_STATUSES = ("subscribed", "unsubscribed", "cleaned", "nonsubscribed")

app = typer.Typer(help="Audiences: import readers, list audiences, make a sample.", no_args_is_help=True)


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="CSV or JSONL file (readerfirst columns or a Mailchimp export)."),
    audience: str = typer.Option(..., "--audience", "-a", help="Audience to import into (created if new)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Import the good rows; write bad ones to a file."),
    rejected_file: Path | None = typer.Option(None, "--rejected-file", help="Where --skip-invalid writes bad rows."),
    status: str | None = typer.Option(None, "--status", help=f"Status of the file's people where the file does not"
                                      f" say it ({', '.join(_STATUSES)}); needed for a renamed Mailchimp export."),
    topics: Path | None = typer.Option(None, "--topics", help="Taxonomy the interests and needs must use"
                                       " (default: READERFIRST_TOPICS, the project's editions/topics.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing rejected-rows file."),
) -> None:
    """Import readers; all or nothing unless --skip-invalid."""
    from pipeline.audience.importer import import_audience
    from pipeline.content.topics import load_taxonomy
    from pipeline.flows.runtime import database

    rejected_to = rejected_file or file.with_name(f"{file.stem}.rejected{file.suffix}")
    if skip_invalid and rejected_to.exists() and not force:  # checked before anything is imported
        raise ConfigurationError(f"{rejected_to}: already exists; move it away, choose --rejected-file,"
                                 " or add --force to overwrite it")
    settings = load_settings()
    with progress_bar(f"importing {file.name}") as progress:
        report = import_audience(database(settings), file, audience, skip_invalid=skip_invalid,
                                 rejected_file=rejected_file, status=status,
                                 taxonomy=load_taxonomy(topics or settings.topics_file), progress=progress,
                                 workers=settings.import_workers)
    console.print(f"imported {report.imported} readers into [bold]{escape(audience)}[/]"
                  f" ({report.created} new, {report.updated} updated)")
    if report.kept_unsubscribed:
        console.print(f"{report.kept_unsubscribed} readers who had unsubscribed stay unsubscribed"
                      " (only they can resubscribe)")
    if report.forgotten:
        console.print(f"{report.forgotten} rows were not imported: those people asked to be forgotten")
    if report.rejected:
        err_console.print(f"[yellow]skipped {report.rejected} invalid rows[/], written to {escape(str(report.rejected_file))}:")
        for problem in report.problems:
            err_console.print(Text(f"  {problem}"))


@app.command("list")
def list_audiences(
    json_output: bool = typer.Option(False, "--json", help="Print JSON: [{audience, subscribed, unsubscribed,"
                                     " cleaned, nonsubscribed, suppressed}]."),
) -> None:
    """Audiences and their readers by status."""
    from sqlalchemy import func, select

    from pipeline.audience.records import STATUSES
    from pipeline.flows.runtime import database
    from pipeline.store.models import Audience, Reader

    db = database(load_settings())
    table = Table("audience", *STATUSES, "suppressed")
    with db.session() as session:
        rows = session.execute(select(Audience.name, Reader.status, Reader.suppressed_reason.is_not(None), func.count())
                               .join(Reader, Reader.audience_id == Audience.id, isouter=True)
                               .group_by(Audience.name, Reader.status, Reader.suppressed_reason.is_not(None))).all()
    counts: dict[str, dict[str, int]] = {}
    for name, status, suppressed, count in rows:
        bucket = counts.setdefault(name, {})
        key = "suppressed" if suppressed else (status or "subscribed")
        bucket[key] = bucket.get(key, 0) + (count if status else 0)
    statuses = (*STATUSES, "suppressed")
    if json_output:
        print_json([{"audience": name, **{k: bucket.get(k, 0) for k in statuses}}
                    for name, bucket in sorted(counts.items())])
        return
    for name, bucket in sorted(counts.items()):
        table.add_row(escape(name), *(str(bucket.get(k, 0)) for k in statuses))
    console.print(table)


@app.command("sample")
def sample(
    out: Path | None = typer.Option(None, "--out", help="File to write (default: the project's audiences/sample.csv)."),
    readers: int = typer.Option(400, "--readers", min=1, help="How many fictional readers."),
    seed: int = typer.Option(7, "--seed", help="Same seed, same file."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Write a deterministic sample audience of fictional readers."""
    from pipeline.audience.sample import write_sample_csv

    if out is None:
        # Never into an installed package: the current project's audiences/, else the working directory.
        project = find_project()
        out = project / "audiences" / "sample.csv" if project is not None else Path("sample.csv")
    if out.exists() and not force:
        raise ConfigurationError(f"{out}: already exists; choose another --out, or add --force to overwrite it")
    write_sample_csv(out, readers, seed=seed)
    console.print(f"wrote {readers} fictional readers to {escape(str(out))}")
