"""One reader's newsletter: the merge values of a variant, and the finished HTML and text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.audience.addresses import display_address
from pipeline.audience.profile import Profile
from pipeline.content.edition import Edition
from pipeline.content.selection import Selection
from pipeline.errors import RenderError
from pipeline.rendering.event_times import event_times
from pipeline.rendering.layout import GMAIL_CLIP_BYTES, VariantBody
from pipeline.rendering.merge import html_value, text_value

__all__ = ["RenderedMessage", "merge_values", "merge_values_for", "personalise", "unbreakable_dates",
           "GREETING_FALLBACK"]

GREETING_FALLBACK = "there"
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NON_BREAKING_HYPHEN = "\u2011"


def unbreakable_dates(reason: str) -> str:
    """`reason` with its ISO dates joined by non-breaking hyphens, so a narrow column never shows "2027-/01-15"."""
    return _ISO_DATE.sub(lambda m: _NON_BREAKING_HYPHEN.join(m.groups()), reason)


@dataclass(frozen=True)
class RenderedMessage:
    """A finished newsletter for one reader."""

    subject: str
    html: str
    text: str


def merge_values_for(*, first_name: str, last_name: str, email: str, reasons: dict[str, str],
                     unsubscribe_url: str, preferences_url: str, web_version_url: str = "",
                     event_times: dict[str, str] | None = None) -> dict[str, str]:
    """The raw (unescaped) value of every merge tag for one reader (`event_times`: see `event_times.event_times`)."""
    values = {
        "first_name": first_name.strip() or GREETING_FALLBACK,
        "last_name": last_name,
        "email": display_address(email),  # as the reader knows it: an internationalised domain in Unicode
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "web_version_url": web_version_url,
    }
    for section_id, reason in reasons.items():
        values[f"why:{section_id}"] = unbreakable_dates(reason)
    values.update(event_times or {})
    return values


def merge_values(profile: Profile, selection: Selection, *, unsubscribe_url: str,
                 preferences_url: str, web_version_url: str = "", edition: Edition | None = None) -> dict[str, str]:
    """The merge values of `profile` for `selection` (event times in their zone when `edition` is given)."""
    return merge_values_for(first_name=profile.first_name, last_name=profile.last_name, email=profile.email,
                            reasons=selection.reasons, unsubscribe_url=unsubscribe_url,
                            preferences_url=preferences_url, web_version_url=web_version_url,
                            event_times=event_times(edition, selection.section_ids, profile.timezone)
                            if edition is not None else None)


def personalise(variant: VariantBody, values: dict[str, str], subject: str) -> RenderedMessage:
    """Merge one reader's values into a variant; refuses HTML that Gmail would clip."""
    html = variant.html.merge({k: html_value(v) for k, v in values.items()})
    if len(html.encode()) > GMAIL_CLIP_BYTES:
        raise RenderError(f"message for {values.get('email')} is {len(html.encode()) / 1024:.1f} KB,"
                          f" above Gmail's {GMAIL_CLIP_BYTES // 1024} KB clipping threshold")
    text = variant.text.merge({k: text_value(v) for k, v in values.items()})
    return RenderedMessage(subject=subject, html=html, text=text)
