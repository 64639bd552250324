"""Per-reader reply addresses: `reply+<token>@<READERFIRST_REPLY_DOMAIN>`, signed, and read back.

The token carries the reader's random public id, a 4-byte digest of the edition id and an
80-bit HMAC over both, in lower-case base32 (48 characters, so the local part is 54 of the 64
RFC 5321 allows). Base32 because mail systems may change the case of a local part: it is read
back whatever case it arrives in. The edition is only a digest (an edition id may be 100
characters): the store finds it among the editions the ledger sent that reader. An address whose
token does not decode or whose HMAC does not match names nobody: `read_reply_address` gives
None, and the reply is kept unattributed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["REPLY_PREFIX", "ReplyToken", "edition_digest", "make_reply_address", "make_reply_token",
           "read_reply_address", "read_reply_token"]

REPLY_PREFIX = "reply+"
_PUBLIC_ID_BYTES = 16  # a reader's public id is 32 hex digits
_EDITION_BYTES = 4
_MAC_BYTES = 10
_TOKEN_BYTES = _PUBLIC_ID_BYTES + _EDITION_BYTES + _MAC_BYTES
_TOKEN_CHARS = 48  # base32 of 30 bytes, no padding needed


@dataclass(frozen=True)
class ReplyToken:
    """What a genuine reply token says: the reader's public id and the digest of the edition id."""

    public_id: str
    edition_digest: bytes


def edition_digest(edition_id: str) -> bytes:
    """The short digest of an edition id that a reply token carries."""
    return hashlib.sha256(f"readerfirst-edition:{edition_id}".encode()).digest()[:_EDITION_BYTES]


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.digest(secret, b"reply:" + body, "sha256")[:_MAC_BYTES]


def make_reply_token(secret: bytes, public_id: str, edition_id: str) -> str:
    """The lower-case base32 token of (reader, edition); ValueError if `public_id` is not 32 hex digits."""
    body = bytes.fromhex(public_id) + edition_digest(edition_id)
    if len(body) != _PUBLIC_ID_BYTES + _EDITION_BYTES:
        raise ValueError("a reader's public id is 32 hexadecimal digits")
    return base64.b32encode(body + _mac(secret, body)).decode("ascii").lower()


def make_reply_address(secret: bytes, domain: str, public_id: str, edition_id: str) -> str:
    """`reply+<token>@<domain>`: where this reader's reply to this edition goes."""
    return f"{REPLY_PREFIX}{make_reply_token(secret, public_id, edition_id)}@{domain.strip().lower()}"


def read_reply_token(secret: bytes, token: str) -> ReplyToken | None:
    """What a genuine token says, or None for anything else (altered, truncated, forged, not base32)."""
    if len(token) != _TOKEN_CHARS or not token.isascii() or not token.isalnum():
        return None
    try:
        raw = base64.b32decode(token.upper())
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _TOKEN_BYTES:
        return None
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    return ReplyToken(public_id=body[:_PUBLIC_ID_BYTES].hex(), edition_digest=body[_PUBLIC_ID_BYTES:])


def read_reply_address(secret: bytes, address: str, domain: str | None = None) -> ReplyToken | None:
    """The token of a reply address (`reply+TOKEN@domain`, any case), or None if it holds no genuine one.

    With `domain`, an address on another domain is refused too.
    """
    local, at, host = address.strip().rpartition("@")
    if not at or not local.lower().startswith(REPLY_PREFIX):
        return None
    if domain is not None and host.rstrip(".").lower() != domain.strip().rstrip(".").lower():
        return None
    return read_reply_token(secret, local[len(REPLY_PREFIX):])
