"""The SendGrid emulator's HTTP server: `POST /v3/mail/send` on loopback, plus inspection endpoints.

Built on the stdlib `ThreadingHTTPServer` because a "dropped connection" fault must really close
the socket without a byte of answer, which an ASGI framework cannot promise. Each connection gets
a thread; the store and the counters are thread-safe.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.emulator.events import Engagement, EventDispatcher
from pipeline.emulator.faults import SERVER_ERROR_BODY, TOO_MANY_REQUESTS_BODY, Fault, FaultDecider, FaultPlan, rate_limit_headers
from pipeline.emulator.handler import EmulatorHandler, ExchangeRefused, error_body
from pipeline.emulator.rules import MAX_BODY_BYTES
from pipeline.emulator.signing import WebhookSigner, load_signing_key
from pipeline.emulator.store import MessageStore
from pipeline.emulator.validation import validate_mail_send
from pipeline.errors import ConfigurationError
from pipeline.simulation.asks import AskHabit
from pipeline.simulation.replies import ReplyHabit

__all__ = ["EmulatorConfig", "SendGridEmulator", "run_emulator", "running_emulator"]

log = logging.getLogger("pipeline.emulator")

_POLL_SECONDS = 0.05  # how soon serve_forever notices stop(); the default 0.5 s slows every test
_INVALID_KEY = "The provided authorization grant is invalid, expired, or revoked"


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator can be told: where to listen, which key, faults, webhook."""

    api_key: str
    store_path: Path | str = ":memory:"
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (tests)
    faults: FaultPlan = field(default_factory=FaultPlan)
    webhook_url: str | None = None
    bounces: tuple[str, ...] = ()
    signing_key_path: Path | str | None = None
    event_batch_wait: float = 0.2  # seconds an event waits for others to share its POST
    # Simulated readers (pipeline/emulator/readers.py): a reader model file, its seed, and the
    # folder of edition files that says which topics each section has. Needs webhook_url.
    reader_model: Path | str | None = None
    reader_seed: int = 0
    reader_editions: Path | str | None = None
    # Replies of simulated readers: posted as signed Inbound Parse forms to this URL (the web
    # service's /webhooks/inbound), with the chances of `reply_habit`. Needs a reader model.
    inbound_url: str | None = None
    reply_habit: ReplyHabit = field(default_factory=ReplyHabit)
    # Answers to readerfirst's ask: with a habit, a simulated reader whose copy carries the ask may
    # open one of its answer links and send the page's form, over HTTP, as in a browser.
    ask_habit: AskHabit | None = None
    # Tests can see every decoded mail-send body (e.g. to check it against the official spec);
    # if it raises, the request is refused 400 and running_emulator re-raises on exit.
    payload_observer: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigurationError("the emulator needs an API key for clients to present (SENDGRID_API_KEY or --api-key-file)")
        if self.webhook_url is not None and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"--webhook-url must be an http(s) URL, not {self.webhook_url!r}")
        if self.reader_model is not None and self.webhook_url is None:
            raise ConfigurationError("--reader-model needs --webhook-url: simulated readers report through the webhook")
        if self.inbound_url is not None and (self.reader_model is None
                                             or not self.inbound_url.startswith(("http://", "https://"))):
            raise ConfigurationError("--inbound-url must be an http(s) URL, and needs --reader-model "
                                     "(simulated readers write the replies)")


