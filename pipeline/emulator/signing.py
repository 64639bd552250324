"""The emulator's Event Webhook signing key: ECDSA P-256 over SHA-256, as SendGrid signs.

SendGrid signs `timestamp + raw body bytes` and sends the base64 DER signature in
`X-Twilio-Email-Event-Webhook-Signature`, the timestamp in `X-Twilio-Email-Event-Webhook-Timestamp`;
receivers verify with the base64 DER SubjectPublicKeyInfo shown in SendGrid's settings. The
emulator does the same with its own key, so the receiver's verification code is exercised
unchanged.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import ConfigurationError

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSigner",
    "load_signing_key",
]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def load_signing_key(path: Path | str | None) -> ec.EllipticCurvePrivateKey:
    """The P-256 key in the PEM file at `path`; a new key (written there if a path is given) otherwise."""
    if path is not None:
        path = Path(path)
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError) as error:
                raise ConfigurationError(f"{path}: not an unencrypted PEM private key ({error})") from error
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise ConfigurationError(f"{path}: the webhook signing key must be ECDSA P-256 (secp256r1)")
            return key
    key = ec.generate_private_key(ec.SECP256R1())
    if path is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Created owner-only from the start: a private key must never be readable by others.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
    return key


class WebhookSigner:
    """Signs Event Webhook bodies and publishes the matching public key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey):
        self._key = key
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode("ascii")

    def sign(self, timestamp: str, body: bytes) -> str:
        """The base64 DER signature of `timestamp + body`, for the signature header."""
        signature = self._key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode("ascii")

    def headers(self, timestamp: str, body: bytes) -> dict[str, str]:
        """The two headers SendGrid adds to a signed webhook POST."""
        return {SIGNATURE_HEADER: self.sign(timestamp, body), TIMESTAMP_HEADER: timestamp}
