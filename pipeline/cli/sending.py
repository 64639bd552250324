"""`readerfirst send | preview | status | check | serve`: editions out the door."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.audience.directory import audience_id as find_audience, find_reader_id, load_profiles
from pipeline.audience.tokens import reader_links
from pipeline.cli.console import console, fail
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.planning import choose_for_reader, plan_settings, send_population
from pipeline.flows.runtime import database, prepared_edition
from pipeline.rendering.message import merge_values, personalise
from pipeline.settings import load_settings

__all__ = ["register", "run_send", "write_preview"]


def _prepared(edition: Path):
    return prepared_edition(load_settings(), edition)


def run_send(edition: Path, audience: str, *, dry_run: bool = False, limit: int | None = None,
             to: str | None = None, sandbox: bool = False, resend_unconfirmed: bool = False,
             show_progress: bool = True) -> dict:
    """Run the send-edition flow with a progress bar fed by the send ledger."""
    settings = load_settings()
    prepared = _prepared(edition)  # fail fast, before Prefect starts, on a bad edition
    db = database(settings)
    audience_id = find_audience(db, audience)
    ledger = SendLedger(db, prepared.edition.id)
    total = len(ledger.readers_to_plan(audience_id))
    if resend_unconfirmed:
        total += sum(batch.readers for batch in ledger.unconfirmed())
    total = min(total, limit) if limit is not None else total
    total = 1 if to else total
    before = ledger.counts()["sent"]

    from pipeline.cli.prefect_server import connect_flow_runs

    connect_flow_runs()  # the Prefect server the run reports to: reused, started once, or temporary
    from pipeline.flows.send_edition import send_edition  # Prefect loads only when a flow runs

    outcome: dict = {}

    def flow() -> None:
        try:
            outcome["summary"] = send_edition(edition=str(prepared.edition.path), audience=audience,
                                              dry_run=dry_run, limit=limit, to=to, sandbox=sandbox,
                                              resend_unconfirmed=resend_unconfirmed)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            outcome["error"] = exc

    worker = threading.Thread(target=flow, name="send-edition", daemon=True)
    console.print(f"sending [bold]{prepared.edition.id}[/] to {escape(audience)}: {total} readers"
                  + (" (dry run: nothing is sent)" if dry_run else ""))
    worker.start()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress or dry_run or sandbox,
                  transient=False) as progress:
        bar = progress.add_task("sent", total=total or 1)
        while worker.is_alive():
            worker.join(0.25)
            progress.update(bar, completed=ledger.counts()["sent"] - before)
        progress.update(bar, completed=ledger.counts()["sent"] - before)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["summary"]


def _print_summary(summary: dict) -> None:
    table = Table("", "", show_header=False, box=None)
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), escape(str(value)))
    console.print(table)


def write_preview(edition: Path, email: str, audience: str | None, out: Path | None, *,
                  today: dt.date | None = None) -> tuple[Path, Path, list[tuple[str, str]]]:
    """Write one reader's HTML and text; returns the two paths and the picks with their reasons."""
    settings = load_settings()
    prepared = _prepared(edition)
    db = database(settings)
    audience_id = find_audience(db, audience) if audience else _audience_of(db, email)
    profile = load_profiles(db, [find_reader_id(db, audience_id, email)])[0]
    # The same choice the send makes (policy, seed, holdout), so the preview shows what is sent.
    selection, holdout = choose_for_reader(prepared.edition, profile, today=today or dt.date.today(),
                                           settings=plan_settings(),
                                           population=send_population(db, audience_id, prepared.edition.id))
    unsubscribe_url, preferences_url = reader_links(settings.signing_secret, settings.public_url, profile.public_id)
    values = merge_values(profile, selection, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url)
    subject = prepared.subject.render({"first_name": profile.first_name, "last_name": profile.last_name,
                                       "email": profile.email})
    message = personalise(prepared.layout.variant(selection.section_ids), values, subject)
    folder = out or settings.previews_dir / prepared.edition.id
    folder.mkdir(parents=True, exist_ok=True)
    stem = profile.email.replace("/", "_")
    html_path, text_path = folder / f"{stem}.html", folder / f"{stem}.txt"
    html_path.write_text(message.html, encoding="utf-8")
    text_path.write_text(f"Subject: {message.subject}\n\n{message.text}", encoding="utf-8")
    picks = [(prepared.edition.section(p.section_id).title, p.reason) for p in selection.picks]
    if holdout:
        picks.append(("(this reader is in the holdout group: they get the editor's selection)", ""))
    return html_path, text_path, picks


def _audience_of(db, email: str) -> int:
    from sqlalchemy import select

    from pipeline.store.models import Reader

    with db.session() as session:
        ids = session.scalars(select(Reader.audience_id).where(Reader.email == email.strip().lower())).all()
    if len(ids) != 1:
        fail(f"{email} is in {len(ids)} audiences; say which with --audience")
    return ids[0]