class _ThreadingServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a listen backlog for bursts of clients."""

    # The default backlog of 5 drops SYNs when a benchmark opens many connections at once,
    # and each dropped SYN costs the client a one-second retransmit.
    request_queue_size = 256
    daemon_threads = True


class SendGridEmulator:
    """A running SendGrid look-alike: `.url`, `.api_key`, `.store`, `.public_key`, `.stop()`."""

    def __init__(self, config: EmulatorConfig):
        self.config = config
        self.api_key = config.api_key
        self.signer = WebhookSigner(load_signing_key(config.signing_key_path))
        engagement = _simulated_readers(config, self.signer)  # before binding: a bad reader model leaves nothing open
        self.public_key = self.signer.public_key
        self._faults = FaultDecider(config.faults)
        self._counts: Counter[str] = Counter()
        self._faulted: Counter[str] = Counter({fault.value: 0 for fault in Fault})
        self._lock = threading.Lock()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self.observer_failures: list[BaseException] = []
        # Bind before opening the store, so a busy port leaves no file handle or thread behind.
        self._http = _ThreadingServer((config.host, config.port), EmulatorHandler)
        self._http.emulator = self  # type: ignore[attr-defined]  # how handlers find their emulator
        try:
            self.store = MessageStore(config.store_path)
        except Exception:
            self._http.server_close()
            raise
        self.events = (
            EventDispatcher(config.webhook_url, self.signer, config.bounces, max_wait=config.event_batch_wait,
                            engagement=engagement)
            if config.webhook_url
            else None
        )
        if not ipaddress.ip_address(self._http.server_address[0]).is_loopback:
            log.warning("the SendGrid emulator listens on %s, beyond loopback: anyone who can reach it can read its mail", config.host)

    @property
    def url(self) -> str:
        """Base URL to give `SendGridAPIClient(host=...)`."""
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SendGridEmulator:
        """Serve in a background thread (for tests); returns self."""
        self._thread = threading.Thread(target=self._http.serve_forever, args=(_POLL_SECONDS,), name="sendgrid-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `stop()` is called from another one (or an interrupt)."""
        self._http.serve_forever(_POLL_SECONDS)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, let answers in progress finish, post queued events, close the store."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(timeout)
        self._http.server_close()
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.events is not None:
            self.events.close(max(0.1, deadline - time.monotonic()))
        self.store.close()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no mail-send is in progress (a slow one included) and every event was posted."""
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._in_flight and self.flush_events(max(0.0, deadline - time.monotonic()))

    def flush_events(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook event was posted; True when none is left."""
        return True if self.events is None else self.events.flush(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters for `/_emulator/stats`: requests, outcomes, faults by kind, recipients, events."""
        with self._lock:
            counts = dict(self._counts)
            faults = dict(self._faulted)
        return {
            "requests": counts.get("requests", 0),
            "accepted": counts.get("accepted", 0),
            "sandbox": counts.get("sandbox", 0),
            "rejected": {key[9:]: value for key, value in counts.items() if key.startswith("rejected.")},
            "faults": faults,
            "recipients": self.store.total(),
            "messages": self.store.requests(),
            "events": self.events.counts() if self.events is not None else {},
        }

    def count(self, name: str) -> None:
        """Add one to a named counter (thread-safe)."""
        with self._lock:
            self._counts[name] += 1

    def mail_send(self, exchange: EmulatorHandler) -> None:
        """Answer one `POST /v3/mail/send` as SendGrid would (faults included)."""
        self.count("requests")
        with self._lock:
            self._in_flight += 1
        try:
            self._mail_send(exchange)
        except ExchangeRefused as refusal:
            self.count(f"rejected.{refusal.status}")
            exchange.answer(refusal.status, refusal.body, refusal.headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _mail_send(self, exchange: EmulatorHandler) -> None:
        self.authorize(exchange.headers.get("Authorization"))
        # SendGrid answers 415 to other media types, and clients have met it for a charset
        # parameter too: only exactly application/json passes here.
        if exchange.headers.get("Content-Type", "").strip().lower() != "application/json":
            exchange.discard_body()
            raise ExchangeRefused(415, error_body("Content-Type should be application/json."))
        fault = self._faults.decide()
        if fault is not None:
            with self._lock:
                self._faulted[fault.value] += 1
        if fault is Fault.RATE_LIMITED:
            exchange.discard_body()
            exchange.answer(429, TOO_MANY_REQUESTS_BODY, rate_limit_headers(self.config.faults))
            return
        if fault is Fault.SERVER_ERROR:
            exchange.discard_body()
            exchange.answer(500, SERVER_ERROR_BODY)
            return
        if fault is Fault.DROP:
            exchange.drop()  # before reading a byte of the body: nothing was received
            return
        if fault is Fault.SLOW:
            time.sleep(self.config.faults.slow_seconds)
        payload = self._read_payload(exchange)
        self._observe(payload)
        now = time.time()
        problems = validate_mail_send(payload, now=now)
        if problems:
            raise ExchangeRefused(400, {"errors": [problem.as_json() for problem in problems]})
        sandbox = ((payload.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable") is True
        if sandbox:
            # Sandbox mode: validated, answered 200, delivers nothing and emits no events.
            self.count("sandbox")
            if fault is Fault.DROP_AFTER:
                exchange.drop()
            else:
                exchange.answer(200, None)
            return
        x_message_id = secrets.token_urlsafe(16)
        deliveries = self.store.record(x_message_id, payload, now)
        if self.events is not None:
            html = next((block.get("value") for block in payload.get("content") or ()
                         if str(block.get("type", "")).lower() == "text/html"), None)
            self.events.accepted(x_message_id, deliveries, payload.get("categories"), now, html=html)
        self.count("accepted")
        if fault is Fault.DROP_AFTER:
            exchange.drop()  # accepted and stored, events on their way: only the answer is lost
            return
        exchange.answer(202, None, {"X-Message-Id": x_message_id})

    def _observe(self, payload: Any) -> None:
        observer = self.config.payload_observer
        if observer is None:
            return
        try:
            observer(payload)
        except Exception as failure:  # any failure of the test's check must reach the test
            with self._lock:
                self.observer_failures.append(failure)
            raise ExchangeRefused(400, error_body(f"payload_observer refused the payload: {failure}")) from failure

    def authorize(self, header: str | None) -> None:
        """Refuse (401) a request without this emulator's key as `Authorization: Bearer KEY`."""
        if not header:
            raise ExchangeRefused(401, error_body("authorization required"))
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), self.api_key.encode()):
            raise ExchangeRefused(401, error_body(_INVALID_KEY))

    def _read_payload(self, exchange: EmulatorHandler) -> Any:
        raw = exchange.read_body(MAX_BODY_BYTES)
        if exchange.headers.get("Content-Encoding", "").lower() == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                raw = inflater.decompress(raw, MAX_BODY_BYTES + 1)
            except zlib.error as error:
                raise ExchangeRefused(400, error_body(f"Bad Request: the gzip body cannot be decompressed ({error})")) from error
            if len(raw) > MAX_BODY_BYTES or inflater.unconsumed_tail:
                raise ExchangeRefused(413, error_body("content too large"))
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError) as error:
            raise ExchangeRefused(400, error_body(f"Bad Request: the body is not valid JSON ({error})")) from error


