"""Form safety for the reader pages: per-form tokens, same-origin checks, bounded form bodies.

A form token is `<unix time>.<HMAC-SHA256 of "form:<public id>:<time>" with READERFIRST_SECRET>`:
it binds the form to one reader and expires, so a page on another site cannot submit a
reader's preferences for them. The pages set no cookie at all (one-click unsubscribe must work
without them), so the second line of defence is the browser's Origin (or Referer) header.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from pipeline.errors import PipelineError

__all__ = ["FORM_TOKEN_MAX_AGE", "FormTooLarge", "make_form_token", "check_form_token", "same_origin", "read_form",
           "guarded_form"]

FORM_TOKEN_MAX_AGE = 4 * 3600  # long enough to read a page and come back to it, short enough to expire
_CLOCK_SKEW = 60  # a token from a few seconds "in the future" (another worker's clock) is fine
_MAC_CHARS = 32
_MAX_FORM_BYTES = 64 * 1024  # the preference form is well under 4 KB
_MAX_FIELDS = 200


class FormTooLarge(PipelineError, ValueError):
    """A form body over the limit; answered 413 and never parsed."""


def _mac(secret: bytes, public_id: str, issued: int) -> str:
    message = f"form:{public_id}:{issued}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:_MAC_CHARS]


def make_form_token(secret: bytes, public_id: str, *, now: float | None = None) -> str:
    """A form token for the reader `public_id`, issued now."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(secret, public_id, issued)}"


def check_form_token(secret: bytes, public_id: str, token: str | None, *, now: float | None = None,
                     max_age: int = FORM_TOKEN_MAX_AGE) -> bool:
    """True if `token` was made for `public_id` with `secret` and has not expired."""
    if not token:
        return False
    issued_text, _, mac = token.partition(".")
    if not issued_text.isascii() or not issued_text.isdigit() or len(issued_text) > 12:
        return False
    issued = int(issued_text)
    if not hmac.compare_digest(mac, _mac(secret, public_id, issued)):
        return False
    age = (time.time() if now is None else now) - issued
    return -_CLOCK_SKEW <= age <= max_age


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def same_origin(request: Request, public_url: str) -> bool:
    """False when the browser says the form was posted from another site.

    The origin may be the public URL (behind a proxy) or the address the request came to.
    A request with neither Origin nor Referer (not a browser) passes: the form token guards it.
    """
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        claimed = _origin_of(referer) or "null"
    allowed = {_origin_of(public_url), _origin_of(str(request.base_url))}
    return claimed.lower() in allowed


async def read_form(request: Request) -> dict[str, list[str]]:
    """The fields of a urlencoded form body; other bodies read as no fields. Raises FormTooLarge."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_FORM_BYTES:
        raise FormTooLarge(declared)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise FormTooLarge(str(len(body)))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return {}


async def guarded_form(request: Request, *, secret: bytes, subject: str, public_url: str,
                       refused: Callable[[str], Response]) -> dict[str, list[str]] | Response:
    """The posted form once it passed every reader form's checks, or the response refusing it.

    In this order: a body over the limit is answered 413 unread; a post from another site, and
    one without a live form token made for `subject`, get `refused("origin")` or
    `refused("token")`, the page's own words for a 403. Nothing is saved in any of these cases.
    """
    try:
        form = await read_form(request)
    except FormTooLarge:
        return PlainTextResponse("form too large\n", status_code=413)
    if not same_origin(request, public_url):
        return refused("origin")
    if not check_form_token(secret, subject, (form.get("form_token") or [""])[0]):
        return refused("token")
    return form
