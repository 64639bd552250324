"""`readerfirst send | preview | status | check | serve`: editions out the door."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.audience.addresses import display_address, lookup_address
from pipeline.audience.directory import audience_id as find_audience, find_reader_id, load_profiles
from pipeline.audience.tokens import reader_links
from pipeline.cli.console import console, err_console, labelled, print_json
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.planning import choose_for_reader, plan_settings, send_population
from pipeline.errors import ConfigurationError, NotSendable, UnknownReader, visible
from pipeline.flows.runtime import database, prepared_edition
from pipeline.rendering.links import web_version_url
from pipeline.rendering.message import merge_values, personalise
from pipeline.settings import load_settings
from pipeline.store.models import LedgerState

__all__ = ["register", "run_send", "write_preview", "check_recipient"]


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
    # Checked before Prefect starts (10 s or more), so a mistake is reported at once.
    if sandbox and settings.sendgrid_api_key is None:
        raise ConfigurationError("--sandbox has SendGrid validate without delivering: set SENDGRID_API_KEY")
    if to:
        check_recipient(db, ledger, audience_id, audience, to)
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
    (console if show_progress else err_console).print(
        f"sending [bold]{escape(prepared.edition.id)}[/] to {escape(audience)}: {total} readers"
        + (" (dry run: nothing is sent)" if dry_run else ""))
    worker.start()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # On stderr and only on a terminal: scripts read stdout, and a bar in a pipe is noise.
    with Progress(*columns, console=err_console, disable=not show_progress or sandbox or not err_console.is_terminal,
                  transient=False) as progress:
        # A dry run records nothing in the ledger to count: its bar only shows that work goes on.
        bar = progress.add_task("selecting and rendering" if dry_run else "sent", total=None if dry_run else total or 1)
        while worker.is_alive():
            worker.join(0.25)
            if not dry_run:
                progress.update(bar, completed=ledger.counts()["sent"] - before)
        if not dry_run:
            progress.update(bar, completed=ledger.counts()["sent"] - before)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["summary"]


def _print_decisions(ledger: SendLedger) -> None:
    """What reconciliation decided for this edition (readers by state and decision)."""
    decisions = {key: n for key, n in ledger.reasons().items() if key[1].startswith("reconciled:")}
    if not decisions:
        return
    table = Table("reconciliation decided", "readers", "now")
    for (state, reason), readers in sorted(decisions.items(), key=lambda item: (item[0][1], item[0][0])):
        table.add_row(escape(reason.removeprefix("reconciled: ")), str(readers), state)
    console.print(table)


def _print_failed(ledger: SendLedger, total: int) -> None:
    """Readers refused for this edition, with the reason (their address, or SendGrid's message)."""
    if not total:
        return
    shown = ledger.failed(limit=20)
    table = Table("failed reader", "why (never sent; fix the address, then send again)")
    for reader in shown:
        table.add_row(escape(reader.email), escape(reader.reason))
    console.print(table)
    if total > len(shown):
        console.print(f"... and {total - len(shown)} more failed readers")


def _print_unconfirmed(ledger: SendLedger, edition: Path, reconcile_after: float) -> None:
    """Batches handed to a transport and never confirmed, with what happens to them next."""
    unconfirmed = ledger.unconfirmed()
    if not unconfirmed:
        return
    table = Table("unconfirmed batch", "readers", "handed over at", "transport")
    for batch in unconfirmed:
        table.add_row(batch.batch_id, str(batch.readers), f"{batch.since:%Y-%m-%d %H:%M:%S}", batch.transport or "")
    console.print(table)
    transports = {batch.transport for batch in unconfirmed}
    if "sendgrid" in transports:
        console.print(f"[yellow]SendGrid batches may or may not have reached readers. The next send of this edition"
                      " (or `readerfirst engagement apply`) reconciles them from SendGrid's delivery events: sent when"
                      f" SendGrid reported any event for the request, put back to be sent again when none came"
                      f" within {reconcile_after:g} s (READERFIRST_RECONCILE_AFTER).[/]")
    if transports - {"sendgrid"}:
        names = ", ".join(sorted(t or "unknown" for t in transports - {"sendgrid"}))
        console.print(f"[yellow]batches of the {escape(names)} transport were interrupted (a crash) and may be partly"
                      " written; no delivery events will settle them. Check the outbox folder, then resend them with"
                      f" `readerfirst send {escape(str(edition))} --audience NAME --resend-unconfirmed`[/]")


def _reader_state(db, audience_id: int, email: str):
    from sqlalchemy import select

    from pipeline.store.models import Reader

    with db.session() as session:
        return session.execute(select(Reader.id, Reader.status, Reader.suppressed_reason)
                               .where(Reader.audience_id == audience_id, Reader.email == lookup_address(email))
                               ).first()


def check_recipient(db, ledger: SendLedger, audience_id: int, audience: str, email: str) -> None:
    """Raise, saying which, unless the reader `email` of `audience` may be sent this edition now."""
    reader = _reader_state(db, audience_id, email)
    # The address is never repeated in the message: error text carries no reader data.
    if reader is None:
        raise UnknownReader(f"--to: no reader with that address in audience {audience!r};"
                            " check the spelling, or import them first")
    if reader.status != "subscribed":
        raise NotSendable(f"--to: that reader is {reader.status} in audience {audience!r};"
                          " readerfirst never sends to them (only the reader can resubscribe)")
    if reader.suppressed_reason is not None:
        raise NotSendable(f"--to: that reader is suppressed ({reader.suppressed_reason}) in audience {audience!r};"
                          " readerfirst never sends to them")
    if not ledger.readers_to_plan(audience_id, [reader.id]):
        raise NotSendable(f"--to: that reader was already sent edition {ledger.edition_id};"
                          " each reader gets an edition once")


def remaining_readers(db, ledger: SendLedger) -> dict[str, int]:
    """Per audience this edition was sent to: sendable readers not yet sending or sent (after a --limit)."""
    from sqlalchemy import select

    from pipeline.store.models import Audience, SendLedgerEntry

    with db.session() as session:
        audiences = session.execute(select(Audience.id, Audience.name).where(Audience.id.in_(
            select(SendLedgerEntry.audience_id).where(SendLedgerEntry.edition_id == ledger.edition_id).distinct()))
        ).all()
    return {name: len(ledger.readers_to_plan(audience_id)) for audience_id, name in sorted(audiences, key=lambda a: a[1])}


def _print_summary(summary: dict) -> None:
    table = Table("", "", show_header=False, box=None)
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), escape(str(value)))
    console.print(table)


