"""Link tagging: every link in a newsletter says which edition and section it came from."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["tag_url", "read_tag", "EDITION_PARAM", "SECTION_PARAM"]

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


def read_tag(url: str) -> tuple[str | None, str | None]:
    """The (edition, section) a tagged URL carries, or Nones."""
    params = dict(parse_qsl(urlsplit(url).query))
    return params.get(EDITION_PARAM), params.get(SECTION_PARAM)
