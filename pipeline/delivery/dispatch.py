"""Delivering planned batches: claim in the ledger, hand to the transport, confirm.

The ledger entry is marked before the transport is called and confirmed after it answers,
so a crash in between can never lead to a second copy: that batch stays unconfirmed until
reconciliation settles it. A reader whose address cannot be sent, or whom the provider refuses,
is marked failed with the reason and never holds up the rest of the batch.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from pipeline.audience.directory import opted_out_readers
from pipeline.audience.reply_address import make_reply_address
from pipeline.audience.ask_tokens import ask_link_values
from pipeline.audience.tokens import reader_links
from pipeline.content.ask import asked_in
from pipeline.delivery.addresses import UnsendableAddress, wire_address
from pipeline.delivery.ledger import ClaimedEntry, PlannedBatch, SendLedger
from pipeline.delivery.preparation import PreparedEdition
from pipeline.delivery.transport import Envelope, OutgoingBatch, Transport
from pipeline.errors import PipelineError, TransientTransportError, TransportError
from pipeline.rendering.event_times import event_times
from pipeline.rendering.links import web_version_url
from pipeline.rendering.message import merge_values_for

__all__ = ["DeliveryReport", "deliver_batch", "deliver_batches", "may_pass", "Sender"]


@dataclass(frozen=True)
class Sender:
    """Who the newsletter is from, and the secrets and addresses its links need."""

    from_email: str
    from_name: str
    public_url: str
    secret: bytes
    reply_domain: str | None = None  # per-reader Reply-To addresses on this domain, when set


@dataclass
class DeliveryReport:
    """What delivering some batches did."""

    batches: int = 0
    sent: int = 0
    skipped: int = 0
    validated: int = 0
    requests: int = 0
    retries: int = 0
    failed: int = 0  # readers refused (their address, or by the provider): never sent
    unconfirmed: int = 0  # readers of batches that may have been delivered: left for reconciliation
    replanned: int = 0  # readers who opted out of a topic of their copy since it was planned: planned again

    def add(self, other: DeliveryReport) -> None:
        """Fold another report into this one."""
        self.batches += other.batches
        self.sent += other.sent
        self.skipped += other.skipped
        self.validated += other.validated
        self.requests += other.requests
        self.retries += other.retries
        self.failed += other.failed
        self.unconfirmed += other.unconfirmed
        self.replanned += other.replanned


def _envelope(prepared: PreparedEdition, sender: Sender, entry: ClaimedEntry, address: str | None = None) -> Envelope:
    unsubscribe_url, preferences_url = reader_links(sender.secret, sender.public_url, entry.public_id)
    values = merge_values_for(first_name=entry.first_name, last_name=entry.last_name, email=entry.email,
                              reasons={sid: reason for sid, reason in entry.picks},
                              unsubscribe_url=unsubscribe_url, preferences_url=preferences_url,
                              web_version_url=web_version_url(sender.secret, sender.public_url, entry.public_id,
                                                              prepared.edition.id),
                              event_times=event_times(prepared.edition, (sid for sid, _ in entry.picks),
                                                      entry.timezone))
    edition = prepared.edition
    if asked_in(edition, [sid for sid, _ in entry.picks]):
        values.update(ask_link_values(sender.secret, sender.public_url, entry.public_id, edition.id,
                                      prepared.ask_topics, dt.datetime.now(dt.UTC).date()))
    subject = prepared.subject.render({"first_name": entry.first_name, "last_name": entry.last_name,
                                       "email": entry.email})
    name = " ".join(part for part in (entry.first_name, entry.last_name) if part)
    # The wire form of the address (IDNA domain) goes to the transport; the merge fields keep the reader's own.
    reply_to = (make_reply_address(sender.secret, sender.reply_domain, entry.public_id, prepared.edition.id)
                if sender.reply_domain else "")
    return Envelope(reader_id=entry.reader_id, email=address or entry.email, name=name, subject=subject, values=values,
                    unsubscribe_url=unsubscribe_url, holdout=entry.holdout, reply_to=reply_to)


def _without_new_opt_outs(prepared: PreparedEdition, ledger: SendLedger, batch_id: str,
                          claimed: list[ClaimedEntry], report: DeliveryReport) -> list[ClaimedEntry]:
    """The claimed readers but those who opted out of a topic of this copy since it was planned.

    An opt-out is a promise: the claim re-checks the reader's status, and this their topics. A
    batch is one variant, so the copy's topics are the same for every reader in it. The others
    go back to planned, so that planning gives them a copy without that topic (the send does
    it in a second round, or the next run).
    """
    if not claimed:
        return claimed
    sections = prepared.edition.by_id
    topics = {t for section_id, _ in claimed[0].picks if section_id in sections for t in sections[section_id].topics}
    opted = opted_out_readers(ledger.db, [entry.reader_id for entry in claimed], topics)
    if not opted:
        return claimed
    ledger.release_readers(batch_id, sorted(opted))
    report.replanned += len(opted)
    return [entry for entry in claimed if entry.reader_id not in opted]


def deliver_batch(prepared: PreparedEdition, ledger: SendLedger, transport: Transport, sender: Sender,
                  planned: PlannedBatch) -> DeliveryReport:
    """Send one planned batch (one variant, at most MAX_BATCH readers) and record the outcome."""
    variant_id = planned.variant_id
    batch_id = f"{variant_id}-{uuid.uuid4().hex[:12]}"
    claimed, skipped = ledger.claim(planned, batch_id, transport.name)
    report = DeliveryReport(skipped=skipped)
    claimed = _without_new_opt_outs(prepared, ledger, batch_id, claimed, report)
    if not claimed:
        return report
    envelopes, unsendable = [], {}
    for entry in claimed:
        try:
            envelopes.append(_envelope(prepared, sender, entry, wire_address(entry.email)))
        except UnsendableAddress as refusal:
            unsendable[entry.reader_id] = refusal.reason
    report.failed = len(unsendable)
    # A sandbox send leaves the ledger as it was: it reports refusals, it records none.
    sandbox = bool(getattr(transport, "sandbox", False))
    if not envelopes:
        if sandbox:
            ledger.release(batch_id)
        else:
            ledger.fail(batch_id, unsendable)
        return report
    section_ids = tuple(sid for sid, _ in claimed[0].picks)
    batch = OutgoingBatch(
        batch_id=batch_id, edition_id=prepared.edition.id, variant_id=variant_id,
        body=prepared.layout.variant(section_ids), envelopes=tuple(envelopes),
        from_email=sender.from_email, from_name=sender.from_name, categories=(prepared.edition.id,))
    try:
        receipt = transport.send(batch)
    except TransportError as exc:
        if not sandbox:
            ledger.fail(batch_id, {**unsendable, **exc.refused})
            report.failed += len(exc.refused)
        if getattr(exc, "maybe_delivered", False) and not sandbox:
            # It may be in the readers' inboxes: never resent blindly. The batch stays `sending`
            # and reconciliation settles it from SendGrid's events (or their absence).
            report.unconfirmed = len(envelopes) - len(exc.refused)
            report.batches = 1
            return report
        ledger.release(batch_id)  # certainly not delivered: safe to send again
        raise
    report.batches = 1
    if not receipt.delivered:  # sandbox: validated by the provider, delivered to nobody
        ledger.release(batch_id)
        report.failed += len(receipt.refused)
        report.validated = len(envelopes) - len(receipt.refused)
        return report
    refused = {**unsendable, **receipt.refused}
    ledger.confirm(batch_id, receipt.message_id, receipt.per_reader, refused)
    report.failed = len(refused)
    report.sent = len(claimed) - len(refused)
    return report


def may_pass(error: BaseException) -> bool:
    """Whether trying again may succeed: network and rate limits, a busy or restarting database. Never bad input."""
    if isinstance(error, TransientTransportError):
        return True
    if isinstance(error, PipelineError):
        return False
    return isinstance(error, (OperationalError, OSError))


def deliver_batches(prepared: PreparedEdition, ledger: SendLedger, transport: Transport, sender: Sender,
                    batches: Sequence[PlannedBatch], *, parallel: int = 1,
                    halt: threading.Event | None = None) -> DeliveryReport:
    """Send `batches` with up to `parallel` requests in flight.

    The first error stops the rest: batches not yet started are left planned (a rerun sends
    them), so after a refused request nothing more goes out. `halt` is shared between the
    calls of one send so that one group's fatal error stops the others too. An error that may
    pass (`may_pass`: the network, a busy database) is raised without stopping the others: the
    caller tries again. It once stopped them too, and the flow's retry of the task then found
    the send halted and returned with nothing sent, the rest of the audience left planned and
    no failure reported.
    """
    halt = halt or threading.Event()
    report = DeliveryReport()
    lock = threading.Lock()

    def one(batch: PlannedBatch) -> None:
        if halt.is_set():
            return
        try:
            result = deliver_batch(prepared, ledger, transport, sender, batch)
        except BaseException as error:
            if not may_pass(error):
                halt.set()  # refused or broken: stop everything after it
            raise  # one that may pass: the rest may still go out; the task's retry picks this batch up
        with lock:
            report.add(result)

    if parallel <= 1:
        for batch in batches:
            one(batch)
        return report
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="send") as pool:
        futures = [pool.submit(one, batch) for batch in batches]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
    return report
