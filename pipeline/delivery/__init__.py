"""Delivery: the Transport protocol, the local outbox, the send ledger, planning and dispatch."""

from __future__ import annotations

from pipeline.delivery.dispatch import DeliveryReport, Sender, deliver_batch
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.outbox import OutboxTransport
from pipeline.delivery.planning import PlanReport, plan_readers
from pipeline.delivery.preparation import PreparedEdition, prepare_edition
from pipeline.delivery.transport import BatchReceipt, Envelope, OutgoingBatch, Transport

__all__ = [
    "BatchReceipt",
    "DeliveryReport",
    "Envelope",
    "OutboxTransport",
    "OutgoingBatch",
    "PlanReport",
    "PreparedEdition",
    "SendLedger",
    "Sender",
    "Transport",
    "deliver_batch",
    "plan_readers",
    "prepare_edition",
]
