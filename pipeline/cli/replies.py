"""`readerfirst replies ...`: what readers wrote back, for the editor; a suggested need confirmed in one command."""

from __future__ import annotations

import typer
from rich.markup import escape

from pipeline.cli.console import console, print_json
from pipeline.settings import load_settings

__all__ = ["app"]

app = typer.Typer(help="Replies readers sent to their reply address (READERFIRST_REPLY_DOMAIN): list, confirm a "
                       "need, mark answered. Without a command, lists them.", invoke_without_command=True)

_PREVIEW_CHARS = 160


@app.callback()
def replies(
    ctx: typer.Context,
    edition: str | None = typer.Option(None, "--edition", help="Only replies to this edition id."),
    topic: str | None = typer.Option(None, "--topic", help="Only replies that suggest (or confirmed) this topic."),
    unanswered: bool = typer.Option(False, "--unanswered", help="Only replies not yet marked answered."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many, newest first."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON: [{id, received_at, edition, attributed, "
                                     "from, subject, text, suggested_topics, confirmed_topic, answered_at}]."),
) -> None:
    """List replies, newest first: who (attributed or not), which edition, their words, the needs they suggest."""
    if ctx.invoked_subcommand is not None:
        return
    from pipeline.engagement.replies import list_replies
    from pipeline.flows.runtime import database

    rows = list_replies(database(load_settings()), edition=edition, topic=topic, unanswered=unanswered, limit=limit)
    if json_output:
        print_json([row.as_json() for row in rows])
        return
    if not rows:
        console.print("no replies" + (" match" if edition or topic or unanswered else " yet"))
        return
    for row in rows:
        words = " ".join(row.text.split())
        words = words if len(words) <= _PREVIEW_CHARS else words[:_PREVIEW_CHARS - 1] + "…"
        who = escape(row.from_address) if row.attributed else f"{escape(row.from_address)} (unattributed)"
        state = ("answered" if row.answered_at else "unanswered") + (
            f", need confirmed: {row.confirmed_topic}" if row.confirmed_topic else "")
        suggested = ", ".join(row.suggested_topics) or "none"
        console.print(f"#{row.id} {row.received_at:%Y-%m-%d %H:%M} edition {escape(row.edition_id or '-')} "
                      f"from {who} [{state}]", soft_wrap=True)
        console.print(f"    {escape(words) or '(no text)'}", soft_wrap=True)
        console.print(f"    suggested needs: {escape(suggested)}"
                      + (f"  (confirm: readerfirst replies confirm {row.id} {row.suggested_topics[0]})"
                         if row.suggested_topics and row.attributed and not row.confirmed_topic else ""),
                      soft_wrap=True)


@app.command("confirm")
def confirm(
    reply_id: int = typer.Argument(..., help="The reply's id (first column of `readerfirst replies`)."),
    topic: str = typer.Argument(..., help="The need's topic, e.g. one the reply suggests."),
    days: int = typer.Option(30, "--days", help="How long the need lasts: 30, 45 or 60 days."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON: {reply, topic, until}."),
) -> None:
    """Record TOPIC as a need of the reply's reader (source "reply"), served first until it expires."""
    from pipeline.content.topics import load_taxonomy
    from pipeline.engagement.replies import confirm_reply
    from pipeline.flows.runtime import database

    settings = load_settings()
    until = confirm_reply(database(settings), reply_id, topic, days=days, taxonomy=load_taxonomy(settings.topics_file))
    if json_output:
        print_json({"reply": reply_id, "topic": topic, "until": until.isoformat()})
        return
    console.print(f"reply #{reply_id}: need {escape(topic)} recorded until {until.isoformat()}")


@app.command("answered")
def answered(
    reply_id: int = typer.Argument(..., help="The reply's id."),
) -> None:
    """Mark a reply answered (the editor wrote back), so `--unanswered` leaves it out."""
    from pipeline.engagement.replies import mark_answered
    from pipeline.flows.runtime import database

    mark_answered(database(load_settings()), reply_id)
    console.print(f"reply #{reply_id} marked answered")
