"""`readerfirst send | preview | status | check | serve`: editions out the door."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.cli.console import console, err_console, labelled, print_json
from pipeline.cli.handoff import send_through_runner
from pipeline.errors import ConfigurationError, NotSendable, UnknownReader, visible
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from pipeline.delivery.ledger import SendLedger

# Domain modules (the database, editions, rendering: a second or more) are imported by the function
# that uses them: a send handed to the send runner needs none of them before its run starts.

__all__ = ["register", "run_send", "plan_send", "SendPlan", "write_preview", "check_recipient", "ledger_progress",
           "announce_plan", "announce_running", "run_in_process"]


def _prepared(edition: Path):
    from pipeline.flows.runtime import prepared_edition

    return prepared_edition(load_settings(), edition)


def run_send(edition: Path, audience: str, *, dry_run: bool = False, limit: int | None = None,
             to: str | None = None, sandbox: bool = False, resend_unconfirmed: bool = False,
             show_progress: bool = True) -> dict:
    """Run the send-edition flow (handed to the send runner when one runs with these settings, else
    in this process) with a progress bar fed by the send ledger."""
    settings = load_settings()
    from pipeline.flows.task_runners import check_task_runner

    check_task_runner(settings)  # Dask on SQLite, or without its extra: said before anything starts
    # Checked before Prefect starts (10 s or more), so a mistake is reported at once.
    if sandbox and settings.sendgrid_api_key is None:
        raise ConfigurationError("--sandbox has SendGrid validate without delivering: set SENDGRID_API_KEY")
    # The flow's parameters, whichever process runs it (never a secret: the runner has its own).
    options = {"audience": audience, "dry_run": dry_run, "limit": limit, "to": to, "sandbox": sandbox,
               "resend_unconfirmed": resend_unconfirmed}
    # On stderr and only on a terminal: scripts read stdout, and a bar in a pipe is noise.
    visible = show_progress and not sandbox and err_console.is_terminal
    summary = send_through_runner(settings, edition, options, show_progress=show_progress, visible=visible)
    if summary is not None:
        return summary
    plan = plan_send(settings, edition, audience, limit=limit, to=to, resend_unconfirmed=resend_unconfirmed)
    announce_plan(plan, audience, dry_run=dry_run, show_progress=show_progress)
    with ledger_progress(plan, dry_run=dry_run, visible=visible) as tick:
        return run_in_process({"edition": str(plan.edition_path), **options}, tick)


@dataclass(frozen=True)
class SendPlan:
    """What a send is about to do: the edition, its ledger, how many readers it goes to, and how many
    readers of the edition were sent before it."""

    edition_id: str
    edition_path: Path
    ledger: SendLedger
    total: int
    sent_before: int


def plan_send(settings: Settings, edition: Path, audience: str, *, limit: int | None, to: str | None,
              resend_unconfirmed: bool, as_of: dt.datetime | None = None) -> SendPlan:
    """Validate the edition, the audience and any --to reader, and count the readers a send would reach.

    `as_of` (UTC): count as at that moment, the readers a run started since then has already taken
    included (the send runner may start before this count is made).
    """
    from pipeline.audience.directory import audience_id as find_audience
    from pipeline.delivery.ledger import SendLedger
    from pipeline.flows.runtime import database, prepared_edition

    prepared = prepared_edition(settings, edition)  # fail fast, before Prefect starts, on a bad edition
    db = database(settings)
    audience_id = find_audience(db, audience)
    ledger = SendLedger(db, prepared.edition.id)
    if to:
        check_recipient(db, ledger, audience_id, audience, to)
    taken, sent_since = _taken_since(db, ledger, audience_id, as_of) if as_of else (0, 0)
    total = len(ledger.readers_to_plan(audience_id)) + taken
    if resend_unconfirmed:
        total += sum(batch.readers for batch in ledger.unconfirmed())
    total = min(total, limit) if limit is not None else total
    return SendPlan(prepared.edition.id, prepared.edition.path, ledger, 1 if to else total,
                    ledger.counts()["sent"] - sent_since)


def _taken_since(db, ledger: SendLedger, audience_id: int, moment: dt.datetime) -> tuple[int, int]:
    """Readers of the audience this edition's sends took (sending, sent, failed) since `moment`, and how
    many of them are sent."""
    from sqlalchemy import func, select

    from pipeline.store.models import LedgerState, SendLedgerEntry

    entry = SendLedgerEntry
    when = func.coalesce(entry.sending_at, entry.sent_at, entry.planned_at)
    with db.session() as session:
        rows = session.execute(select(entry.state, func.count()).where(
            entry.edition_id == ledger.edition_id, entry.audience_id == audience_id,
            entry.state != LedgerState.PLANNED, when >= moment.astimezone(dt.timezone.utc).replace(tzinfo=None))
            .group_by(entry.state)).all()
    return sum(n for _, n in rows), sum(n for state, n in rows if state == LedgerState.SENT)


def announce_plan(plan: SendPlan, audience: str, *, dry_run: bool, show_progress: bool) -> None:
    """The line that opens a send: which edition, to whom, how many readers."""
    (console if show_progress else err_console).print(
        f"sending [bold]{escape(plan.edition_id)}[/] to {escape(audience)}: {plan.total} readers"
        + (" (dry run: nothing is sent)" if dry_run else ""))


@contextmanager
def ledger_progress(plan: SendPlan, *, dry_run: bool, visible: bool) -> Iterator[Callable[[], None]]:
    """A progress bar of readers sent (read from the ledger); yields the function that refreshes it."""
    ledger, total, before = plan.ledger, plan.total, plan.sent_before
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=not visible, transient=False) as progress:
        # A dry run records nothing in the ledger to count: its bar only shows that work goes on.
        bar = progress.add_task("selecting and rendering" if dry_run else "sent", total=None if dry_run else total or 1)

        def tick() -> None:
            if not dry_run and visible:
                progress.update(bar, completed=ledger.counts()["sent"] - before)

        yield tick
        tick()


def announce_running(name: str, where: str) -> None:
    """The first progress line: the flow run has started (benchmarks/cli_startup.py times it)."""
    err_console.print(f"[dim]flow run {escape(name)} running {where}[/]")


def run_in_process(parameters: dict, tick: Callable[[], None]) -> dict:
    """Run the send-edition flow in a thread of this process, refreshing the bar until it ends."""
    from pipeline.cli.prefect_server import connect_flow_runs

    connect_flow_runs()  # the Prefect server the run reports to: reused, started once, or temporary
    from pipeline.flows.send_edition import send_edition  # Prefect loads only when a flow runs

    from pipeline.flows.task_runners import with_task_runner

    # The task runner of the settings now, not at import.
    flow_with_hook = with_task_runner(send_edition, load_settings()).with_options(
        on_running=[lambda _flow, flow_run, _state: announce_running(flow_run.name, "in this process")])
    outcome: dict = {}

    def flow() -> None:
        try:
            outcome["summary"] = flow_with_hook(**parameters)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            outcome["error"] = exc

    worker = threading.Thread(target=flow, name="send-edition", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.25)
        tick()
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
    table = Table("unconfirmed batch", "readers", "handed over at", "transport", "held")
    for batch in unconfirmed:
        table.add_row(batch.batch_id, str(batch.readers), f"{batch.since:%Y-%m-%d %H:%M:%S}", batch.transport or "",
                      "yes" if batch.held else "")
    console.print(table)
    transports = {batch.transport for batch in unconfirmed}
    if "sendgrid" in transports:
        console.print(f"[yellow]SendGrid batches may or may not have reached readers. The next send of this edition"
                      " (or `readerfirst engagement apply`) reconciles them from SendGrid's delivery events: sent when"
                      f" SendGrid reported any event for the request, put back to be sent again when none came"
                      f" within {reconcile_after:g} s (READERFIRST_RECONCILE_AFTER) though events came for the"
                      " edition's requests just before and after it.[/]")
        held = sum(batch.readers for batch in unconfirmed if batch.held)
        if held:
            console.print(f"[yellow]{held} readers are held: no SendGrid event came for their request, and no event"
                          " of the edition's requests just before and after it shows that the event webhook was"
                          " working then, so silence proves nothing. If the webhook was down, SendGrid retries for a"
                          " day and their events settle them. Otherwise check SendGrid's Activity and, if they were"
                          f" not delivered, resend with `readerfirst send {escape(str(edition))} --audience NAME"
                          " --resend-unconfirmed`.[/]")
    if transports - {"sendgrid"}:
        names = ", ".join(sorted(t or "unknown" for t in transports - {"sendgrid"}))
        console.print(f"[yellow]batches of the {escape(names)} transport were interrupted (a crash) and may be partly"
                      " written; no delivery events will settle them. Check the outbox folder, then resend them with"
                      f" `readerfirst send {escape(str(edition))} --audience NAME --resend-unconfirmed`[/]")


def _reader_state(db, audience_id: int, email: str):
    from sqlalchemy import select

    from pipeline.audience.addresses import lookup_address
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
    from pipeline.audience.ask_tokens import ask_link_values
    from pipeline.audience.directory import audience_id as find_audience, find_reader_id, load_profiles
    from pipeline.audience.tokens import reader_links
    from pipeline.content.ask import ask_topics, asked_in
    from pipeline.delivery.planning import choose_for_reader, plan_settings, send_population
    from pipeline.flows.runtime import database
    from pipeline.rendering.links import web_version_url
    from pipeline.rendering.message import merge_values, personalise

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
    if asked_in(prepared.edition, selection.section_ids):
        values.update(ask_link_values(settings.signing_secret, settings.public_url, profile.public_id,
                                      prepared.edition.id, ask_topics(prepared.edition), today or dt.date.today()))
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

    from pipeline.audience.addresses import lookup_address
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
        from pipeline.audience.addresses import display_address, lookup_address

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
        from pipeline.delivery.ledger import SendLedger
        from pipeline.flows.runtime import database
        from pipeline.store.models import LedgerState

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
                                         "transport": b.transport or "", "held": b.held}
                                        for b in ledger.unconfirmed()]})
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
        json_output: bool = typer.Option(False, "--json", help="Print the verdict, section kinds and focus as JSON."),
    ) -> None:
        """Validate an edition and its templates without sending anything; list the section kinds; flag sections about the sender."""
        from pipeline.cli.kinds_listing import kind_lines, kinds_json
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
        counted = len(focus.counted)  # labelled sponsor sections are outside the share (reader_focus)
        if focus.sender_first and not allow_sender_first:
            raise ConfigurationError(
                f"{source}: {len(sender_first)} of {counted} sections are about the sender, not the"
                " reader (see the warnings above); rewrite them around what the reader gets, or pass"
                " --allow-sender-first")
        kinds = prepared.layout.kinds
        if json_output:
            print_json({"edition": prepared.edition.id, "path": str(source), "valid": True,
                        "sections": len(prepared.edition.sections),
                        "sections_per_reader": prepared.edition.sections_per_reader,
                        "max_sponsor": prepared.edition.max_sponsor,
                        "largest_message_bytes": prepared.layout.worst_case_html_bytes,
                        "kinds": kinds_json(kinds),
                        "reader_focus": [{"section": s.section_id, "score": s.score, "sponsored": s.sponsored,
                                          "sender_first": s.sender_first,
                                          "flags": [{"reason": f.reason, "sentence": f.sentence} for f in s.flags]}
                                         for s in focus.sections]})
            return
        console.print(f"{prepared.edition.path}: edition {prepared.edition.id} is valid:"
                      f" {len(prepared.edition.sections)} sections, {prepared.edition.sections_per_reader} per reader,"
                      f" largest possible message {prepared.layout.worst_case_html_bytes / 1024:.1f} KB;"
                      f" {counted - len(sender_first)} of {counted} sections reader-first")
        console.print(f"section kinds in {escape(str(kinds.folder))}/sections (each also takes id, kind, title,"
                      " topics, pinned; ? marks an optional field):", soft_wrap=True)
        for line in kind_lines(kinds):
            console.print(escape(line), soft_wrap=True)

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