def _simulated_readers(config: EmulatorConfig, signer: WebhookSigner) -> Engagement | None:
    """The simulated readers' event maker, or None when no reader model is configured."""
    if config.reader_model is None:
        return None
    from pipeline.emulator.inbound import InboundPoster
    from pipeline.emulator.readers import SimulatedReaders
    from pipeline.settings import PROJECT_ROOT

    editions = config.reader_editions if config.reader_editions is not None else PROJECT_ROOT / "editions"
    replies = InboundPoster(config.inbound_url, signer) if config.inbound_url else None
    return SimulatedReaders.from_files(config.reader_model, config.reader_seed, editions, replies=replies,
                                       reply_habit=config.reply_habit, ask_habit=config.ask_habit).events_for


@contextmanager
def running_emulator(api_key: str | None = None, **options: Any) -> Iterator[SendGridEmulator]:
    """An emulator serving on a free loopback port in a background thread, stopped on exit.

    `options` are EmulatorConfig fields (store_path, faults, webhook_url, bounces,
    payload_observer, ...); the API key defaults to a fresh random one, available as `.api_key`.
    On exit, the first exception a payload_observer raised is raised again, so a check that
    failed inside the server thread fails the test.
    """
    config = EmulatorConfig(api_key=api_key or f"SG.emulator.{secrets.token_urlsafe(24)}", **options)
    emulator = SendGridEmulator(config).start()
    try:
        yield emulator
    finally:
        emulator.stop()
    if emulator.observer_failures:
        raise emulator.observer_failures[0]


def run_emulator(config: EmulatorConfig, *, announce: bool = True) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM), then stop cleanly; the CLI's entry point."""
    emulator = SendGridEmulator(config)
    if announce:
        print(f"SendGrid emulator on {emulator.url} (store {config.store_path})", flush=True)
        print(f"  webhook public key: {emulator.public_key}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
