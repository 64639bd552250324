"""The SendGrid transport: one request per batch through the official `sendgrid` client.

Faults: 429 waits for X-RateLimit-Reset; 5xx and refused connections are retried with
exponential backoff and jitter up to a limit. A timeout or a connection dropped once the
request was on its way is not retried: SendGrid has no idempotency key, and the request may
have been accepted, so a retry could deliver it twice; the batch is reported as maybe
delivered and left to reconciliation (pipeline/delivery/reconcile.py). A 400 whose errors all
name personalizations refuses those readers only: the rest of the batch is sent again without
them. Any other 400/401/403/413/415 stops the send with SendGrid's own messages. The API key
never reaches logs or errors.
"""

from __future__ import annotations

import http.client
import dataclasses
import json
import logging
import random
import re
import socket
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from pipeline.delivery.sendgrid_payload import build_payload
from pipeline.delivery.transport import BatchReceipt, OutgoingBatch
from pipeline.errors import ConfigurationError, TransientTransportError, TransportError

__all__ = ["SendGridTransport", "SendGridRefused", "RetryPolicy"]

_FATAL = {400, 401, 403, 404, 413, 415}
# `personalizations.3.to.0.email` -> 3, and what follows it.
_PERSONALIZATION_FIELD = re.compile(r"personalizations\.(\d+)(?:\.(.*))?\Z")


class _RedactHeaders(logging.Filter):
    """python_http_client logs request headers (the Authorization header) at DEBUG: drop them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "HEADERS:" not in message and "Bearer" not in message and "PAYLOAD:" not in message


_client_logger = logging.getLogger("python_http_client.client")
_client_logger.addFilter(_RedactHeaders())


class SendGridRefused(TransportError):
    """SendGrid refused a batch (400/401/403/413/415): fix the cause; nothing was sent, nothing is retried."""

    def __init__(self, status: int, errors: list[dict], batch_id: str):
        self.status = status
        self.errors = errors
        self.batch_id = batch_id
        lines = [f"SendGrid refused batch {batch_id} with HTTP {status}:"]
        for error in errors or [{"message": "(no error body)"}]:
            field = error.get("field")
            lines.append(f"  {error.get('message')}" + (f" (field: {field})" if field else "")
                         + (f" - {error['help']}" if error.get("help") else ""))
        super().__init__("\n".join(lines))

    def __reduce__(self):
        # A refusal in a task on a Dask worker travels back pickled: rebuilt from its arguments, or
        # the flow would get a TypeError about __init__ instead of SendGrid's words.
        return type(self), (self.status, self.errors, self.batch_id)

    def refused_personalizations(self) -> dict[int, str]:
        """Personalization index -> SendGrid's reason, when every error of a 400 names one; else empty.

        An error on anything else (the sender, the content, the request as a whole) is the
        batch's fault, not one reader's: then nothing can be sent by leaving readers out.
        """
        if self.status != 400 or not self.errors:
            return {}
        named: dict[int, list[str]] = {}
        for error in self.errors:
            found = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
            if found is None:
                return {}
            where = f" (field {found.group(2)})" if found.group(2) else ""
            named.setdefault(int(found.group(1)), []).append(f"{error.get('message') or 'refused'}{where}")
        return {index: "SendGrid refused this reader: " + "; ".join(reasons) for index, reasons in named.items()}


class _Transient(TransientTransportError):
    def __init__(self, message: str, *, maybe_delivered: bool):
        super().__init__(message)
        self.maybe_delivered = maybe_delivered

    def __reduce__(self):
        return _rebuilt_transient, (str(self), self.maybe_delivered)


def _rebuilt_transient(message: str, maybe_delivered: bool) -> _Transient:
    return _Transient(message, maybe_delivered=maybe_delivered)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that may pass."""

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 30.0
    max_rate_limit_wait: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter for retry number `attempt` (1-based)."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def _errors_of(body: bytes | str | None) -> list[dict]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, TypeError):
        return [{"message": str(body)[:500]}]
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


