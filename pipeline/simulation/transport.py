"""A transport that only records who got which variant: the evaluation's fast way out of `deliver_batches`.

It implements the same `Transport` protocol as the outbox and SendGrid, so the send step (claim
in the ledger, build the batch, confirm with message ids) runs exactly as in production; only
the per-reader merge and the `.eml` files are skipped, which cost about 3 ms per reader and
would dominate a simulation of tens of thousands of newsletters.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pipeline.delivery.transport import BatchReceipt, OutgoingBatch

__all__ = ["RecordedDelivery", "RecordingTransport"]


@dataclass(frozen=True)
class RecordedDelivery:
    """One reader's copy, as the transport accepted it."""

    edition_id: str
    reader_id: int
    email: str
    variant_id: str
    section_ids: tuple[str, ...]
    holdout: bool
    message_id: str


class RecordingTransport:
    """Accepts every batch and keeps one `RecordedDelivery` per reader in `deliveries`."""

    name = "record"

    def __init__(self) -> None:
        self.deliveries: list[RecordedDelivery] = []
        self._lock = threading.Lock()

    def send(self, batch: OutgoingBatch) -> BatchReceipt:
        """Record every reader of `batch`; the per-reader message id is like an X-Message-Id suffix."""
        per_reader = {e.reader_id: f"{batch.batch_id}.record.{e.reader_id}" for e in batch.envelopes}
        copies = [RecordedDelivery(batch.edition_id, e.reader_id, e.email, batch.variant_id, batch.body.section_ids,
                                   e.holdout, per_reader[e.reader_id]) for e in batch.envelopes]
        with self._lock:
            self.deliveries.extend(copies)
        return BatchReceipt(message_id=batch.batch_id, per_reader=per_reader)

    def take(self) -> list[RecordedDelivery]:
        """Every delivery recorded since the last take, and forget them."""
        with self._lock:
            taken, self.deliveries = self.deliveries, []
        return taken

    def close(self) -> None:
        """Nothing to release."""
