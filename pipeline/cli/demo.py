"""`readerfirst demo`: the whole job on embedded defaults, on a fresh machine, with nothing to set up."""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.markup import escape

from pipeline.cli.console import console
from pipeline.errors import ConfigurationError
from pipeline.project import SAMPLE_EDITION_NAME, packaged_file
from pipeline.settings import load_settings

__all__ = ["register", "run_demo", "clear_demo_folder", "show_replies", "show_answers", "MARKER"]

# The packaged defaults (the wheel's or the checkout's), never the current project's: the demo shows the
# sample as shipped, wherever it is run.
SAMPLE_AUDIENCE = packaged_file("audiences", "sample.csv")
SAMPLE_EDITION = packaged_file("editions", SAMPLE_EDITION_NAME)
PREVIEW_READERS = 3
READER_MODEL = packaged_file("audiences", "reader-models", "focused.yaml")
SIMULATED_EDITIONS = 4
SIMULATED_READERS = 400
# Readers' Reply-To addresses are reply+<token>@this domain; the emulator's simulated readers reply there.
DEMO_REPLY_DOMAIN = "replies.readerfirst.example"


def _index_page(edition_id: str, previews: list[tuple[str, Path, list[tuple[str, str]]]]) -> str:
    items = []
    for email, path, picks in previews:
        reasons = "".join(f"<li>{html.escape(title)}: <em>{html.escape(reason)}</em></li>" for title, reason in picks)
        items.append(f'<section><h2><a href="{html.escape(path.name)}">{html.escape(email)}</a></h2><ol>{reasons}</ol></section>')
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>readerfirst demo: {html.escape(edition_id)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}"
            "em{color:#52606d}</style>"
            f"<h1>Edition {html.escape(edition_id)}: three readers, three newsletters</h1>{''.join(items)}</html>")


@contextmanager
def _local_services(folder: Path) -> Iterator[tuple[str, str]]:
    """The web service and the SendGrid-compatible emulator on loopback, wired to each other.

    The emulator signs its delivery events with a key whose public half the web service checks,
    exactly as with SendGrid's signed Event Webhook, and its simulated readers (the demo's reader
    model) open, click and reply: replies go to each reader's Reply-To address, posted as signed
    Inbound Parse forms to the web service, as SendGrid's Inbound Parse would. Readers whose copy
    carries the ask may answer it: they open its link on the web service and send its form.
    """
    from pipeline.emulator import WebhookSigner, load_signing_key, running_emulator
    from pipeline.simulation.asks import AskHabit
    from pipeline.web import create_app, running_server

    key_file = folder / "emulator-webhook-key.pem"
    os.environ["SENDGRID_WEBHOOK_PUBLIC_KEY"] = WebhookSigner(load_signing_key(key_file)).public_key
    # One key signs both here; on SendGrid the Inbound Parse security policy has a key of its own.
    os.environ["SENDGRID_INBOUND_PUBLIC_KEY"] = os.environ["SENDGRID_WEBHOOK_PUBLIC_KEY"]
    os.environ["READERFIRST_REPLY_DOMAIN"] = DEMO_REPLY_DOMAIN
    with running_server(create_app()) as web_url:
        os.environ["READERFIRST_PUBLIC_URL"] = web_url
        with running_emulator(store_path=folder / "sendgrid-emulator.db", signing_key_path=key_file,
                              webhook_url=f"{web_url}/webhooks/sendgrid", reader_model=READER_MODEL,
                              reader_editions=SAMPLE_EDITION.parent,
                              inbound_url=f"{web_url}/webhooks/inbound", ask_habit=AskHabit()) as emulator:
            os.environ["SENDGRID_API_KEY"] = emulator.api_key
            os.environ["SENDGRID_API_HOST"] = emulator.url
            try:
                yield web_url, emulator
            finally:
                emulator.flush_events(timeout=10)


MARKER = ".readerfirst-demo"
# What a demo writes in its folder; a rerun removes these and nothing else.
DEMO_ENTRIES = ("readerfirst.db", "readerfirst.db-wal", "readerfirst.db-shm", "readerfirst.db-journal", "secret.key",
                "outbox", "previews", "simulation", "report.html", "sendgrid-emulator.db", "sendgrid-emulator.db-wal",
                "sendgrid-emulator.db-shm", "emulator-webhook-key.pem", "consent-spool")


