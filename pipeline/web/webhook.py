"""`POST /webhooks/sendgrid`: SendGrid's signed Event Webhook, stored durably before it is answered.

Order of checks, cheapest first: a public key is configured (503: unsigned events are never
taken), the body fits (413), the signature headers are there and the timestamp is within the
window in either direction (403: a captured request cannot be replayed later), the ECDSA
signature matches the raw bytes (403), the body is a JSON array (400). Then the batch is
stored in one transaction and only then answered 200; if the database cannot take it the
answer is 503, and SendGrid retries the whole batch, which deduplication makes harmless. A
replay inside the window is harmless for the same reason. Inside a genuine array, an event
that cannot be read is quarantined and never fails the batch: the answer is still 200 (see
`sendgrid_events`). The 503's log line names the error's class, never its message, which
holds readers' addresses and events. A reader's unsubscribe, spam report, hard bounce or group
choice is in force in that same transaction, not only once learning runs
(`pipeline.engagement.suppressions`).
"""

from __future__ import annotations

import base64
import binascii
import errno
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from pipeline.engagement.sendgrid_events import InvalidEventBody, parse_events
from pipeline.engagement.store import StoreReport, store_events
from pipeline.errors import PipelineError
from pipeline.store.database import Database

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WEBHOOK_SOURCE", "BodyTooLarge", "SignatureCheck",
           "failure_summary", "read_limited_body", "read_signed_body", "receive_sendgrid_events", "store_webhook_body"]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
WEBHOOK_SOURCE = "sendgrid-webhook"
_RETRY_AFTER = "30"

log = logging.getLogger(__name__)


def failure_summary(exc: BaseException) -> str:
    """The exception's class and a short reason that never holds readers' data, for a log line.

    A database error's message carries the statement and its parameters (addresses, raw
    events), and PostgreSQL's detail quotes the values of a violated key: none of it is logged.
    What is logged is the classes, SQLite's error code name, PostgreSQL's SQLSTATE, or the
    errno name of an OS error.
    """
    def qualified(error: BaseException) -> str:
        return f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")

    cause = getattr(exc, "orig", None)
    summary = qualified(exc) if cause is None else f"{qualified(exc)} from {qualified(cause)}"
    cause = exc if cause is None else cause
    code = (getattr(cause, "sqlite_errorname", None) or getattr(cause, "sqlstate", None)
            or (errno.errorcode.get(cause.errno) if isinstance(cause, OSError) and cause.errno else None))
    # A code is a fixed name (SQLITE_BUSY, 40P01, ENOSPC), never data; anything else is not shown.
    if isinstance(code, str) and code.replace("_", "").isalnum() and len(code) <= 40:
        summary += f" ({code})"
    return summary


class BodyTooLarge(PipelineError, ValueError):
    """A request body over the configured limit; answered 413 and never parsed."""


@dataclass
class SignatureCheck:
    """Verifies SendGrid's ECDSA signature and the freshness of its timestamp."""

    public_key: str | None
    max_age_seconds: int
    variable: str = "SENDGRID_WEBHOOK_PUBLIC_KEY"  # the setting the key comes from, for messages

    def __post_init__(self) -> None:
        self._helper = EventWebhook()
        self._key: ec.EllipticCurvePublicKey | None = None
        self.problem: str | None = None
        if not self.public_key:
            where = ("the Inbound Parse security policy's public key" if "INBOUND" in self.variable
                     else "the verification key from SendGrid's Mail Settings > Signed Event Webhook")
            self.problem = f"{self.variable} is not set; unsigned posts are never accepted. Copy {where}."
            return
        # Accept the key as SendGrid shows it, or pasted as PEM with its armour and line breaks.
        bare = "".join(line.strip() for line in self.public_key.strip().splitlines() if "-----" not in line)
        try:
            key = self._helper.convert_public_key_to_ecdsa(bare)
        except (ValueError, TypeError) as exc:
            self.problem = f"{self.variable} is not a base64 DER public key: {exc}"
            return
        if not isinstance(key, ec.EllipticCurvePublicKey):
            self.problem = f"{self.variable} is not an ECDSA key"
            return
        self._key = key

    def refusal(self, body: bytes, signature: str | None, timestamp: str | None, *, now: float | None = None) -> str | None:
        """Why the request must be refused (403), or None when it is genuine and fresh."""
        if self._key is None:
            return self.problem or "no public key"
        if not signature or not timestamp:
            return "missing signature headers"
        timestamp = timestamp.strip()
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            return "the signature timestamp is not Unix seconds"
        now = time.time() if now is None else now
        if abs(now - int(timestamp)) > self.max_age_seconds:
            return f"the signature timestamp is more than {self.max_age_seconds} s from now"
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            # The helper takes text; bytes that are not UTF-8 are checked as they are.
            return None if self._verify_bytes(body, signature, timestamp) else "signature does not match"
        try:
            # The helper re-encodes the text to UTF-8, which gives back exactly the raw bytes.
            genuine = self._helper.verify_signature(payload, signature, timestamp, self._key)
        except (binascii.Error, ValueError):
            return "the signature is not base64 DER"
        return None if genuine else "signature does not match"

    def _verify_bytes(self, body: bytes, signature: str, timestamp: str) -> bool:
        assert self._key is not None
        try:
            self._key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request's body; BodyTooLarge past `limit` bytes (declared or read), ValueError for a bad length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ValueError("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge(declared)
    body = bytearray()
    # The declared length is checked above, and the bytes actually read here: a client may lie.
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(str(len(body)))
    return bytes(body)


