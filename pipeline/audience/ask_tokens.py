"""Signed links of the ask: one per (reader, edition, topic), valid until a date.

A token is `<public id>~<edition key>~<topic or ->~<YYYYMMDD>~<mac>`: the reader's random
public id, a 12-hex digest of the edition id (the page finds the edition among those sent to
the reader, so a token names only an edition that reader was sent), the topic of the
one-click answer (`-` for the free-text answer), the last day the link works, and a
truncated HMAC-SHA256 over all four with READERFIRST_SECRET. Changing any part, or using it
after its day, makes it worthless. Like the unsubscribe token it holds no database id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.errors import ConfigurationError

__all__ = ["AskClaim", "ASK_LINK_DAYS", "FREE_TEXT", "edition_key", "make_ask_token", "read_ask_token",
           "ask_link_values", "ask_merge_name", "ASK_WORDS_FIELD", "ask_url"]

ASK_LINK_DAYS = 30  # how long an emailed answer link works
FREE_TEXT = "-"  # the topic part of the free-text answer's link
ASK_WORDS_FIELD = "ask_words"
_MAC_CHARS = 32
_SEPARATOR = "~"  # in no public id, edition key, topic or date, and unreserved in a URL path
_PUBLIC_ID = re.compile(r"[0-9a-f]{1,64}")
_EDITION_KEY = re.compile(r"[0-9a-f]{12}")
_TOPIC = re.compile(r"-|[a-z0-9][a-z0-9-]{0,63}")
_DAY = re.compile(r"[0-9]{8}")
_MAX_TOKEN_CHARS = 200
# Merge values are cut at this many characters (pipeline/rendering/merge.py): a longer link would break.
_MAX_URL_CHARS = 200


@dataclass(frozen=True)
class AskClaim:
    """What a genuine ask token says: whose answer, to which edition's ask, about what, until when."""

    public_id: str
    edition_key: str
    topic: str  # FREE_TEXT for the free-text answer
    expires: dt.date

    @property
    def free_text(self) -> bool:
        """Whether the reader names the topic on the page (the free-text answer)."""
        return self.topic == FREE_TEXT


def edition_key(edition_id: str) -> str:
    """The short digest of an edition id that ask tokens carry."""
    return hashlib.blake2b(edition_id.encode(), digest_size=6).hexdigest()


def _mac(secret: bytes, public_id: str, key: str, topic: str, day: str) -> str:
    message = f"ask:{public_id}:{key}:{topic}:{day}".encode()
    return hmac.digest(secret, message, "sha256").hex()[:_MAC_CHARS]


def make_ask_token(secret: bytes, public_id: str, edition_id: str, topic: str, expires: dt.date) -> str:
    """The token of one answer link: `topic` (or FREE_TEXT) for the reader `public_id` in `edition_id`."""
    return _signed(secret, public_id, edition_key(edition_id), topic, expires.strftime("%Y%m%d"))


def _signed(secret: bytes, public_id: str, key: str, topic: str, day: str) -> str:
    return _SEPARATOR.join((public_id, key, topic, day, _mac(secret, public_id, key, topic, day)))


def read_ask_token(secret: bytes, token: str, today: dt.date) -> AskClaim | None:
    """The claim of a genuine token still valid on `today`, else None (forged, altered, odd or expired)."""
    if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        return None
    parts = token.split(_SEPARATOR)
    if len(parts) != 5:
        return None
    public_id, key, topic, day, mac = parts
    if not (_PUBLIC_ID.fullmatch(public_id) and _EDITION_KEY.fullmatch(key) and _TOPIC.fullmatch(topic)
            and _DAY.fullmatch(day)):
        return None
    if not hmac.compare_digest(mac.encode("ascii"), _mac(secret, public_id, key, topic, day).encode("ascii")):
        return None
    try:
        expires = dt.date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:  # signed by us, so never; but a date that is not one is never valid
        return None
    if expires < today:
        return None
    return AskClaim(public_id, key, topic, expires)


def ask_merge_name(topic: str) -> str:
    """The merge field of the one-click answer for `topic` (`ask:<topic>`)."""
    return f"ask:{topic}"


def ask_url(secret: bytes, public_url: str, public_id: str, edition_id: str, topic: str, expires: dt.date) -> str:
    """The address of one answer link."""
    return _checked_url(public_url, f"{public_url.rstrip('/')}/a/{make_ask_token(secret, public_id, edition_id, topic, expires)}")


def _checked_url(public_url: str, url: str) -> str:
    if len(url) > _MAX_URL_CHARS:
        raise ConfigurationError(f"READERFIRST_PUBLIC_URL={public_url!r} is too long for the ask's links "
                                 f"({len(url)} characters, at most {_MAX_URL_CHARS}); use a shorter address")
    return url


def ask_link_values(secret: bytes, public_url: str, public_id: str, edition_id: str, topics: Iterable[str],
                    today: dt.date) -> dict[str, str]:
    """The merge values of one reader's ask: a link per topic, and the free-text answer's link."""
    # Each reader of a send gets one link per topic: the edition's key and the day are worked out once.
    key, day = edition_key(edition_id), (today + dt.timedelta(days=ASK_LINK_DAYS)).strftime("%Y%m%d")
    base = f"{public_url.rstrip('/')}/a/"
    values = {ask_merge_name(topic): _checked_url(public_url, base + _signed(secret, public_id, key, topic, day))
              for topic in topics}
    values[ASK_WORDS_FIELD] = _checked_url(public_url, base + _signed(secret, public_id, key, FREE_TEXT, day))
    return values