def write_preview(edition: Path, email: str, audience: str | None, out: Path | None, *,
                  today: dt.date | None = None, force: bool = False) -> tuple[Path, Path, list[tuple[str, str]]]:
    """Write one reader's HTML and text; returns the two paths and the picks with their reasons.

    In a folder given with `out`, existing files are replaced only with `force` (the default
    previews folder is readerfirst's own).
    """
    settings = load_settings()
    prepared = _prepared(edition)
    db = database(settings)
    audience_id = find_audience(db, audience) if audience else _audience_of(db, email)
    profile = load_profiles(db, [find_reader_id(db, audience_id, email)])[0]
    state = _reader_state(db, audience_id, email)
    if state is not None and (state.status != "subscribed" or state.suppressed_reason is not None):
        why = state.status if state.status != "subscribed" else f"suppressed ({state.suppressed_reason})"
        err_console.print(f"[yellow]warning:[/] this reader is {escape(why)}: a send skips them;"
                          " the preview shows what they would get")
    # The same choice the send makes (policy, seed, holdout), so the preview shows what is sent.
    selection, holdout = choose_for_reader(prepared.edition, profile, today=today or dt.date.today(),
                                           settings=plan_settings(),
                                           population=send_population(db, audience_id, prepared.edition.id))
    unsubscribe_url, preferences_url = reader_links(settings.signing_secret, settings.public_url, profile.public_id)
    values = merge_values(profile, selection, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url,
                          web_version_url=web_version_url(settings.signing_secret, settings.public_url,
                                                          profile.public_id, prepared.edition.id),
                          edition=prepared.edition)
    subject = prepared.subject.render({"first_name": profile.first_name, "last_name": profile.last_name,
                                       "email": profile.email})
    message = personalise(prepared.layout.variant(selection.section_ids), values, subject)
    folder = out or settings.previews_dir / prepared.edition.id
    folder.mkdir(parents=True, exist_ok=True)
    stem = profile.email.replace("/", "_")
    html_path, text_path = folder / f"{stem}.html", folder / f"{stem}.txt"
    if out is not None and not force and (html_path.exists() or text_path.exists()):
        raise ConfigurationError(f"{folder}: already holds this reader's preview; choose another --out,"
                                 " or add --force to overwrite it")
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
        ids = session.scalars(select(Reader.audience_id).where(Reader.email == lookup_address(email))).all()
    if not ids:
        raise UnknownReader("--email: no reader with that address in any audience; check the spelling,"
                            " or import them first")
    if len(ids) > 1:
        raise UnknownReader(f"--email: that reader is in {len(ids)} audiences; say which with --audience")
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
        json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON (no progress bar)."),
    ) -> None:
        """Send an edition: select -> render -> send -> record, as a Prefect flow run."""
        summary = run_send(edition, audience, dry_run=dry_run, limit=limit, to=to, sandbox=sandbox,
                           resend_unconfirmed=resend_unconfirmed, show_progress=not json_output)
        if json_output:
            print_json(summary)
            return
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
        force: bool = typer.Option(False, "--force", help="Overwrite this reader's files in --out."),
    ) -> None:
        """Write one reader's newsletter (HTML and text) and show the picks with their reasons."""
        html_path, text_path, picks = write_preview(edition, email, audience, out, force=force)
        # The address as the reader knows it (a Unicode domain), whichever form was typed.
        shown = display_address(lookup_address(email))
        table = Table("#", "section", "why this reader gets it", title=f"what {escape(shown)} gets")
        for number, (title, reason) in enumerate(picks, start=1):
            table.add_row(str(number), escape(title), escape(reason))
        console.print(table)
        console.print(f"HTML: {html_path.resolve().as_uri()}\ntext: {text_path}")

    @app.command()
    def status(
        edition: Path = typer.Argument(..., help="Edition file (or folder: newest edition)."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON: {edition, counts, variants, remaining,"
                                         " unconfirmed}."),
    ) -> None:
        """Where the send of an edition stands: counts, readers still to send, refused readers,
        reconciliation, unconfirmed batches."""
        settings = load_settings()
        prepared = _prepared(edition)
        db = database(settings)
        ledger = SendLedger(db, prepared.edition.id)
        counts = ledger.counts()
        remaining = remaining_readers(db, ledger)
        if json_output:
            print_json({"edition": prepared.edition.id, "counts": counts, "variants": ledger.variants(),
                        "remaining": remaining,
                        "unconfirmed": [{"batch_id": b.batch_id, "readers": b.readers, "since": b.since.isoformat(),
                                         "transport": b.transport or ""} for b in ledger.unconfirmed()]})
            return
        console.print(f"edition {escape(prepared.edition.id)}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                      + f"; {ledger.variants()} variants")
        for name, left in remaining.items():
            if left:
                console.print(f"{left} readers of {escape(name)} not yet sent: run `readerfirst send` again"
                              " for them (without --limit for all)")
        _print_decisions(ledger)
        _print_failed(ledger, counts[LedgerState.FAILED])
        _print_unconfirmed(ledger, edition, settings.reconcile_after)

    @app.command()
    def check(
        edition: Path | None = typer.Argument(
            None, help="Edition file (or folder: newest edition); default: the project's editions/."),
        allow_sender_first: bool = typer.Option(
            False, "--allow-sender-first", help="Pass an edition where most sections are about the sender."),
    ) -> None:
        """Validate an edition and its templates without sending anything; flag sections about the sender."""
        from pipeline.content.reader_focus import edition_focus
        from pipeline.project import project_editions

        prepared = _prepared(edition or project_editions())
        source = prepared.edition.path
        focus = edition_focus(prepared.edition)
        for section in focus.sections:
            for flag in section.flags:
                # Advice, not an error: one line per flag, the editor's own sentence quoted.
                err_console.print(labelled("warning:", "yellow", f"{source}: sections[{section.section_id}]:"
                                           f" {flag.reason} (reader focus {section.score:+.2f}):"
                                           f" \"{visible(flag.sentence)}\""), soft_wrap=True)
        sender_first = focus.sender_first_sections
        if focus.sender_first and not allow_sender_first:
            raise ConfigurationError(
                f"{source}: {len(sender_first)} of {len(focus.sections)} sections are about the sender, not the"
                " reader (see the warnings above); rewrite them around what the reader gets, or pass"
                " --allow-sender-first")
        console.print(f"{prepared.edition.path}: edition {prepared.edition.id} is valid:"
                      f" {len(prepared.edition.sections)} sections, {prepared.edition.sections_per_reader} per reader,"
                      f" largest possible message {prepared.layout.worst_case_html_bytes / 1024:.1f} KB;"
                      f" {len(focus.sections) - len(sender_first)} of {len(focus.sections)} sections reader-first")

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
        console.print(f"serving {', '.join(d.name for d in deployments)} ({escape(cron)}, {escape(timezone)});"
                      " Ctrl-C stops")
        try:
            prefect_serve(*deployments)
        except KeyboardInterrupt:  # Ctrl-C is how a user stops it: not an error, no traceback
            pass
        # Prefect's runner sometimes takes the Ctrl-C itself and returns: stopped either way.
        err_console.print("stopped")