def clear_demo_folder(folder: Path, *, force: bool = False) -> None:
    """Make `folder` ready for a demo, removing only what an earlier demo wrote there.

    A folder that is not empty and holds no demo marker is someone else's: refused unless `force`
    (even then only the demo's own file names are replaced; nothing else is touched).
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(f"{folder}: is a file, not a folder; choose another --folder")
    if folder.is_dir():
        ours = (folder / MARKER).is_file()
        if not ours and not force and any(folder.iterdir()):
            raise ConfigurationError(f"{folder}: not empty and not made by `readerfirst demo`; choose another"
                                     " --folder, or add --force to let the demo replace its own files there")
        for name in DEMO_ENTRIES:
            entry = folder / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `readerfirst demo`: a rerun replaces the demo's own files here\n",
                                 encoding="utf-8")


def run_demo(folder: Path, *, force: bool = False) -> dict:
    """Import the sample audience, send the sample edition through the SendGrid emulator, learn, preview."""
    from pipeline.audience.addresses import display_address
    from pipeline.audience.importer import import_audience
    from pipeline.cli.prefect_server import connect_flow_runs
    from pipeline.cli.sending import run_send, write_preview  # after the environment is set

    # Before READERFIRST_HOME moves into the demo folder: the background Prefect server belongs
    # to the user's home and outlives demos.
    prefect = connect_flow_runs()
    clear_demo_folder(folder, force=force)  # a demo starts from nothing, so it can be run again
    os.environ["READERFIRST_HOME"] = str(folder)
    for name in ("READERFIRST_DATABASE_URL", "SENDGRID_API_KEY", "SENDGRID_API_HOST", "READERFIRST_OUTBOX"):
        os.environ.pop(name, None)
    # The sample edition's own templates and topics, even when run inside a project that changed its own.
    os.environ["READERFIRST_TEMPLATES"] = str(packaged_file("templates"))
    os.environ["READERFIRST_TOPICS"] = str(packaged_file("editions", "topics.yaml"))
    settings = load_settings()
    from pipeline.flows.runtime import database

    console.rule("1. import the sample audience")
    report = import_audience(database(settings), SAMPLE_AUDIENCE, "sample")
    console.print(f"{report.created} fictional readers from {SAMPLE_AUDIENCE} into {settings.resolved_database_url}")

    with _local_services(folder) as (web_url, emulator):
        console.rule("2. send the sample edition (flow send-edition -> SendGrid-compatible emulator)")
        console.print(f"[dim]web service (webhook, unsubscribe, preferences) on {web_url};"
                      f" SendGrid emulator on {emulator.url}[/]")
        console.print(f"[dim]flow runs report to Prefect at {prefect.url or 'a temporary server (10-15 s to start)'}[/]")
        summary = run_send(SAMPLE_EDITION, "sample")
        console.print(f"sent {summary['sent']} newsletters in {summary['requests']} SendGrid requests"
                      f" ({summary['variants']} variants), {summary['readers_per_second']} readers/s")
    settings = load_settings()

    console.rule("3. what three readers got, and why")
    from pipeline.audience.records import read_audience_file

    readers = [r for r in read_audience_file(SAMPLE_AUDIENCE).records if r.status != "unsubscribed"]
    previews = []
    for record in readers[:PREVIEW_READERS]:
        html_path, _, picks = write_preview(SAMPLE_EDITION, record.email, "sample", None)
        previews.append((record.email, html_path, picks))
        follows = ", ".join(f"{topic} {weight:g}" for topic, weight in (record.interests or {}).items())
        console.print(f"[bold]{escape(display_address(record.email))}[/] follows {escape(follows or 'nothing yet')}")
        for title, reason in picks:
            console.print(f"   {escape(title)}  [dim]({escape(reason)})[/]")
    index = settings.previews_dir / summary["edition"] / "index.html"
    index.write_text(_index_page(summary["edition"], previews), encoding="utf-8")
    replies = show_replies(summary)
    answers = show_answers(summary)

    simulation = _simulate_editions(folder / "simulation")
    report = _write_report(simulation)
    console.rule("done")
    console.print(f"open the previews: {index.resolve().as_uri()}")
    console.print(f"open the engagement report: {report.resolve().as_uri()}")
    console.print(f"every message SendGrid received, with substitutions applied: {folder / 'sendgrid-emulator.db'}")
    return {"summary": summary, "index": index, "previews": [p for _, p, _ in previews], "simulation": simulation,
            "report": report, "replies": replies, "answers": answers}


def show_replies(summary: dict) -> dict:
    """Step 3b of the demo loop: replies from simulated readers are listed, a suggested need is confirmed,
    and that reader's next copy serves it ("you said you need help with X").

    Kept apart so the ask (issue 16, item 1) can be wired in beside it: answers to the ask and
    replies are two ways of hearing the same thing.
    """
    from pipeline.audience.addresses import display_address
    from pipeline.cli.sending import write_preview
    from pipeline.content.topics import load_taxonomy
    from pipeline.engagement.replies import confirm_reply, list_replies
    from pipeline.flows.runtime import database
    from pipeline.store.models import Reader

    settings = load_settings()
    db = database(settings)
    console.rule("3b. replies: readers wrote back to their own Reply-To address (Inbound Parse)")
    rows = list_replies(db)
    attributed = [r for r in rows if r.attributed]
    rate = len(attributed) / summary["sent"] if summary.get("sent") else 0.0
    console.print(f"{len(rows)} replies ({len(attributed)} attributed to a reader and the edition):"
                  f" a response rate of {rate:.1%} of {summary.get('sent', 0)} sent")
    for row in attributed[:3]:
        console.print(f"   #{row.id} {escape(' '.join(row.text.split())[:100])}  [dim](suggests:"
                      f" {escape(', '.join(row.suggested_topics) or 'nothing')})[/]")
    taxonomy = load_taxonomy(settings.topics_file)
    for row in [r for r in attributed if r.suggested_topics][:10]:
        with db.session() as session:
            reader = session.get(Reader, row.reader_id) if row.reader_id is not None else None
            email = reader.email if reader is not None else None
        if email is None:
            continue
        until = confirm_reply(db, row.id, row.suggested_topics[0], days=30, taxonomy=taxonomy)
        _, _, picks = write_preview(SAMPLE_EDITION, email, "sample", None)
        served = [(title, reason) for title, reason in picks if "you said you need" in reason]
        if not served:
            continue  # a holdout reader gets the editor's copy: try the next reply
        console.print(f"confirmed reply #{row.id}: {escape(display_address(email))} needs "
                      f"{row.suggested_topics[0]} until {until} (readerfirst replies confirm {row.id} "
                      f"{row.suggested_topics[0]}); their next copy:")
        for title, reason in picks:
            console.print(f"   {escape(title)}  [dim]({escape(reason)})[/]")
        return {"replies": len(rows), "attributed": len(attributed), "response_rate": rate, "confirmed": row.id,
                "served": served}
    return {"replies": len(rows), "attributed": len(attributed), "response_rate": rate, "confirmed": None,
            "served": []}


def show_answers(summary: dict) -> dict:
    """Step 3c of the demo loop: readers answered the ask on the web service (a GET of their link,
    then the page's POST), their needs were recorded, and one's next copy serves it."""
    from sqlalchemy import select

    from pipeline.audience.addresses import display_address
    from pipeline.cli.sending import write_preview
    from pipeline.flows.runtime import database
    from pipeline.store.models import AskAnswer, Reader

    db = database(load_settings())
    console.rule("3c. the ask: readers answered \"what do you need?\" on the answer page (GET, then the form's POST)")
    with db.session() as session:
        rows = session.execute(select(AskAnswer.reader_id, Reader.email, AskAnswer.topic, AskAnswer.words)
                               .join(Reader, Reader.id == AskAnswer.reader_id).order_by(AskAnswer.id)).all()
    answered = len({reader_id for reader_id, *_ in rows})
    console.print(f"{answered} readers answered the ask ({len(rows)} answers) of {summary.get('sent', 0)} sent;"
                  " each answer is a need the next edition serves")
    for _, email, topic, words in rows[:10]:
        _, _, picks = write_preview(SAMPLE_EDITION, email, "sample", None)
        served = [(title, reason) for title, reason in picks if "you said you need" in reason]
        if not served:
            continue  # a holdout reader gets the editor's copy: try the next answer
        said = f" (in their words: \u201c{escape(words)}\u201d)" if words else ""
        console.print(f"reader {escape(display_address(email))} said they need {escape(topic)}{said};"
                      " their next copy:")
        for title, reason in picks:
            console.print(f"   {escape(title)}  [dim]({escape(reason)})[/]")
        return {"answered": answered, "answers": len(rows), "example": email, "topic": topic, "served": served}
    return {"answered": answered, "answers": len(rows), "example": None, "topic": None, "served": []}


def _write_report(simulation: Path) -> Path:
    """The engagement report of the simulated editions, as one self-contained HTML file."""
    from pipeline.report import build_report, render_html
    from pipeline.store.database import open_database

    console.rule("5. the engagement report: what each edition did, and whether personalisation helped")
    db = open_database(f"sqlite:///{simulation / 'simulation.db'}")
    try:
        report = build_report(db)
    finally:
        db.dispose()
    out = simulation.parent / "report.html"
    out.write_text(render_html(report), encoding="utf-8")
    data = report.as_dict()
    lifts = {entry["edition_id"]: entry for entry in data["lift"]}
    for row in data["editions"]:
        lift = lifts.get(row["edition_id"], {})
        interval = (f" (95% CI {lift['lift_low']:+.0%} to {lift['lift_high']:+.0%})"
                    if lift.get("lift_low") is not None else "")
        versus = f", personalised vs holdout {lift['lift']:+.0%}{interval}" if lift.get("lift") is not None else ""
        console.print(f"{row['edition_id']}: delivered {row['delivered']}, click-through {row['ctr']:.1%},"
                      f" click-to-open {row['ctor']:.1%}{versus}")
    responses = {entry["edition_id"]: entry for entry in data["responses"]}
    for served in data["needs_served"]:
        response = responses.get(served["edition_id"], {})
        arms = [(arm, response[arm]) for arm in ("personalised", "holdout") if response.get(arm)]
        rates = ", ".join(f"{arm} {a['response_rate']:.1%} ({a['answered']} answers to the ask, {a['replied']} replies)"
                          for arm, a in arms if a["response_rate"] is not None)
        console.print(f"{served['edition_id']}: response rate {rates or 'n/a'}; needs served:"
                      f" {served['served']} of {served['readers_with_need']} readers with a need got a section for it")
    # Per edition: the pooled "all" entry sums the holdout's deliveries over every edition.
    holdout = max((entry["holdout"]["delivered"] for entry in data["lift"] if entry["edition_id"] != "all"),
                  default=0)
    console.print(f"[dim]the holdout is {holdout} of {SIMULATED_READERS} readers in each edition: the intervals"
                  " are wide, as they should be with so few[/]")
    return out


def _simulate_editions(folder: Path) -> Path:
    """Several editions in simulated weeks: send -> simulated engagement -> learning -> next edition."""
    from sqlalchemy import create_engine, text

    from pipeline.simulation.evaluate import run_evaluation

    console.rule(f"4. {SIMULATED_EDITIONS} editions in simulated weeks: send -> engagement -> learning")
    console.print(f"[dim]simulated readers ({READER_MODEL.name}) open, click and unsubscribe; learning updates"
                  " their profiles before the next edition; 10% holdout gets the editor's selection[/]")

    def show(measure) -> None:
        console.print(f"edition {measure.edition}: click-through personalised {measure.ctr_personalised:.1%},"
                      f" editor's selection {measure.ctr_editorial:.1%}, oracle {measure.ctr_oracle:.1%}"
                      f" (lift {measure.lift:+.0%})")

    run_evaluation(READER_MODEL, editions=SIMULATED_EDITIONS, readers=SIMULATED_READERS, seed=7,
                   transport="outbox", folder=folder, on_edition=show, replies=True, asks=True)
    engine = create_engine(f"sqlite:///{folder / 'simulation.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT topic, count(*), sum(learned_clicks), sum(learned_exposures) FROM reader_interests"
            " WHERE learned_exposures > 0 GROUP BY topic ORDER BY sum(learned_clicks) / sum(learned_exposures) DESC"
        )).all()
    engine.dispose()
    console.print("how profiles moved: what readers showed they want, per topic (learned clicks per exposure)")
    for topic, readers, clicks, exposures in rows:
        console.print(f"   {topic:<12} {clicks / exposures:6.1%} over {readers} readers")
    return folder


def register(app: typer.Typer) -> None:
    """Add `demo` to `app`."""

    @app.command()
    def demo(
        folder: Path = typer.Option(None, "--folder", help="Where the demo writes (default: <home>/demo)."),
        force: bool = typer.Option(False, "--force", help="Use a non-empty folder the demo did not make."),
    ) -> None:
        """Run the whole job on the sample audience and edition: no key, no server to start."""
        run_demo((folder or load_settings().home / "demo").resolve(), force=force)
