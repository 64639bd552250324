"""Delivery events: what SendGrid's Event Webhook would post after the emulator accepted a request.

Each recipient of an accepted request gets `processed`, then `delivered` — or `bounce` (type
`bounce`) when the address is on the configured bounce list. A background thread posts them as
signed JSON arrays, batched, so a slow receiver never slows the mail-send answers. As with
SendGrid, custom_args come back as top-level keys, `category` is as sent, each event has a
unique `sg_event_id` and an `sg_message_id` that starts with the request's X-Message-Id, and
the body ends with CRLF (which is part of what is signed).

Hook: an `engagement` callable (the simulated readers of `pipeline.emulator.readers`) is given
each request's `delivered` events, HTML and reply addresses, and its events (opens, clicks, ...)
are posted too (replies, if it writes any, go to Inbound Parse: `pipeline.emulator.inbound`).
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pipeline.emulator.signing import WebhookSigner
from pipeline.emulator.store import Delivery

__all__ = ["Engagement", "EventDispatcher", "delivery_events"]

# Given one request's `delivered` events, its HTML, each recipient's reply address (lower-cased
# address -> reply-to, when the request had one) and the ask's answer links in each recipient's
# copy (lower-cased address -> topic -> URL), the events its readers then cause.
Engagement = Callable[[list[dict[str, object]], str | None, dict[str, str], dict[str, dict[str, str]]],
                      list[dict[str, object]]]

log = logging.getLogger("pipeline.emulator")

_BOUNCE = {
    "type": "bounce",
    "status": "5.1.1",
    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
    "bounce_classification": "Invalid Address",
}


@dataclass(frozen=True)
class _Accepted:
    """One accepted request waiting for its events to be built and posted."""

    x_message_id: str
    deliveries: Sequence[Delivery]
    categories: Sequence[str] | None
    timestamp: int
    html: str | None = None


def delivery_events(
    x_message_id: str,
    deliveries: Iterable[Delivery],
    categories: Sequence[str] | None,
    timestamp: int,
    bounces: frozenset[str] = frozenset(),
) -> list[dict[str, object]]:
    """The events SendGrid would report for an accepted request, two per recipient."""
    events: list[dict[str, object]] = []
    smtp_id = f"<{x_message_id}@emulator.readerfirst>"
    for delivery in deliveries:
        # custom_args first, so that a custom arg named like a standard field cannot hide it.
        base: dict[str, object] = {
            **delivery.custom_args,
            "email": delivery.email,
            "timestamp": timestamp,
            "smtp-id": smtp_id,
            "sg_message_id": delivery.sg_message_id,
        }
        if categories:
            base["category"] = list(categories)
        events.append({**base, "event": "processed", "sg_event_id": _event_id()})
        if delivery.email.lower() in bounces:
            events.append({**base, "event": "bounce", **_BOUNCE, "sg_event_id": _event_id()})
        else:
            events.append({**base, "event": "delivered", "response": "250 OK", "sg_event_id": _event_id()})
    return events


def _event_id() -> str:
    return secrets.token_urlsafe(16)


class EventDispatcher:
    """Posts signed event batches to one webhook URL from a background thread."""

    def __init__(
        self,
        url: str,
        signer: WebhookSigner,
        bounces: Iterable[str] = (),
        *,
        batch_size: int = 500,
        max_wait: float = 0.2,
        timeout: float = 5.0,
        attempts: int = 4,
        engagement: Engagement | None = None,
    ):
        self.url = url
        self.signer = signer
        self.bounces = frozenset(address.lower() for address in bounces)
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.timeout = timeout
        self.attempts = attempts
        self.engagement = engagement
        self._counts: Counter[str] = Counter()  # events posted, by type; plus batch outcomes
        self._counts_lock = threading.Lock()
        self._queue: queue.Queue[_Accepted | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-event-webhook", daemon=True)
        self._thread.start()

    def accepted(self, x_message_id: str, deliveries: Sequence[Delivery], categories: Sequence[str] | None, timestamp: float,
                 html: str | None = None) -> None:
        """Queue the events of one accepted request (`html`: its HTML, for simulated readers); returns at once."""
        if not deliveries:
            return
        with self._idle:
            self._pending += 1
        self._queue.put(_Accepted(x_message_id, deliveries, categories, int(timestamp), html))

    def counts(self) -> dict[str, int]:
        """Events posted by type, plus `batches_posted` and `batches_failed`."""
        with self._counts_lock:
            return dict(self._counts)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was posted or given up on; False if `timeout` ran out."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Post what is queued (for up to `timeout` seconds), then stop the thread."""
        self.flush(timeout)
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            taken = [first]
            deadline = time.monotonic() + self.max_wait
            stop = False
            # Gather what arrives within max_wait into the same batch, as SendGrid batches.
            while sum(len(item.deliveries) for item in taken) * 2 < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                taken.append(item)
            try:
                events = []
                for item in taken:
                    sent = delivery_events(item.x_message_id, item.deliveries, item.categories, item.timestamp, self.bounces)
                    events.extend(sent)
                    if self.engagement is not None:
                        reply_to = {d.email.lower(): d.reply_to for d in item.deliveries if d.reply_to}
                        asks = {d.email.lower(): dict(d.ask_links) for d in item.deliveries if d.ask_links}
                        events.extend(self.engagement([e for e in sent if e["event"] == "delivered"], item.html,
                                                      reply_to, asks))
                for start in range(0, len(events), self.batch_size):
                    self._post(events[start:start + self.batch_size])
            except Exception:  # a bug here must not stop the thread, or flush() would wait forever
                log.exception("the emulator could not post delivery events to %s", self.url)
            with self._idle:
                self._pending -= len(taken)
                self._idle.notify_all()
            if stop:
                return

    def _post(self, events: list[dict[str, object]]) -> None:
        body = json.dumps(events, separators=(",", ":")).encode("utf-8") + b"\r\n"
        for attempt in range(self.attempts):
            timestamp = str(int(time.time()))
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "SendGrid Event API (readerfirst emulator)",
                    **self.signer.headers(timestamp, body),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                with self._counts_lock:
                    self._counts["batches_posted"] += 1
                    self._counts.update(str(event["event"]) for event in events)
                return
            except (urllib.error.URLError, OSError, http.client.HTTPException):
                # SendGrid retries a failing receiver for 24 hours; the emulator tries a few
                # times with back-off, then gives up on the batch and counts it.
                if self._stopping.is_set() or attempt == self.attempts - 1:
                    break
                time.sleep(0.25 * 2**attempt)
        log.warning("gave up posting %d delivery events to %s", len(events), self.url)
        with self._counts_lock:
            self._counts["batches_failed"] += 1
