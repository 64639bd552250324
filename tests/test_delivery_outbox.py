"""The local outbox writes each reader's own Reply-To address when one is set."""

from __future__ import annotations

import email
import email.policy

from pipeline.delivery.outbox import OutboxTransport
from tests.test_delivery_sendgrid_payload import _with_reply_to, sample_batch


def test_each_message_carries_its_readers_reply_to(tmp_path):
    """A reader's .eml file has their own reply address as Reply-To; without one, no Reply-To at all."""
    OutboxTransport(tmp_path).send(_with_reply_to(sample_batch(readers=2)))
    OutboxTransport(tmp_path / "plain").send(sample_batch(readers=1))
    replies = {}
    for path in (tmp_path / "2026-12-07").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        replies[str(message["To"])] = str(message["Reply-To"])
    assert replies == {"Ann 0 <reader0@example.com>": "reply+tok1abc@replies.example.com",
                       "Ann 1 <reader1@example.com>": "reply+tok2abc@replies.example.com"}
    [plain] = (tmp_path / "plain" / "2026-12-07").glob("*.eml")
    assert email.message_from_bytes(plain.read_bytes(), policy=email.policy.default)["Reply-To"] is None