# SQLite takes one writer at a time, and its busy handler sleeps in steps of up to 100 ms while
# it waits; batches of this process wait their turn on a lock instead, which wakes at once.
_SQLITE_WRITER = threading.Lock()


def store_webhook_body(db: Database, body: bytes, topic_groups: Mapping[str, str] | None = None) -> StoreReport:
    """Read and store one verified webhook body, its readers' refusals in force at once (`topic_groups`: ASM
    group id -> topic); raises InvalidEventBody or the database's error."""
    events, quarantined = parse_events(body)
    if db.dialect != "sqlite":
        return store_events(db, events, quarantined, source=WEBHOOK_SOURCE, refusals_now=True,
                            topic_groups=topic_groups)
    with _SQLITE_WRITER:
        return store_events(db, events, quarantined, source=WEBHOOK_SOURCE, refusals_now=True,
                            topic_groups=topic_groups)


async def read_signed_body(request: Request, check: SignatureCheck, limit: int, what: str) -> bytes | Response:
    """The request's body once its size and SendGrid signature pass, else the response refusing it.

    Shared by the Event Webhook and Inbound Parse: 413 past `limit`, 400 for a bad length,
    403 (logged with `what` and the client) when the signature check refuses it.
    """
    try:
        body = await read_limited_body(request, limit)
    except BodyTooLarge:
        return PlainTextResponse(f"body over {limit} bytes\n", status_code=413)
    except ValueError as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    refusal = check.refusal(body, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER))
    if refusal:
        log.warning("refused %s from %s: %s", what, request.client.host if request.client else "?", refusal)
        return PlainTextResponse("signature check failed\n", status_code=403)
    return body

async def receive_sendgrid_events(request: Request) -> Response:
    """The Event Webhook endpoint (see the module docstring for the order of checks)."""
    state = request.app.state.web
    check: SignatureCheck = state.signature_check
    if check.problem:
        return PlainTextResponse(f"webhook not configured: {check.problem}\n", status_code=503)
    body = await read_signed_body(request, check, state.settings.webhook_max_bytes, "a webhook request")
    if isinstance(body, Response):
        return body
    try:
        # Parsing and storing run off the event loop, so other requests are read meanwhile.
        report = await run_in_threadpool(store_webhook_body, state.db, body, state.settings.topic_groups)
    except InvalidEventBody as exc:
        return PlainTextResponse(f"{exc}\n", status_code=400)
    except (SQLAlchemyError, OSError) as exc:
        log.error("could not store a webhook batch of %d bytes; SendGrid will retry it: %s", len(body),
                  failure_summary(exc))
        return PlainTextResponse("the database cannot take events now; retry later\n", status_code=503,
                                 headers={"Retry-After": _RETRY_AFTER})
    log.log(logging.WARNING if report.quarantined else logging.INFO,
            "webhook batch stored: %(stored)d new, %(duplicates)d duplicates, %(quarantined)d quarantined, "
            "%(unattributed)d unattributed, %(refusals)d refusals applied", report.as_dict())
    return JSONResponse(report.as_dict())
