"""The SendGrid transport: one request per batch through the official `sendgrid` client.

Faults: 429 waits for X-RateLimit-Reset; 5xx, timeouts and dropped connections are retried
with exponential backoff and jitter up to a limit; 400/401/403/413/415 stop the send with
SendGrid's own messages and are never retried. The API key never reaches logs or errors.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
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


class _Transient(TransientTransportError):
    def __init__(self, message: str, *, maybe_delivered: bool):
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


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
        """Send `batch` as one request, retrying what may pass; returns SendGrid's message id."""
        payload = build_payload(batch, sandbox=self.sandbox, asm_group_id=self.asm_group_id)
        if self._observe is not None:
            self._observe(payload)
        # The client serialises the payload itself. Handing it text instead (faster, with orjson)
        # would need a Content-Type other than exactly 'application/json', and SendGrid has
        # answered 415 to 'application/json; charset=utf-8' on some endpoints.
        ambiguous = False
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
                # The request may have reached SendGrid before the connection failed.
                refused = isinstance(getattr(exc, "reason", None), ConnectionRefusedError) or isinstance(exc, ConnectionRefusedError)
                ambiguous = ambiguous or not refused
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            else:
                if response.status_code == 202 or (self.sandbox and response.status_code == 200):
                    message_id = response.headers.get("X-Message-Id", "") if response.headers else ""
                    return BatchReceipt(message_id=message_id or f"sandbox-{batch.batch_id}",
                                        delivered=not self.sandbox)
                last = f"unexpected HTTP {response.status_code}"
            if attempt < self.retry.attempts:
                self._sleep(self.retry.backoff(attempt, self._rng))
        raise _Transient(f"SendGrid batch {batch.batch_id} failed after {self.retry.attempts} attempts ({last})",
                         maybe_delivered=ambiguous)

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