def register(app: typer.Typer) -> None:
    """Add the sending commands to `app`."""

    @app.command()
    def send(
        edition: Path = typer.Argument(..., help="Edition file, or a folder to send its newest edition."),
        audience: str = typer.Option(..., "--audience", "-a", help="Audience to send to."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Select and render for everyone, send nothing."),
        limit: int | None = typer.Option(None, "--limit", min=1, help="Send to at most N readers not yet sent."),
        to: str | None = typer.Option(None, "--to", help="Send only to this reader of the audience."),
        sandbox: bool = typer.Option(False, "--sandbox", help="SendGrid validates every request, delivers nothing."),
        resend_unconfirmed: bool = typer.Option(False, "--resend-unconfirmed",
                                                help="Also resend batches a crash left unconfirmed (see status)."),
    ) -> None:
        """Send an edition: select -> render -> send -> record, as a Prefect flow run."""
        summary = run_send(edition, audience, dry_run=dry_run, limit=limit, to=to, sandbox=sandbox,
                           resend_unconfirmed=resend_unconfirmed)
        _print_summary(summary)
        if summary["unconfirmed_batches"]:
            console.print(f"[yellow]{summary['unconfirmed_readers']} readers are in unconfirmed batches:"
                          f" see `readerfirst status {edition}`[/]")

    @app.command()
    def preview(
        edition: Path = typer.Argument(..., help="Edition file (or folder: newest edition)."),
        email: str = typer.Option(..., "--email", help="The reader to preview."),
        audience: str | None = typer.Option(None, "--audience", "-a", help="Audience of the reader, if in several."),
        out: Path | None = typer.Option(None, "--out", help="Folder for the HTML and text (default: previews/)."),
    ) -> None:
        """Write one reader's newsletter (HTML and text) and show the picks with their reasons."""
        html_path, text_path, picks = write_preview(edition, email, audience, out)
        table = Table("#", "section", "why this reader gets it")
        for number, (title, reason) in enumerate(picks, start=1):
            table.add_row(str(number), escape(title), escape(reason))
        console.print(table)
        console.print(f"HTML: {html_path.resolve().as_uri()}\ntext: {text_path}")

    @app.command()
    def status(edition: Path = typer.Argument(..., help="Edition file (or folder: newest edition).")) -> None:
        """Where the send of an edition stands, and any unconfirmed batches."""
        prepared = _prepared(edition)
        ledger = SendLedger(database(load_settings()), prepared.edition.id)
        counts = ledger.counts()
        console.print(f"edition {prepared.edition.id}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                      + f"; {ledger.variants()} variants")
        unconfirmed = ledger.unconfirmed()
        if unconfirmed:
            table = Table("unconfirmed batch", "readers", "handed over at", "transport")
            for batch in unconfirmed:
                table.add_row(batch.batch_id, str(batch.readers), f"{batch.since:%Y-%m-%d %H:%M:%S}",
                              batch.transport or "")
            console.print(table)
            console.print("[yellow]these batches may or may not have reached readers; they are never resent"
                          " automatically. If you know they were not delivered (SendGrid's activity feed),"
                          f" resend them with `readerfirst send {edition} --audience NAME --resend-unconfirmed`[/]")

    @app.command()
    def check(edition: Path = typer.Argument(..., help="Edition file (or folder: newest edition).")) -> None:
        """Validate an edition and its templates without sending anything."""
        prepared = _prepared(edition)
        console.print(f"{prepared.edition.path}: edition {prepared.edition.id} is valid:"
                      f" {len(prepared.edition.sections)} sections, {prepared.edition.sections_per_reader} per reader,"
                      f" largest possible message {prepared.layout.worst_case_html_bytes / 1024:.1f} KB")

    @app.command()
    def serve(
        editions: Path = typer.Option(Path("editions"), "--editions", help="Folder of editions: each run sends the newest."),
        audience: str = typer.Option(..., "--audience", "-a", help="Audience to send to."),
        cron: str = typer.Option("0 7 * * 1", "--cron", help="When to send (cron, default Mondays 07:00)."),
        timezone: str = typer.Option("UTC", "--timezone", help="Time zone of the cron schedule."),
    ) -> None:
        """Serve the scheduled deployments (weekly send) until stopped."""
        from pipeline.cli.prefect_server import connect_flow_runs

        # A temporary server runs no scheduler: scheduled runs need a lasting server.
        connect_flow_runs()
        from prefect import serve as prefect_serve

        from pipeline.flows.schedules import build_deployments

        deployments = build_deployments(editions=str(editions.resolve()), audience=audience, cron=cron,
                                        timezone=timezone)
        console.print(f"serving {', '.join(d.name for d in deployments)} ({cron}, {timezone}); Ctrl-C stops")
        prefect_serve(*deployments)

