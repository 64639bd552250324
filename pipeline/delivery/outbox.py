"""The local outbox: the default transport, one `.eml` per reader plus an index.

Used whenever SENDGRID_API_KEY is unset, so that everything can be run and looked at on one
machine. Each edition gets a folder; `index.jsonl` lists every message with its sections.
Addresses arrive in their wire form (IDN domains as IDNA, see `pipeline.delivery.addresses`);
a message that still cannot be written as an RFC 5322 file is refused for that reader alone.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import json
import os
import threading
from email.message import EmailMessage
from pathlib import Path

from pipeline.delivery.addresses import UnsendableAddress, wire_address
from pipeline.delivery.transport import BatchReceipt, Envelope, OutgoingBatch
from pipeline.rendering.message import personalise

__all__ = ["OutboxTransport", "message_file_name"]

_POLICY = email.policy.SMTP.clone(max_line_length=998)


def message_file_name(address: str) -> str:
    """A file name for a reader's message: readable, and unique even for odd addresses."""
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in address)[:80]
    return f"{safe}-{hashlib.blake2b(address.encode(), digest_size=4).hexdigest()}.eml"


class OutboxTransport:
    """Writes each reader's message as an `.eml` file under `folder/<edition>/`."""

    name = "outbox"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def send(self, batch: OutgoingBatch) -> BatchReceipt:
        """Write every message of `batch` and add them to the edition's index."""
        folder = self.folder / batch.edition_id
        folder.mkdir(parents=True, exist_ok=True)
        batch_message_id = f"{batch.batch_id}@outbox.readerfirst"
        entries, per_reader, refused = [], {}, {}
        for envelope in batch.envelopes:
            message = personalise(batch.body, envelope.values, envelope.subject)
            message_id = email.utils.make_msgid(idstring=f"{batch.edition_id}.{envelope.reader_id}", domain="outbox.readerfirst")
            try:
                data = self._message_bytes(batch, envelope, message, message_id)
            except UnsendableAddress as refusal:
                refused[envelope.reader_id] = f"the outbox cannot write this address: {refusal.reason}"
                continue
            except (UnicodeError, ValueError) as error:
                # The email package refuses what SMTP could not carry; one reader, not the batch.
                refused[envelope.reader_id] = f"the outbox cannot write this message: {type(error).__name__}: {error}"
                continue
            path = folder / message_file_name(envelope.email)
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)  # a crash never leaves half a message
            per_reader[envelope.reader_id] = message_id
            entries.append(json.dumps({
                "reader_id": envelope.reader_id, "email": envelope.email, "subject": message.subject,
                "variant_id": batch.variant_id, "sections": list(batch.body.section_ids),
                "file": path.name, "message_id": message_id, "batch_id": batch.batch_id,
                "holdout": envelope.holdout,
            }))
        if entries:
            with self._lock, open(folder / "index.jsonl", "a", encoding="utf-8") as index:
                index.write("\n".join(entries) + "\n")
        return BatchReceipt(message_id=batch_message_id, per_reader=per_reader, refused=refused)

    @staticmethod
    def _message_bytes(batch: OutgoingBatch, envelope: Envelope, message, message_id: str) -> bytes:
        """The reader's message as an RFC 5322 file (raises for an address it cannot carry)."""
        address = wire_address(envelope.email)  # idempotent: callers normally hand the wire form already
        mail = EmailMessage(policy=_POLICY)
        mail["From"] = email.utils.formataddr((batch.from_name, batch.from_email))
        mail["To"] = email.utils.formataddr((envelope.name, address)) if envelope.name else address
        mail["Subject"] = message.subject
        mail["Date"] = email.utils.formatdate(localtime=False)
        mail["Message-ID"] = message_id
        if envelope.reply_to:
            mail["Reply-To"] = envelope.reply_to
        mail["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail["X-Readerfirst-Edition"] = batch.edition_id
        mail["X-Readerfirst-Variant"] = batch.variant_id
        mail.set_content(message.text, cte="quoted-printable")
        mail.add_alternative(message.html, subtype="html", cte="quoted-printable")
        return mail.as_bytes()

    def close(self) -> None:
        """Nothing to release."""
