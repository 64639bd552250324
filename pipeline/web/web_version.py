"""`GET /web/{token}`: a reader's own copy of an edition, in the browser ("view in browser").

The token names the edition and the reader and is signed with READERFIRST_SECRET like the
unsubscribe token (`pipeline.rendering.links.web_version_token`), so nobody can read another
reader's copy by changing the address. The page is what the send ledger says the reader got
(their sections, in their order, with their reasons), rendered by the same templates as the
email, minus tracking: no link carries the edition, section or campaign parameters, so
reading it online never counts as a click on the email.

The page holds the reader's own links and address: it is never indexed, cached, framed or
sent on as a referrer, and it can run no script and load nothing but images.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from pipeline.audience.ask_tokens import ask_link_values
from pipeline.audience.tokens import reader_links
from pipeline.content.ask import ask_topics, asked_in
from pipeline.content.edition import load_edition
from pipeline.delivery.preparation import PreparedEdition, prepare_edition
from pipeline.errors import PipelineError
from pipeline.rendering.event_times import event_times
from pipeline.rendering.links import read_web_version_token, untag_url, web_version_url
from pipeline.rendering.message import merge_values_for, personalise
from pipeline.settings import Settings
from pipeline.store.database import Database
from pipeline.store.models import LedgerState, Reader, SendLedgerEntry
from pipeline.web.pages import PAGE_HEADERS, not_found, page

__all__ = ["web_version_page", "find_copy", "ReaderCopy", "render_copy", "WEB_VERSION_HEADERS", "MAX_TOKEN_CHARS"]

# An edition id (100) plus `~`, a public id (32), `.` and the MAC (32), with room to spare.
MAX_TOKEN_CHARS = 200
# The reader's copy shows the edition's images and nothing else from outside: no script can run.
WEB_VERSION_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
                                "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Robots-Tag": "noindex, nofollow, noarchive",  # the reader's own copy: their address, their links
}
_HREF = re.compile(r'href="([^"]*)"')
_SHOWN_STATES = (LedgerState.SENT, LedgerState.SENDING)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderCopy:
    """What one reader got of one edition, from the send ledger and their profile."""

    edition_id: str
    public_id: str
    email: str
    first_name: str
    last_name: str
    timezone: str
    picks: tuple[tuple[str, str], ...]  # (section id, reason) in the order the reader saw them


def find_copy(db: Database, edition_id: str, public_id: str) -> ReaderCopy | None:
    """The reader's copy of the edition if it was sent to them (or may have been), else None."""
    with db.session() as session:
        row = session.execute(
            select(Reader.email, Reader.first_name, Reader.last_name, Reader.timezone, SendLedgerEntry.picks)
            .join(SendLedgerEntry, SendLedgerEntry.reader_id == Reader.id)
            .where(Reader.public_id == public_id, SendLedgerEntry.edition_id == edition_id,
                   SendLedgerEntry.state.in_(_SHOWN_STATES))).first()
    if row is None:
        return None
    email, first_name, last_name, timezone, picks = row
    return ReaderCopy(edition_id, public_id, email, first_name, last_name, timezone,
                      tuple((str(sid), str(reason)) for sid, reason in picks))


@lru_cache(maxsize=32)
def _edition_file(folder: str, edition_id: str, fingerprint: tuple) -> Path | None:
    for path in sorted(Path(folder).glob("*.y*ml")):
        if path.stem == edition_id:
            return path
    # A file named otherwise: the id inside it decides (read once per change of the folder).
    for path in sorted(Path(folder).glob("*.y*ml")):
        if path.name in ("topics.yaml", "topics.yml"):
            continue
        try:
            if load_edition(path).id == edition_id:
                return path
        except PipelineError:
            continue
    return None


def _prepared(settings: Settings, edition_id: str) -> PreparedEdition | None:
    folder = settings.editions_dir
    if not folder.is_dir():
        return None
    fingerprint = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.y*ml")))
    path = _edition_file(str(folder), edition_id, fingerprint)
    if path is None:
        return None
    # The same edition the send prepared: with READERFIRST_ASK=auto, the ask it added.
    return prepare_edition(path, settings.templates_dir, identity=settings.sender_identity(), ask=settings.ask)


def _untracked(page_html: str) -> str:
    """Every href without the tracking parameters the email's links carry."""
    return _HREF.sub(lambda m: f'href="{html.escape(untag_url(html.unescape(m[1])), quote=True)}"', page_html)


def render_copy(settings: Settings, copy: ReaderCopy) -> str | None:
    """The reader's copy as a web page, or None when the edition or its sections are gone."""
    prepared = _prepared(settings, copy.edition_id)
    if prepared is None:
        return None
    # An edition edited after the send keeps the sections that still exist, in the reader's order.
    picks = [(sid, reason) for sid, reason in copy.picks if sid in prepared.edition.by_id]
    if not picks:
        return None
    section_ids = tuple(sid for sid, _ in picks)
    secret = settings.signing_secret
    unsubscribe_url, preferences_url = reader_links(secret, settings.public_url, copy.public_id)
    values = merge_values_for(
        first_name=copy.first_name, last_name=copy.last_name, email=copy.email, reasons=dict(picks),
        unsubscribe_url=unsubscribe_url, preferences_url=preferences_url,
        web_version_url=web_version_url(secret, settings.public_url, copy.public_id, copy.edition_id),
        event_times=event_times(prepared.edition, section_ids, copy.timezone))
    if asked_in(prepared.edition, section_ids):
        # The ask's answer links, signed for this reader as the email's were (the answer page is no tracking).
        values.update(ask_link_values(secret, settings.public_url, copy.public_id, copy.edition_id,
                                      ask_topics(prepared.edition), dt.datetime.now(dt.UTC).date()))
    message = personalise(prepared.layout.variant(section_ids), values, subject="")
    return _untracked(message.html)


async def web_version_page(request: Request) -> Response:
    """GET: the reader's copy of the edition; a forged, altered or unknown link gets the plain 404 page."""
    token = request.path_params["token"]
    if len(token) > MAX_TOKEN_CHARS:
        return page("not_found.html", 400, title="Link not valid")
    state = request.app.state.web
    found = read_web_version_token(state.secret, token)
    if found is None:
        return not_found()
    copy = await run_in_threadpool(find_copy, state.db, *found)
    try:
        body = await run_in_threadpool(render_copy, state.settings, copy) if copy is not None else None
    except PipelineError as exc:
        # The edition or templates were changed since the send and no longer render: the
        # operator sees why, the reader sees the plain page (never a traceback, nor their data).
        log.error("web version of %s cannot be rendered: %s", copy.edition_id, exc)
        body = None
    if body is None:
        return not_found()
    return HTMLResponse(body, headers=WEB_VERSION_HEADERS)
