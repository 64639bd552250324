"""A SendGrid-compatible mail-send server for tests, the demo and users' staging, on loopback.

`POST /v3/mail/send` is validated as SendGrid does (our own validator: the official schema's
rules plus SendGrid's documented limits), answered 202 with `X-Message-Id` (200 in sandbox
mode), and each reader's copy is kept in SQLite with substitutions applied on read. Faults can
be injected at configured rates, and delivery events are posted to a webhook, signed with the
emulator's own ECDSA P-256 key exactly as SendGrid signs.
"""

from __future__ import annotations

from pipeline.emulator.command import build_parser, config_from_args, main
from pipeline.emulator.events import EventDispatcher, delivery_events
from pipeline.emulator.faults import Fault, FaultPlan
from pipeline.emulator.server import EmulatorConfig, SendGridEmulator, run_emulator, running_emulator
from pipeline.emulator.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSigner, load_signing_key
from pipeline.emulator.store import MessageStore, ReceivedMessage, apply_substitutions
from pipeline.emulator.validation import MailSendProblem, validate_mail_send

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "EmulatorConfig",
    "EventDispatcher",
    "Fault",
    "FaultPlan",
    "MailSendProblem",
    "MessageStore",
    "ReceivedMessage",
    "SendGridEmulator",
    "WebhookSigner",
    "apply_substitutions",
    "build_parser",
    "config_from_args",
    "delivery_events",
    "load_signing_key",
    "main",
    "run_emulator",
    "running_emulator",
    "validate_mail_send",
]
