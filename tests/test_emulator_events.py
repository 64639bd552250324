"""Delivery events posted to a webhook, signed with the emulator's ECDSA P-256 key as SendGrid signs."""

from __future__ import annotations

import json
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import sendgrid
from python_http_client.exceptions import InternalServerError
from sendgrid.helpers.eventwebhook import EventWebhook

from pipeline.emulator import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EventDispatcher,
    FaultPlan,
    SendGridEmulator,
    load_signing_key,
    running_emulator,
)
from pipeline.emulator.signing import WebhookSigner
from pipeline.emulator.store import Delivery
from pipeline.errors import ConfigurationError
from tests.conftest import Receiver

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sendgrid" / "mail_send_personalized.json"


def payload() -> dict[str, Any]:
    """The recorded three-reader payload (Ada, Grace, Katherine) with custom_args and categories."""
    return json.loads(FIXTURE.read_text())


def send(emulator: SendGridEmulator, body: dict[str, Any]) -> str:
    """Send with the official client; returns the X-Message-Id."""
    client = sendgrid.SendGridAPIClient(emulator.api_key, host=emulator.url)
    client.client.timeout = 10
    return client.client.mail.send.post(request_body=body).headers["X-Message-Id"]


def test_processed_and_delivered_or_bounce_per_recipient(receiver: Receiver) -> None:
    """Each reader gets processed, then delivered, or bounce (type bounce) for a configured bounce address."""
    with running_emulator(webhook_url=receiver.url, bounces=("Grace@example.com",)) as emulator:
        message_id = send(emulator, payload())
        assert emulator.flush_events()
    events = receiver.events()
    by_reader = {(e["email"], e["event"]) for e in events}
    assert by_reader == {
        ("ada@example.com", "processed"), ("ada@example.com", "delivered"),
        ("grace@example.com", "processed"), ("grace@example.com", "bounce"),
        ("katherine@example.com", "processed"), ("katherine@example.com", "delivered"),
    }
    assert len(events) == 6
    [bounce] = [e for e in events if e["event"] == "bounce"]
    assert bounce["type"] == "bounce"
    assert len({e["sg_event_id"] for e in events}) == 6
    for event in events:
        assert event["sg_message_id"].startswith(message_id)
        assert event["category"] == ["edition-2026-12-07", "variant-a"]
        assert event["edition_id"] == "2026-12-07" and event["variant_id"] == "a"
        assert abs(event["timestamp"] - time.time()) < 60
    readers = {e["email"]: e["reader_id"] for e in events}
    assert readers == {"ada@example.com": "101", "grace@example.com": "102", "katherine@example.com": "103"}


def test_signature_verifies_with_sendgrids_helper(receiver: Receiver) -> None:
    """Every POST verifies with sendgrid's EventWebhook helper on the raw body; a changed body does not."""
    with running_emulator(webhook_url=receiver.url) as emulator:
        send(emulator, payload())
        assert emulator.flush_events()
        public_key = emulator.public_key
    assert receiver.posts
    helper = EventWebhook(public_key)
    for headers, body in receiver.posts:
        assert body.endswith(b"\r\n")  # SendGrid's trailing CRLF is part of what is signed
        signature, timestamp = headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]
        assert EventWebhook().verify_signature(body.decode("utf-8"), signature, timestamp, helper.public_key)
        assert not helper.verify_signature(body.decode("utf-8").rstrip("\r\n"), signature, timestamp)
        assert not helper.verify_signature(body.decode("utf-8").replace("delivered", "bounce"), signature, timestamp)
        assert not helper.verify_signature(body.decode("utf-8"), signature, str(int(timestamp) + 1))


def test_sandbox_and_faulted_requests_emit_no_events(receiver: Receiver) -> None:
    """Sandbox requests and requests refused by a fault post no events; a normal request after them does."""
    sandboxed = payload()
    sandboxed["mail_settings"]["sandbox_mode"]["enable"] = True
    with running_emulator(webhook_url=receiver.url, faults=FaultPlan(server_error=1.0)) as emulator:
        with pytest.raises(InternalServerError):
            send(emulator, payload())
        assert emulator.flush_events()
    assert receiver.posts == []
    with running_emulator(webhook_url=receiver.url) as emulator:
        send(emulator, sandboxed)
        message_id = send(emulator, payload())
        assert emulator.flush_events()
    assert len(receiver.events()) == 6
    assert all(event["sg_message_id"].startswith(message_id) for event in receiver.events())


def test_failing_receiver_is_retried(receiver: Receiver) -> None:
    """A receiver that answers 500 once gets the same batch again and finally has every event."""
    receiver.statuses.append(500)
    with running_emulator(webhook_url=receiver.url) as emulator:
        send(emulator, payload())
        assert emulator.flush_events()
        assert emulator.stats()["events"]["batches_posted"] >= 1
    assert len(receiver.events()) == 6


def test_unreachable_webhook_is_given_up_and_counted() -> None:
    """When nothing listens at the webhook URL, the batch is retried, then counted as failed, and flush returns."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = EventDispatcher(f"http://127.0.0.1:{port}/hook", WebhookSigner(load_signing_key(None)), attempts=2, max_wait=0.0)
    try:
        dispatcher.accepted("msg", [Delivery("msg.0", "ada@example.com", "to", {})], None, time.time())
        assert dispatcher.flush(timeout=10)
        assert dispatcher.counts() == {"batches_failed": 1}
    finally:
        dispatcher.close()


def test_events_of_many_requests_are_batched(receiver: Receiver) -> None:
    """Events of requests sent close together arrive in few POSTs, each a JSON array."""
    with running_emulator(webhook_url=receiver.url, event_batch_wait=0.5) as emulator:
        for batch in range(10):
            body = payload()
            for index, item in enumerate(body["personalizations"]):
                item["to"][0]["email"] = f"r{batch}-{index}@example.com"
            send(emulator, body)
        assert emulator.flush_events()
        assert emulator.stats()["events"]["delivered"] == 30
    assert len(receiver.events()) == 60
    assert len(receiver.posts) < 10


def test_public_key_is_base64_der_spki() -> None:
    """The published key loads as a P-256 SubjectPublicKeyInfo, as SendGrid's settings page shows it."""
    with running_emulator() as emulator:
        key = EventWebhook(emulator.public_key).public_key
    assert key.curve.name == "secp256r1"


def test_signing_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    """A missing key file is created owner-only, and a later run with it publishes the same public key."""
    path = tmp_path / "webhook-key.pem"
    with running_emulator(signing_key_path=path) as first:
        key = first.public_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with running_emulator(signing_key_path=path) as second:
        assert second.public_key == key


def test_unusable_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A key file that is not an ECDSA P-256 PEM key is refused with the file named."""
    path = tmp_path / "key.pem"
    path.write_text("not a key")
    with pytest.raises(ConfigurationError, match="key.pem"):
        load_signing_key(path)


def test_signer_headers_match_sendgrid_names() -> None:
    """The signer emits exactly SendGrid's two header names, and the signature covers timestamp + body."""
    signer = WebhookSigner(load_signing_key(None))
    headers = signer.headers("1700000000", b"[]\r\n")
    assert set(headers) == {"X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"}
    assert EventWebhook(signer.public_key).verify_signature("[]\r\n", headers[SIGNATURE_HEADER], "1700000000")
