"""`/a/{token}`: the page behind the ask's answer links, where a reader states a need.

A GET (and so a HEAD) only shows the page: link scanners and mail previewers fetch every
link in a message, with whatever headers, and must never record a need. The page's POST
records it, and only when it carries the genuine signed token in its address, a form token
made for that very link (a nonce that expires) and, when the browser names one, this site's
origin. A forged, altered or expired link is answered with a plain 400 and records nothing.

An answer the database cannot take at once (locked, unreachable) is kept in the consent spool
(pipeline/web/consent_spool.py) before the reader is told it is saved, and applied as soon as
the database answers; only when the spool cannot keep it either is the answer 503, with
nothing recorded. An acknowledged answer is never lost.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline.audience.ask_tokens import AskClaim, FREE_TEXT, make_ask_token, read_ask_token
from pipeline.content.ask import ASK_MAX_TOPICS
from pipeline.web import consent_spool
from pipeline.web.ask_answers import MAX_WORDS_CHARS, TooManyWords, active_needs, clean_words, record_answer, sent_edition
from pipeline.web.forms import guarded_form, make_form_token
from pipeline.web.pages import AskPage, bad_link, page, unavailable
from pipeline.web.reader_choices import ReaderView, find_reader

if TYPE_CHECKING:  # the application module imports this one
    from pipeline.web.app import WebState

__all__ = ["ask_page", "ask_submit", "ASK_DAYS", "ASK_DEFAULT_DAYS", "NEEDS_ASKED"]

ASK_DAYS = (30, 45, 60)
ASK_DEFAULT_DAYS = 45
NEEDS_ASKED = 2  # "the two things you need": the confirmation offers a second until two are running

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Link:
    """A genuine, unexpired ask link: its claim, the reader, and the edition it was sent in."""

    token: str
    claim: AskClaim
    reader: ReaderView
    edition_id: str


async def _link(request: Request) -> _Link | None:
    state = request.app.state.web
    token = request.path_params["token"]
    claim = read_ask_token(state.secret, token, state.today())
    if claim is None or not (claim.free_text or claim.topic in state.taxonomy):
        return None
    reader = await run_in_threadpool(find_reader, state.db, claim.public_id)
    if reader is None:
        return None
    edition_id = await run_in_threadpool(sent_edition, state.db, reader.id, claim.edition_key)
    return _Link(token, claim, reader, edition_id) if edition_id is not None else None


def _nonce_subject(link: _Link) -> str:
    # The form token is bound to this very link: a nonce from another link (or reader) is refused.
    return f"ask:{link.token}"


def _view(request: Request, link: _Link, **changes: object) -> AskPage:
    state = request.app.state.web
    topic = "" if link.claim.free_text else link.claim.topic
    view = AskPage(action=request.url.path, form_token=make_form_token(state.secret, _nonce_subject(link)),
                   topic=topic, label=state.taxonomy.label(topic) if topic else "",
                   topics=list(state.taxonomy.labels.items()), days=ASK_DAYS, default_days=ASK_DEFAULT_DAYS,
                   max_words=MAX_WORDS_CHARS, greeting=link.reader.first_name)
    return dataclasses.replace(view, **changes)


async def ask_page(request: Request) -> Response:
    """GET (and HEAD): the answer form for this link; records nothing, whoever fetches it."""
    link = await _link(request)
    if link is None:
        return bad_link()
    return page("ask.html", title="What do you need?", view=_view(request, link))


_REFUSALS = {"origin": "This form was sent from another site, so nothing was saved.",
             "token": "This form has expired or did not come from this page, so nothing was saved. "
                      "Open the link in your email again."}


def _refused(message: str) -> Response:
    return page("message.html", 403, title="Please open the link again", message=message)


async def ask_submit(request: Request) -> Response:
    """POST from the page: record the need and the answer, then confirm and offer the second need."""
    state = request.app.state.web
    link = await _link(request)
    if link is None:
        return bad_link()
    form = await guarded_form(request, secret=state.secret, subject=_nonce_subject(link),
                              public_url=state.settings.public_url, refused=lambda why: _refused(_REFUSALS[why]))
    if isinstance(form, Response):
        return form
    topic = link.claim.topic if not link.claim.free_text else (form.get("topic") or [""])[0].strip()
    days_text = (form.get("days") or [str(ASK_DEFAULT_DAYS)])[0].strip()
    raw_words = (form.get("words") or [""])[0]
    errors = []
    if topic not in state.taxonomy:
        errors.append("Choose the topic your need is closest to.")
    if days_text not in {str(d) for d in ASK_DAYS}:
        errors.append(f"Choose {', '.join(str(d) for d in ASK_DAYS[:-1])} or {ASK_DAYS[-1]} days.")
    try:
        words = clean_words(raw_words)
    except TooManyWords:
        words = None
        errors.append(f"Please say it in at most {MAX_WORDS_CHARS} characters.")
    if errors:
        return page("ask.html", 400, title="What do you need?",
                    view=_view(request, link, errors=errors, chosen=topic if topic in state.taxonomy else "",
                               words=raw_words[:MAX_WORDS_CHARS]))
    until = state.today() + dt.timedelta(days=int(days_text))
    kept = await run_in_threadpool(_record_or_keep, state, link, topic, until, words)
    if not kept:
        return unavailable()
    running = await _running_needs(state, link.reader.id)
    running[topic] = until
    return page("ask.html", title="Saved", view=_view(request, link, saved=state.taxonomy.label(topic),
                                                      until=until.isoformat(),
                                                      second=_second(state, link, running)))


async def _running_needs(state: WebState, reader_id: int) -> dict[str, dt.date]:
    try:
        return await run_in_threadpool(active_needs, state.db, reader_id, state.today())
    except SQLAlchemyError:  # the answer is kept; the offer of a second need can do without the others
        return {}


def _second(state: WebState, link: _Link, running: dict[str, dt.date]) -> list[tuple[str, str]]:
    """One-click links for the second need, while fewer than two needs are running."""
    if len(running) >= NEEDS_ASKED:
        return []
    offered = [t for t in state.taxonomy.labels if t not in running][:ASK_MAX_TOPICS] + [FREE_TEXT]
    links = []
    for topic in offered:
        token = make_ask_token(state.secret, link.reader.public_id, link.edition_id, topic, link.claim.expires)
        label = "Something else, in my own words" if topic == FREE_TEXT else state.taxonomy.label(topic)
        links.append((label, f"/a/{token}"))
    return links


def _record_or_keep(state: WebState, link: _Link, topic: str, until: dt.date, words: str | None) -> bool:
    """Record now, or keep the answer in the spool; False when neither could take it (nothing recorded)."""
    if not state.spool.pending():  # decisions waiting there go first, in order
        try:
            record_answer(state.db, link.reader.id, link.edition_id, topic, until, words)
            return True
        except SQLAlchemyError as exc:
            log.warning("the database could not take an answer to the ask (%s); keeping it in the consent spool",
                        type(exc).__name__)
    try:
        state.spool.keep(consent_spool.ASK, link.reader.public_id, edition_id=link.edition_id, topic=topic,
                         until=until.isoformat(), words=words)
    except OSError as failure:
        log.error("could not keep an answer to the ask: the spool %s failed too (%s)", state.spool.folder,
                  failure.strerror)
        return False
    return True
