"""`POST /webhooks/inbound`: SendGrid's Inbound Parse, the replies readers send to their reply address.

Protected as SendGrid documents for Inbound Parse ("Securing your Inbound Parse Webhooks"): a
security policy with signature verification has SendGrid sign each post with ECDSA P-256 over
`timestamp + raw body`, in the same two headers as the signed Event Webhook, checked here with
`SENDGRID_INBOUND_PUBLIC_KEY` through the `sendgrid` library's EventWebhook helper (the same
`SignatureCheck` and replay window as `/webhooks/sendgrid`). SendGrid's other mechanism is OAuth
(a bearer token it fetches from a server of yours), which readerfirst does not run; basic auth in
the URL is not among the documented policies.

Order of checks: a key is configured (404 otherwise: the endpoint does not exist until it is
protected), the body fits `READERFIRST_INBOUND_MAX_BYTES` (413), the signature and timestamp
(403), the form parses (400). Then the reply is stored in one transaction and only then
answered 200; a database that cannot take it (locked, unreachable) is a 503 with Retry-After,
and SendGrid posts it again (Inbound Parse retries for up to three days); the Message-ID makes
the repeat harmless. Log lines never hold the reply's text or addresses.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from pipeline.engagement.inbound_parse import InvalidInboundPost, parse_inbound_form
from pipeline.engagement.replies import store_reply
from pipeline.web.webhook import SignatureCheck, failure_summary, read_signed_body

__all__ = ["INBOUND_KEY_VARIABLE", "inbound_signature_check", "receive_inbound_parse"]

INBOUND_KEY_VARIABLE = "SENDGRID_INBOUND_PUBLIC_KEY"
_RETRY_AFTER = "60"

log = logging.getLogger(__name__)


def inbound_signature_check(public_key: str | None, max_age_seconds: int) -> SignatureCheck:
    """The signature check of Inbound Parse posts, keyed by SENDGRID_INBOUND_PUBLIC_KEY."""
    return SignatureCheck(public_key, max_age_seconds, variable=INBOUND_KEY_VARIABLE)


async def receive_inbound_parse(request: Request) -> Response:
    """The Inbound Parse endpoint (see the module docstring for the order of checks)."""
    state = request.app.state.web
    check: SignatureCheck = state.inbound_check
    if check.problem:
        return PlainTextResponse("not found\n", status_code=404)
    body = await read_signed_body(request, check, state.settings.inbound_max_bytes, "an inbound parse post")
    if isinstance(body, Response):
        return body
    try:
        message = parse_inbound_form(body, request.headers.get("content-type", ""))
    except InvalidInboundPost as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    settings = state.settings
    try:
        stored = await run_in_threadpool(store_reply, state.db, message, secret=state.secret,
                                         reply_domain=settings.reply_domain or None, taxonomy=state.taxonomy)
    except (SQLAlchemyError, OSError) as exc:
        log.error("could not store a reply of %d bytes; SendGrid will post it again: %s", len(body),
                  failure_summary(exc))
        return PlainTextResponse("the database cannot take replies now; retry later\n", status_code=503,
                                 headers={"Retry-After": _RETRY_AFTER})
    log.info("reply stored: id %s, %s%s", stored.reply_id, "attributed" if stored.attributed else "unattributed",
             ", a duplicate" if stored.duplicate else "")
    return JSONResponse({"reply_id": stored.reply_id, "duplicate": stored.duplicate, "attributed": stored.attributed})