class SendGridTransport:
    """Sends batches to SendGrid's v3 Mail Send API (or a compatible server)."""

    name = "sendgrid"

    def __init__(self, api_key: str, host: str = "https://api.sendgrid.com", *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, sandbox: bool = False, asm_group_id: int | None = None,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None,
                 observe: Callable[[dict], None] | None = None):
        if not api_key:
            raise ConfigurationError("SENDGRID_API_KEY is empty")
        self._api_key = api_key
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sandbox = sandbox
        self.asm_group_id = asm_group_id
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._local = threading.local()
        self._observe = observe
        self.requests = 0
        self.retries = 0
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SendGridTransport(host={self.host!r}, sandbox={self.sandbox})"  # never the key

    @classmethod
    def from_settings(cls, settings, *, sandbox: bool = False) -> SendGridTransport:
        """The transport configured by SENDGRID_API_KEY, SENDGRID_API_HOST and friends."""
        return cls(settings.sendgrid_api_key.get_secret_value(), settings.sendgrid_api_host,
                   timeout=settings.sendgrid_timeout, sandbox=sandbox or settings.sendgrid_sandbox,
                   retry=RetryPolicy(attempts=settings.sendgrid_attempts),
                   asm_group_id=settings.sendgrid_asm_group_id)

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:  # the client keeps mutable headers: one per thread
            client = self._local.client = SendGridAPIClient(api_key=self._api_key, host=self.host)
        return client

    def send(self, batch: OutgoingBatch) -> BatchReceipt:
        """Send `batch` as one request, retrying what may pass; returns SendGrid's message id.

        Readers SendGrid refuses by name (a 400 whose every error is on a personalization) are
        left out and the rest is sent again; they come back in the receipt's `refused`.
        """
        refused: dict[int, str] = {}
        envelopes = batch.envelopes
        while True:
            try:
                receipt = self._send_once(dataclasses.replace(batch, envelopes=envelopes))
            except TransportError as failure:
                named = failure.refused_personalizations() if isinstance(failure, SendGridRefused) else {}
                if not named or max(named) >= len(envelopes):
                    # The readers refused by name before this carry their refusal with the error:
                    # the resend failing (or timing out) does not make them sent.
                    failure.refused = {**failure.refused, **refused}
                    raise
                refused.update({envelopes[index].reader_id: reason for index, reason in named.items()})
                envelopes = tuple(e for index, e in enumerate(envelopes) if index not in named)
                if not envelopes:  # everyone refused: nothing was sent, nothing is left to send
                    return BatchReceipt(message_id=None, delivered=not self.sandbox, refused=refused)
                continue
            return dataclasses.replace(receipt, refused=refused) if refused else receipt

    def _send_once(self, batch: OutgoingBatch) -> BatchReceipt:
        payload = build_payload(batch, sandbox=self.sandbox, asm_group_id=self.asm_group_id)
        if self._observe is not None:
            self._observe(payload)
        # The client serialises the payload itself. Handing it text instead (faster, with orjson)
        # would need a Content-Type other than exactly 'application/json', and SendGrid has
        # answered 415 to 'application/json; charset=utf-8' on some endpoints.
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            with self._count_lock:
                self.requests += 1
                self.retries += attempt > 1
            try:
                response = self._client().client.mail.send.post(request_body=payload, timeout=self.timeout)
            except HTTPError as exc:
                status = exc.status_code
                if status in _FATAL:
                    raise SendGridRefused(status, _errors_of(exc.body), batch.batch_id) from None
                last = f"HTTP {status}"
                if status == 429:
                    if attempt < self.retry.attempts:
                        self._sleep(self._rate_limit_wait(exc.headers, attempt))
                    continue
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError,
                    http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
                refused = isinstance(getattr(exc, "reason", None), ConnectionRefusedError) or isinstance(exc, ConnectionRefusedError)
                if not refused:
                    # The request may have reached SendGrid before the connection failed, and
                    # SendGrid has no idempotency key: a retry could deliver it twice. Stop here
                    # and let reconciliation read SendGrid's events instead.
                    raise _Transient(f"SendGrid batch {batch.batch_id} may or may not have been accepted ({last});"
                                     " left unconfirmed for reconciliation", maybe_delivered=True) from None
            else:
                if response.status_code == 202 or (self.sandbox and response.status_code == 200):
                    # No X-Message-Id is recorded as unknown (None), never made up: reconciliation
                    # fills it in from the events' sg_message_id.
                    message_id = response.headers.get("X-Message-Id") if response.headers else None
                    return BatchReceipt(message_id=message_id or None, delivered=not self.sandbox)
                last = f"unexpected HTTP {response.status_code}"
                if 200 <= response.status_code < 300:  # a success we did not ask for: it may have gone out
                    raise _Transient(f"SendGrid batch {batch.batch_id}: {last}; left unconfirmed for reconciliation",
                                     maybe_delivered=True)
            if attempt < self.retry.attempts:
                self._sleep(self.retry.backoff(attempt, self._rng))
        raise _Transient(f"SendGrid batch {batch.batch_id} failed after {self.retry.attempts} attempts ({last})",
                         maybe_delivered=False)

    def _rate_limit_wait(self, headers, attempt: int) -> float:
        reset = None
        try:
            reset = float(headers.get("X-RateLimit-Reset")) if headers else None
        except (TypeError, ValueError):
            reset = None
        if reset is None:
            return self.retry.backoff(attempt, self._rng)
        return min(self.retry.max_rate_limit_wait, max(0.0, reset - time.time()) + self._rng.uniform(0, 0.25))

    def close(self) -> None:
        """Nothing to release: urllib opens a connection per request."""
