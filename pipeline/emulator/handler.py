"""One HTTP exchange with the emulator: routing, body reading, answers and dropped connections.

The mail-send logic lives in `server.SendGridEmulator`; this module only speaks HTTP/1.1, so
that what is SendGrid's behaviour and what is plumbing stay apart.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.emulator.server import SendGridEmulator

__all__ = ["EmulatorHandler", "ExchangeRefused", "error_body"]

log = logging.getLogger("pipeline.emulator")

MAIL_SEND = "/v3/mail/send"
_CHUNK = 1 << 16


class ExchangeRefused(PipelineError):
    """A request the emulator answers with an error status and SendGrid's error body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    """SendGrid's error body with one error."""
    return {"errors": [{"message": message, "field": field, "help": None}]}


class EmulatorHandler(BaseHTTPRequestHandler):
    """Routes requests to the emulator and writes its answers."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the benchmark's clients expect
    server_version = "readerfirst-sendgrid-emulator"
    timeout = 60  # an idle keep-alive connection frees its thread after this many seconds
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK.
    disable_nagle_algorithm = True
    _unread = 0

    @property
    def emulator(self) -> SendGridEmulator:
        """The emulator this server belongs to."""
        return self.server.emulator  # type: ignore[attr-defined, no-any-return]

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        """Mail send; anything else is 404 (405 for the inspection paths)."""
        self._unread = self._declared_length()
        self._guarded(self._route_post)

    def do_GET(self) -> None:  # noqa: N802
        """Inspection endpoints for tests and the demo."""
        self._unread = self._declared_length()
        self._guarded(self._route_get)

    def do_PUT(self) -> None:  # noqa: N802
        """SendGrid answers 405 to other methods on its paths; 404 elsewhere."""
        self._unread = self._declared_length()
        self._guarded(self._not_allowed_or_found)

    do_DELETE = do_PATCH = do_PUT  # noqa: N815

    def _guarded(self, route: Callable[[], None]) -> None:
        try:
            route()
        except ExchangeRefused as refusal:
            self.answer(refusal.status, refusal.body, refusal.headers)
        except Exception:  # an emulator bug must still answer, as SendGrid would with a 500
            log.exception("the SendGrid emulator failed on %s %s", self.command, self.path)
            self.close_connection = True
            self.answer(500, error_body("internal server error"))

    def _route_post(self) -> None:
        path = urlsplit(self.path).path
        if path == MAIL_SEND:
            self.emulator.mail_send(self)
        else:
            self._not_allowed_or_found()

    def _route_get(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/_emulator/"):
            # The store holds every reader's mail: the same key as mail send, or nothing.
            self.emulator.authorize(self.headers.get("Authorization"))
        if parts.path == "/_emulator/messages":
            query = parse_qs(parts.query)
            if not query.get("to"):
                raise ExchangeRefused(400, error_body("give the reader's address as ?to=ADDRESS", "to"))
            messages = self.emulator.store.messages_for(query["to"][0])
            self.answer(200, [message.as_json() for message in messages])
        elif parts.path == "/_emulator/stats":
            self.answer(200, self.emulator.stats())
        elif parts.path == "/_emulator/webhook-public-key":
            # The same shape as SendGrid's GET /v3/user/webhooks/event/settings/signed.
            self.answer(200, {"public_key": self.emulator.public_key})
        else:
            self._not_allowed_or_found()

    def _not_allowed_or_found(self) -> None:
        path = urlsplit(self.path).path
        known = path == MAIL_SEND or path.startswith("/_emulator/")
        raise ExchangeRefused(405, error_body("method not allowed")) if known else ExchangeRefused(404, error_body("not found"))

    def _declared_length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length", "0")))
        except ValueError:
            return 0

    def read_body(self, limit: int) -> bytes:
        """The request body; 413 (after reading it away) when it is over `limit` bytes."""
        if "Content-Length" not in self.headers:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self.close_connection = True
                raise ExchangeRefused(411, error_body("Content-Length is required"))
            raise ExchangeRefused(400, error_body("Bad Request: the body is empty"))
        if self._unread > limit:
            self.discard_body()
            raise ExchangeRefused(413, error_body("content too large"))
        body = self.rfile.read(self._unread)
        self._unread = 0
        if len(body) < self._declared_length():
            self.close_connection = True
            raise ExchangeRefused(400, error_body("Bad Request: the body is shorter than its Content-Length"))
        return body

    def discard_body(self) -> None:
        """Read away an unread body, so the client gets the answer rather than a connection reset."""
        while self._unread > 0:
            chunk = self.rfile.read(min(_CHUNK, self._unread))
            if not chunk:
                self.close_connection = True
                break
            self._unread -= len(chunk)
        self._unread = 0

    def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        """Send `status` with `body` as JSON (None: an empty body) and extra `headers`."""
        self.discard_body()
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout ran out during a slow answer): the request was
            # still processed, as it would have been at SendGrid.
            self.close_connection = True
            log.debug("client %s left before its %d answer", self.address_string(), status)

    def drop(self) -> None:
        """Close the connection without a byte of answer, as a crashed or cut-off server would."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client may already be gone; the point is only that no answer goes out

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Route http.server's access log to logging, at debug level."""
        log.debug("%s %s", self.address_string(), format % args)
