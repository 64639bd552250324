"""Inbound Parse posts, as SendGrid makes them: a received mail as a signed multipart form.

`inbound_form` builds the form of SendGrid's parsed mode (`headers`, `from`, `to`, `subject`,
`text`, `envelope`, `charsets`, `SPF`, `dkim`, `sender_ip`, `spam_score`, `attachments`, and a
file part per attachment), each field's bytes in the charset `charsets` names for it.
`InboundPoster` signs it as an Inbound Parse security policy with signature verification does
(ECDSA P-256 over `timestamp + raw body`, in the Event Webhook's two headers) and posts it.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.emulator.signing import WebhookSigner

__all__ = ["InboundPoster", "InboundReply", "inbound_form"]

log = logging.getLogger("pipeline.emulator")


@dataclass(frozen=True)
class InboundReply:
    """One mail a reader sends, as the emulator's Inbound Parse will post it."""

    from_address: str
    to_address: str
    subject: str
    text: str
    message_id: str = field(default_factory=lambda: f"<{secrets.token_hex(12)}@reader.emulator.readerfirst>")
    charset: str = "utf-8"
    html: str | None = None
    attachments: Sequence[tuple[str, bytes]] = ()  # (file name, bytes)


def _part(boundary: str, name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    kind = "\r\nContent-Type: application/octet-stream" if filename else ""
    return f"--{boundary}\r\nContent-Disposition: {disposition}{kind}\r\n\r\n".encode() + value + b"\r\n"


def inbound_form(reply: InboundReply, *, extra: Mapping[str, bytes] | None = None) -> tuple[bytes, str]:
    """(body, Content-Type) of SendGrid's parsed-mode post for `reply`; `extra` adds or replaces fields."""
    boundary = "xYzZY" + secrets.token_hex(8)
    headers = (f"Message-ID: {reply.message_id}\r\nFrom: {reply.from_address}\r\nTo: {reply.to_address}\r\n"
               f"Subject: {reply.subject}\r\nMIME-Version: 1.0\r\n"
               f"Content-Type: text/plain; charset={reply.charset}\r\n")
    encoded = {"headers": "utf-8", "from": "utf-8", "to": "utf-8", "subject": reply.charset, "text": reply.charset}
    fields: dict[str, bytes] = {
        "headers": headers.encode("utf-8", "replace"),
        "dkim": b"{@reader.example : pass}",
        "to": reply.to_address.encode("utf-8"),
        "from": reply.from_address.encode("utf-8"),
        "subject": reply.subject.encode(reply.charset, "replace"),
        "text": reply.text.encode(reply.charset, "replace"),
        "sender_ip": b"127.0.0.1",
        "envelope": json.dumps({"to": [reply.to_address], "from": reply.from_address}).encode(),
        "attachments": str(len(reply.attachments)).encode(),
        "charsets": json.dumps(encoded | ({"html": reply.charset} if reply.html is not None else {})).encode(),
        "SPF": b"pass",
        "spam_score": b"0.1",
    }
    if reply.html is not None:
        fields["html"] = reply.html.encode(reply.charset, "replace")
    fields.update(extra or {})
    body = b"".join(_part(boundary, name, value) for name, value in fields.items())
    body += b"".join(_part(boundary, f"attachment{i + 1}", data, name)
                     for i, (name, data) in enumerate(reply.attachments))
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class InboundPoster:
    """Posts signed Inbound Parse forms to one URL (the web service's `/webhooks/inbound`)."""

    def __init__(self, url: str, signer: WebhookSigner, *, timeout: float = 5.0, attempts: int = 3):
        self.url, self.signer, self.timeout, self.attempts = url, signer, timeout, attempts
        self.posted = 0
        self.failed = 0

    def post(self, reply: InboundReply) -> int | None:
        """Post one reply, retrying a failure a few times; the last HTTP status, or None if never answered."""
        body, content_type = inbound_form(reply)
        status = None
        for attempt in range(self.attempts):
            request = urllib.request.Request(self.url, data=body, method="POST", headers={
                "Content-Type": content_type, "User-Agent": "Sendlib/1.0 (readerfirst emulator inbound parse)",
                **self.signer.headers(str(int(time.time())), body)})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                    self.posted += 1
                    return answer.status
            except urllib.error.HTTPError as refused:
                status = refused.code
                if refused.code < 500:
                    break  # a refusal (403, 404, 413) will not change on a retry
            except (urllib.error.URLError, OSError, http.client.HTTPException):
                pass
            time.sleep(0.2 * 2**attempt)
        self.failed += 1
        log.warning("gave up posting a simulated reply to %s (last status %s)", self.url, status)
        return status
