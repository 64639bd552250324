"""What the send step needs from a way of delivering mail: the `Transport` protocol.

A batch is one variant (the same sections in the same order) for up to 1,000 readers:
the HTML and text are shared, with merge tags for what differs per reader. That is the
shape of one SendGrid request, and the local outbox simply merges each copy itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pipeline.rendering.layout import VariantBody

__all__ = ["Envelope", "OutgoingBatch", "BatchReceipt", "Transport", "MAX_BATCH"]

MAX_BATCH = 1000  # SendGrid's limit of personalizations (and recipients) per request


@dataclass(frozen=True)
class Envelope:
    """One reader's copy of a batch: address, subject and raw merge values."""

    reader_id: int
    email: str
    name: str
    subject: str
    values: dict[str, str]  # raw, unescaped; the transport escapes for HTML and text
    unsubscribe_url: str
    holdout: bool = False
    reply_to: str = ""  # this reader's own reply address (reply+<token>@domain), or empty


@dataclass(frozen=True)
class OutgoingBatch:
    """Up to MAX_BATCH readers who get the same variant of an edition."""

    batch_id: str
    edition_id: str
    variant_id: str
    body: VariantBody
    envelopes: tuple[Envelope, ...]
    from_email: str
    from_name: str
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < len(self.envelopes) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} readers, not {len(self.envelopes)}")


@dataclass(frozen=True)
class BatchReceipt:
    """What the transport confirmed: a message id for the batch and, if it has them, per reader.

    `refused` names readers the provider refused (reader id -> its reason): they were not sent,
    everyone else in the batch was. `message_id` is None when the provider accepted the batch
    without saying its id (reconciliation fills it in from the delivery events).
    """

    message_id: str | None
    per_reader: dict[int, str] = field(default_factory=dict)
    delivered: bool = True  # False in sandbox mode: accepted, validated, sent to nobody
    refused: dict[int, str] = field(default_factory=dict)


@runtime_checkable
class Transport(Protocol):
    """Delivers batches. Implementations: the local outbox and SendGrid."""

    name: str

    def send(self, batch: OutgoingBatch) -> BatchReceipt:
        """Deliver `batch`; raise TransientTransportError when a retry may succeed."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...
