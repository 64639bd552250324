"""Link tagging (every link in a newsletter says which edition and section it came from),
and the signed address of a reader's web version of an edition.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pipeline.audience.tokens import make_token, read_token

__all__ = ["tag_url", "untag_url", "read_tag", "web_version_url", "web_version_token", "read_web_version_token",
           "EDITION_PARAM", "SECTION_PARAM", "WEB_VERSION_PATH"]

EDITION_PARAM = "rf_e"
SECTION_PARAM = "rf_s"


def tag_url(url: str, edition_id: str, section_id: str) -> str:
    """`url` with edition, section and UTM campaign parameters added (existing ones kept)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url  # mailto:, tel: and anchors are not tracked
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in (EDITION_PARAM, SECTION_PARAM)]
    names = {k for k, _ in query}
    extra = [("utm_source", "readerfirst"), ("utm_medium", "email"), ("utm_campaign", edition_id)]
    query += [(k, v) for k, v in extra if k not in names]
    query += [(EDITION_PARAM, edition_id), (SECTION_PARAM, section_id)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def untag_url(url: str) -> str:
    """`url` without the parameters `tag_url` adds (what the web version links to: no tracking)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _TRACKING_PARAMS]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


_TRACKING_PARAMS = frozenset({EDITION_PARAM, SECTION_PARAM, "utm_source", "utm_medium", "utm_campaign"})
WEB_VERSION_PATH = "web"
# An edition id as editions allow it (pipeline/content/edition.py); never a `~`, which ends it in a token.
_EDITION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _purpose(edition_id: str) -> str:
    # The edition is inside the signed text, so a token for one edition opens no other.
    return f"w:{edition_id}"


def web_version_token(secret: bytes, public_id: str, edition_id: str) -> str:
    """The signed token naming one reader's copy of one edition: `EDITION~PUBLICID.MAC`."""
    return f"{edition_id}~{make_token(secret, public_id, _purpose(edition_id))}"


def read_web_version_token(secret: bytes, token: str) -> tuple[str, str] | None:
    """(edition id, reader public id) if `token` is genuine, else None."""
    edition_id, sep, reader_token = token.partition("~")
    if not sep or not _EDITION_ID.match(edition_id):
        return None
    public_id = read_token(secret, reader_token, _purpose(edition_id))
    return (edition_id, public_id) if public_id else None


def web_version_url(secret: bytes, public_url: str, public_id: str, edition_id: str) -> str:
    """The reader's own web version of the edition, served by `readerfirst web` at /web/<token>."""
    return f"{public_url.rstrip('/')}/{WEB_VERSION_PATH}/{web_version_token(secret, public_id, edition_id)}"


def read_tag(url: str) -> tuple[str | None, str | None]:
    """The (edition, section) a tagged URL carries, or Nones."""
    params = dict(parse_qsl(urlsplit(url).query))
    return params.get(EDITION_PARAM), params.get(SECTION_PARAM)
