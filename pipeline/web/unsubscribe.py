"""`/u/{token}`: one-click unsubscribe (RFC 8058) and the page behind the visible unsubscribe link.

A POST unsubscribes at once and answers 200 with no redirect and no cookie, as mailbox
providers' one-click requires. A GET only shows a page with a button that POSTs: link scanners
and previewers fetch every GET in a message, and must not unsubscribe anyone. Any POST to a
genuine link unsubscribes, whatever its body: RFC 8058 clients send
`List-Unsubscribe=One-Click`, but failing to honour a reader's unsubscribe costs far more than
the POST a scanner never sends.

The answer "you are unsubscribed" is a promise: when the database cannot take the change
(locked, unreachable), it is kept durably in the consent spool first and applied as soon as
the database answers, always before any later send plans or claims readers. Only when even
the spool cannot keep it is the answer 503 with Retry-After, having changed nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline.audience.tokens import make_token, read_token
from pipeline.web.forms import FormTooLarge, read_form
from pipeline.web import consent_spool
from pipeline.web.pages import not_found, page, unavailable
from pipeline.web.reader_choices import find_reader, unsubscribe_reader

__all__ = ["unsubscribe_page", "unsubscribe_now", "unsubscribe_surely", "UNSUBSCRIBE", "PREFERENCES"]

UNSUBSCRIBE = "u"
PREFERENCES = "p"

log = logging.getLogger(__name__)


def _public_id(request: Request) -> str | None:
    return read_token(request.app.state.web.secret, request.path_params["token"], UNSUBSCRIBE)


async def unsubscribe_page(request: Request) -> Response:
    """GET: a confirmation page whose button POSTs to the same address; changes nothing."""
    public_id = _public_id(request)
    state = request.app.state.web
    reader = await run_in_threadpool(find_reader, state.db, public_id) if public_id else None
    if reader is None:
        return not_found()
    preferences_url = f"/p/{make_token(state.secret, reader.public_id, PREFERENCES)}"
    return page("unsubscribe.html", title="Unsubscribe", done=reader.unsubscribed, action=request.url.path,
                preferences_url=preferences_url)


async def unsubscribe_now(request: Request) -> Response:
    """POST: unsubscribe the reader now (idempotent) and say so."""
    public_id = _public_id(request)
    if public_id is None:
        return not_found()
    try:
        form = await read_form(request)
    except FormTooLarge:
        form = {}  # the body is not needed: a genuine link is enough to unsubscribe
    one_click = form.get("List-Unsubscribe") == ["One-Click"]
    result = await unsubscribe_surely(request, public_id, via="one-click" if one_click else "unsubscribe page")
    if result is None:
        return not_found()
    if result is _NOT_KEPT:
        return unavailable()
    return page("unsubscribe.html", title="Unsubscribed", done=True, action=request.url.path, preferences_url="")


_NOT_KEPT = object()


async def unsubscribe_surely(request: Request, public_id: str, *, via: str) -> object:
    """Unsubscribe now, or keep the decision in the spool when the database cannot take it.

    Returns True (done or kept), False (already unsubscribed), None (no such reader) or
    _NOT_KEPT when neither the database nor the spool could take it (answer 503).
    """
    state = request.app.state.web
    try:
        result = await run_in_threadpool(unsubscribe_reader, state.db, public_id, via=via)
    except SQLAlchemyError as exc:
        # The token is genuine (we signed it), so the decision is the reader's: keep it.
        try:
            await run_in_threadpool(state.spool.keep, consent_spool.UNSUBSCRIBE, public_id, via=via)
        except OSError as failure:
            log.error("could not keep an unsubscribe: the database failed (%s) and the spool %s too (%s)",
                      type(exc).__name__, state.spool.folder, failure.strerror)
            return _NOT_KEPT
        log.warning("the database could not take an unsubscribe (%s); kept in the consent spool", type(exc).__name__)
        return True
    if result:
        log.info("reader %s unsubscribed (%s)", public_id, via)
    return result
