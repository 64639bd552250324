"""A simulated reader's response as the events SendGrid's Event Webhook would post for it.

Shared by the evaluation loop and the SendGrid emulator, so both speak exactly the provider's
format that `pipeline.engagement.sendgrid_events` reads: an Apple MPP prefetch is an `open`
with `sg_machine_open: true`; a person's open is an `open` (not reported for an MPP reader,
whose images the proxy already fetched); each click is a `click` with the clicked `url` (the
section's tagged link, carrying `rf_s=<section id>`); then `spamreport` or `unsubscribe`.
Event ids are derived from the message id, so the same response always gives the same events.
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipeline.content.edition import Section
from pipeline.rendering.links import SECTION_PARAM, tag_url
from pipeline.simulation.readers import Response

__all__ = ["CLICK_DELAY", "OPEN_DELAY", "response_events", "section_link", "section_links_in_html"]

MACHINE_OPEN_DELAY = 20  # seconds after delivery: the proxy prefetches at once
OPEN_DELAY = 3_600  # a person opens about an hour later
CLICK_DELAY = 45  # and clicks, section after section, within minutes
LEAVE_DELAY = 900  # unsubscribe or spam report after reading


def _event_id(message_id: str, what: str) -> str:
    digest = hashlib.blake2b(f"{message_id}\x1f{what}".encode(), digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def response_events(response: Response, *, base: Mapping[str, Any], section_urls: Mapping[str, str],
                    delivered_at: int) -> list[dict[str, Any]]:
    """The webhook events of `response`; `base` holds email, sg_message_id, category and custom_args.

    A click on a section without a known link is left out: the provider reports only clicks
    on tracked links.
    """
    message_id = str(base.get("sg_message_id", ""))
    events: list[dict[str, Any]] = []

    def add(kind: str, at: int, what: str, **fields: Any) -> None:
        events.append({**base, "event": kind, "timestamp": delivered_at + at,
                       "sg_event_id": _event_id(message_id, what), **fields})

    if response.machine_open:
        add("open", MACHINE_OPEN_DELAY, "machine_open", sg_machine_open=True,
            useragent="Mozilla/5.0", ip="17.58.0.1")
    elif response.opened:
        add("open", OPEN_DELAY, "open", sg_machine_open=False, useragent="Mozilla/5.0 (readerfirst simulation)",
            ip="192.0.2.10")
    for index, section_id in enumerate(response.clicks):
        url = section_urls.get(section_id)
        if url is not None:
            add("click", OPEN_DELAY + CLICK_DELAY * (index + 1), f"click:{section_id}", url=url,
                url_offset={"index": index, "type": "html"}, useragent="Mozilla/5.0 (readerfirst simulation)",
                ip="192.0.2.10")
    if response.spam_report:
        add("spamreport", OPEN_DELAY + LEAVE_DELAY, "spamreport")
    elif response.unsubscribed:
        add("unsubscribe", OPEN_DELAY + LEAVE_DELAY, "unsubscribe")
    return events


def section_link(section: Section, edition_id: str) -> str | None:
    """The tagged link a reader follows to read `section` (its own URL, or the first in its fields)."""
    url = section.first_url
    return tag_url(url, edition_id, section.id) if url else None


class _Links(html.parser.HTMLParser):
    """Collects, per section id, the first tagged link of an HTML body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        href = dict(attrs).get("href")
        if not href:
            return
        section = dict(parse_qsl(urlsplit(href).query)).get(SECTION_PARAM)
        if section:
            self.found.setdefault(section, href)


def section_links_in_html(body: str) -> dict[str, str]:
    """Section id -> the first link in `body` that carries `rf_s=<section id>` (the one a reader clicks)."""
    parser = _Links()
    parser.feed(body)
    parser.close()
    return parser.found
