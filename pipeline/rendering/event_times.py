"""Event times in the reader's own time zone, written in the edition's language, with the zone shown.

An event's start is stored with its zone in the edition (an ISO time with an offset, or a
`tz` name beside a local time). Each reader who declared a time zone sees the start in it;
others see it in the event's own zone. Either way the zone's abbreviation follows the time
("Thu 10 Dec 2026, 18:00 GMT"), so nobody has to guess. A date without a time, or a time the
editor gave without a zone, is shown as written: converting it would invent a precision
nobody gave.

The time is a per-reader merge value (`when:<section id>`), so the edition is still compiled
once; readers of a batch who share a zone share the value, which the SendGrid payload then
writes once instead of per reader.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from functools import lru_cache

from pipeline.content.edition import Edition, EventDetails

__all__ = ["event_times", "format_event_time", "event_start", "when_tag", "LANGUAGES"]

# Abbreviated weekday (Monday first) and month names, and the order of the parts, per language.
# A small table instead of a locale library: the four languages editions use today.
_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, str]] = {
    "en": (("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
           ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
           "{wd} {d} {mon} {y}", "{date}, {time}"),
    "de": (("Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."),
           ("Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez."),
           "{wd}, {d}. {mon} {y}", "{date}, {time} Uhr"),
    "fr": (("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."),
           ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."),
           "{wd} {d} {mon} {y}", "{date}, {time}"),
    "es": (("lun.", "mar.", "mié.", "jue.", "vie.", "sáb.", "dom."),
           ("ene.", "feb.", "mar.", "abr.", "may.", "jun.", "jul.", "ago.", "sept.", "oct.", "nov.", "dic."),
           "{wd}, {d} {mon} {y}", "{date}, {time}"),
}
LANGUAGES = tuple(_NAMES)
_NBSP = "\u00a0"


def when_tag(section_id: str) -> str:
    """The merge field holding section `section_id`'s event time."""
    return f"when:{section_id}"


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None  # imports validate zones; a name that has since vanished falls back to the event's zone


def event_start(event: EventDetails) -> dt.datetime | dt.date:
    """The event's start: an aware datetime when the edition gave a zone, else as written."""
    if len(event.starts) <= 10:
        return dt.date.fromisoformat(event.starts)
    value = dt.datetime.fromisoformat(event.starts)
    zone = _zone(event.tz)
    if value.tzinfo is None and zone is not None:
        value = value.replace(tzinfo=zone)
    return value


def _names(language: str) -> tuple[tuple[str, ...], tuple[str, ...], str, str]:
    return _NAMES.get(language.split("-")[0].lower(), _NAMES["en"])


def format_event_time(start: dt.datetime | dt.date, language: str = "en", reader_zone: str = "") -> str:
    """`start` in the reader's zone (when both are known), in `language`, with the zone's abbreviation."""
    weekdays, months, date_pattern, time_pattern = _names(language)
    if not isinstance(start, dt.datetime):
        return date_pattern.format(wd=weekdays[start.weekday()], d=start.day, mon=months[start.month - 1], y=start.year)
    zone = _zone(reader_zone)
    if start.tzinfo is not None and zone is not None:
        start = start.astimezone(zone)
    date = date_pattern.format(wd=weekdays[start.weekday()], d=start.day, mon=months[start.month - 1], y=start.year)
    text = time_pattern.format(date=date, time=start.strftime("%H:%M"))
    if start.tzinfo is not None:
        # A no-break space keeps the zone on the time's line.
        text += _NBSP + (start.tzname() or start.strftime("UTC%z"))
    return text


def event_times(edition: Edition, section_ids: Iterable[str], reader_zone: str) -> dict[str, str]:
    """The `when:<section id>` merge values of the event sections among `section_ids`, for one reader."""
    values = {}
    for section_id in section_ids:
        section = edition.by_id.get(section_id)
        if section is not None and section.event is not None:
            values[when_tag(section_id)] = format_event_time(event_start(section.event), edition.language,
                                                             reader_zone)
    return values
