"""Reader tokens for unsubscribe and preference links: opaque, HMAC-signed, unforgeable.

A token is the reader's random public id, the purpose and a truncated HMAC-SHA256 over both;
no database id appears, so there is nothing to enumerate.
"""

from __future__ import annotations

import hmac

__all__ = ["make_token", "read_token", "reader_links"]

_MAC_CHARS = 32


def _mac(secret: bytes, public_id: str, purpose: str) -> str:
    # hmac.digest is the one-shot C path: a send makes two tokens for every reader.
    return hmac.digest(secret, f"{purpose}:{public_id}".encode(), "sha256").hex()[:_MAC_CHARS]


def make_token(secret: bytes, public_id: str, purpose: str) -> str:
    """A token for `purpose` (`u` unsubscribe, `p` preferences) of the reader `public_id`."""
    return f"{public_id}.{_mac(secret, public_id, purpose)}"


def read_token(secret: bytes, token: str, purpose: str) -> str | None:
    """The reader's public id if `token` is genuine for `purpose`, else None."""
    public_id, _, mac = token.partition(".")
    if not public_id or not mac:
        return None
    try:
        genuine = hmac.compare_digest(mac.encode("ascii"), _mac(secret, public_id, purpose).encode("ascii"))
    except UnicodeEncodeError:  # an edited link with non-ASCII characters is simply not genuine
        return None
    return public_id if genuine else None


def reader_links(secret: bytes, public_url: str, public_id: str) -> tuple[str, str]:
    """(unsubscribe URL, preferences URL) of one reader."""
    base = public_url.rstrip("/")
    return (f"{base}/u/{make_token(secret, public_id, 'u')}", f"{base}/p/{make_token(secret, public_id, 'p')}")
