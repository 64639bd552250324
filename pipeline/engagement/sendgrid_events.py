"""SendGrid Event Webhook JSON, translated to `NormalisedEvent`: the only module that reads it.

SendGrid posts a JSON array of events; each carries `sg_event_id`, `email`, `event` and a Unix
`timestamp`, and our per-personalization `custom_args` (edition_id, reader_id, variant_id,
holdout) come back as top-level keys. An event that cannot be read is never dropped: it is
returned with the reason, for the caller to quarantine, while the rest of the batch goes on.

Reading one event can only ever give a parsed event or a quarantined one. The parser refuses
what it can name (huge numbers, values of the wrong type, urls urllib cannot split, timestamps
out of range, values no database column can store); `parse_events` also quarantines, with its
class, anything else reading an event raises, because one odd value answered with a 500 would
be retried by SendGrid for 24 hours and block every good event sent with it. A body the fast
decoder refuses whole is split into its elements and each is decoded alone (`event_array`).

Values are also checked against the widths of the `engagement_events` columns: PostgreSQL
refuses an over-long value, and one such event would otherwise fail its whole batch on every
one of SendGrid's retries.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from pipeline.engagement.event_array import (
    STRICT_JSON,
    InvalidEventBody,
    UnreadableElement,
    body_text,
    decode_body,
    decode_element,
    element_texts,
    json_text,
    quarantine_text,
    read_array,
    short,
)
from pipeline.engagement.events import EventType, NormalisedEvent
from pipeline.errors import PipelineError
from pipeline.rendering.links import read_tag

try:
    import orjson  # what the store writes raw events with: an event it cannot write is refused here
except ImportError:  # pragma: no cover - the standard library does the same, more slowly
    orjson = None

# Reading the JSON itself lives in event_array; its names are re-exported here, where callers read events.
__all__ = [
    "InvalidEventBody",
    "MalformedEvent",
    "Quarantined",
    "SENDGRID_EVENTS",
    "UnreadableElement",
    "decode_body",
    "decode_element",
    "read_array",
    "parse_event",
    "parse_events",
    "json_text",
    "quarantine_text",
    "reason_of",
    "STRICT_JSON",
]

# A malformed event as it arrived (the object, or its text when it was not an object) and why.
Quarantined = tuple[dict | str, str]

# SendGrid's event name -> ours; `bounce` and `open` are refined by their other fields.
SENDGRID_EVENTS: dict[str, EventType] = {
    "processed": EventType.PROCESSED,
    "dropped": EventType.DROPPED,
    "delivered": EventType.DELIVERED,
    "deferred": EventType.DEFERRED,
    "bounce": EventType.HARD_BOUNCE,
    "open": EventType.OPEN,
    "click": EventType.CLICK,
    "spamreport": EventType.SPAM_REPORT,
    "unsubscribe": EventType.UNSUBSCRIBE,
    "group_unsubscribe": EventType.GROUP_UNSUBSCRIBE,
    "group_resubscribe": EventType.GROUP_RESUBSCRIBE,
}

# SendGrid's bounce `type`: "bounce" is permanent; "blocked" (and "expired", after 72 h of
# deferrals) may pass. A bounce without a type is treated as permanent, as SendGrid's own
# suppression list does.
_BOUNCE_TYPES = {"bounce": EventType.HARD_BOUNCE, "blocked": EventType.SOFT_BOUNCE,
                 "expired": EventType.SOFT_BOUNCE}

# Column widths of engagement_events (see pipeline/store/models.py).
_ID_WIDTH, _EMAIL_WIDTH, _EDITION_WIDTH, _SECTION_WIDTH, _VARIANT_WIDTH = 100, 320, 100, 100, 32
_MAX_READER_ID = 2**31 - 1  # an INTEGER column on PostgreSQL
_MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
_EPOCH = dt.datetime(1970, 1, 1)
# Digits of the longest whole number read: every id and timestamp we accept is shorter, and int()
# of a string of thousands of digits raises (Python's int-string limit), slowly.
_MAX_DIGITS = 18
_SHOWN = 80  # characters of a value quoted in a reason


class MalformedEvent(PipelineError, ValueError):
    """One event that cannot be read; the message is the reason it is quarantined with."""


def _shown(value: Any) -> str:
    """`value` quoted for a reason: its repr, at most _SHOWN characters, whatever it is."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int of thousands of digits, or nesting past the stack
        return f"<a {type(value).__name__} too large to show>"
    return short(text, _SHOWN)


def _text(event: Mapping[str, Any], key: str, *, required: bool, width: int = 0) -> str | None:
    value = event.get(key)
    if type(value) is str and value and (not width or len(value) <= width) and "\x00" not in value:
        return value  # the usual case, checked first: this runs several times for every event
    if value is None or value == "":
        if required:
            raise MalformedEvent(f"missing {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedEvent(f"{key}={_shown(value)} is not a string")
    if isinstance(value, int) and not -10**_MAX_DIGITS < value < 10**_MAX_DIGITS:
        raise MalformedEvent(f"{key} is a number of more than {_MAX_DIGITS} digits")
    value = str(value)
    if "\x00" in value:
        raise MalformedEvent(f"{key} contains a NUL character")
    if width and len(value) > width:
        raise MalformedEvent(f"{key} is {len(value)} characters long; at most {width} are kept")
    return value


# Stands for a whole number too long to convert: larger than every range we accept.
_TOO_LONG = 10**_MAX_DIGITS


def _whole_number(value: Any) -> int | None:
    """`value` as an int if it is one (or a string of digits), else None; _TOO_LONG past 18 digits."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit():
            return int(digits) if len(digits) <= _MAX_DIGITS else _TOO_LONG
    return None


def _occurred_at(event: Mapping[str, Any]) -> dt.datetime:
    raw = event.get("timestamp")
    if raw is None or raw == "":
        raise MalformedEvent("missing timestamp")
    seconds = _whole_number(raw)
    if seconds is None:
        raise MalformedEvent(f"timestamp={_shown(raw)} is not a whole number of Unix seconds")
    if not 0 <= seconds <= _MAX_TIMESTAMP:
        raise MalformedEvent(f"timestamp={_shown(raw)} is out of range")
    return _EPOCH + dt.timedelta(seconds=seconds)


def _reader_id(event: Mapping[str, Any]) -> int | None:
    raw = event.get("reader_id")
    if raw is None or raw == "":
        return None
    reader_id = _whole_number(raw)
    if reader_id is None:
        raise MalformedEvent(f"reader_id={_shown(raw)} is not an integer")
    if not 0 <= reader_id <= _MAX_READER_ID:
        raise MalformedEvent(f"reader_id={_shown(raw)} is out of range")
    return reader_id


def _holdout(event: Mapping[str, Any]) -> bool | None:
    raw = event.get("holdout")
    if raw is None or raw == "":
        return None
    if raw in ("1", 1, True, "true"):
        return True
    if raw in ("0", 0, False, "false"):
        return False
    # A wrong holdout flag would put the event in the wrong arm of the measurement.
    raise MalformedEvent(f"holdout={_shown(raw)} is neither '0' nor '1'")


def _event_type(event: Mapping[str, Any], name: str) -> EventType:
    if name == "bounce":
        kind = event.get("type")
        if kind is None or kind == "":
            return EventType.HARD_BOUNCE
        if not isinstance(kind, str) or kind.lower() not in _BOUNCE_TYPES:
            raise MalformedEvent(f"bounce type={_shown(kind)} is not one of {', '.join(_BOUNCE_TYPES)}")
        return _BOUNCE_TYPES[kind.lower()]
    if name == "open" and event.get("sg_machine_open") in (True, "true", "1", 1):
        return EventType.MACHINE_OPEN
    return SENDGRID_EVENTS[name]


def _reason(event: Mapping[str, Any]) -> str | None:
    # Bounces and drops say why in `reason`; deferrals in `response`.
    for key in ("reason", "response"):
        value = event.get(key)
        if isinstance(value, str) and value:
            return value.replace("\x00", "")
    return None


def _tag(url: str) -> tuple[str | None, str | None]:
    """The (edition, section) of a clicked link; none when urllib cannot split it (`http://[::1`)."""
    try:
        return read_tag(url)
    except ValueError:
        # Still a click by this reader on this message: kept, attributed to no section.
        return None, None


def _check_storable(event: dict) -> None:
    """Raise MalformedEvent unless the raw event can be written to a JSON column as it is."""
    try:
        if orjson is not None:
            # What the store writes with: refuses integers beyond 64 bits, lone surrogates and
            # nesting past 254 levels, any of which would fail the whole batch's transaction.
            orjson.dumps(event)
        else:
            json.dumps(event, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise MalformedEvent(f"holds a value no database column can store: {short(str(exc))}") from None


def parse_event(event: Any) -> NormalisedEvent:
    """One SendGrid event as a NormalisedEvent; raises MalformedEvent naming what is wrong."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"an event must be a JSON object, not {type(event).__name__}")
    name = event.get("event")
    if name is None or name == "":
        raise MalformedEvent("missing event")
    if not isinstance(name, str) or name not in SENDGRID_EVENTS:
        raise MalformedEvent(f"unknown event {_shown(name)}")
    event_id = _text(event, "sg_event_id", required=True, width=_ID_WIDTH)
    email = _text(event, "email", required=True, width=_EMAIL_WIDTH)
    occurred_at = _occurred_at(event)
    event_type = _event_type(event, name)
    edition_id = _text(event, "edition_id", required=False, width=_EDITION_WIDTH)
    section_id = url = None
    if event_type is EventType.CLICK and isinstance(event.get("url"), str):
        url = event["url"]
        tagged_edition, tagged_section = _tag(url)
        # A section id only means something within the edition its link names.
        tagged = {"edition_id": tagged_edition or edition_id, "section_id": tagged_section}
        edition_id = _text(tagged, "edition_id", required=False, width=_EDITION_WIDTH)
        section_id = _text(tagged, "section_id", required=False, width=_SECTION_WIDTH)
    group = _whole_number(event.get("asm_group_id")) if "asm_group_id" in event else None
    _check_storable(event)
    return NormalisedEvent(
        provider_event_id=event_id,
        event_type=event_type,
        email=email.strip().lower(),
        occurred_at=occurred_at,
        reason=_reason(event),
        reader_id=_reader_id(event),
        edition_id=edition_id,
        section_id=section_id,
        variant_id=_text(event, "variant_id", required=False, width=_VARIANT_WIDTH),
        holdout=_holdout(event),
        url=url,
        asm_group_id=group,
        raw=event,
    )


def parse_events(body: bytes | str | list) -> tuple[list[NormalisedEvent], list[Quarantined]]:
    """(events read, malformed events with their reason) of a webhook body or a decoded array.

    Never raises for what is inside the array: each element is read or quarantined. Raises
    InvalidEventBody only when `body` is not a JSON array at all: then nothing was read.
    """
    items = read_array(body) if isinstance(body, bytes | str) else body
    if not isinstance(items, list):
        raise InvalidEventBody(f"expected a JSON array of events, got a JSON {type(items).__name__}")
    texts: list[str] = []

    def kept(index: int, item: Any) -> dict | str:
        text = json_text(item)
        if isinstance(item, dict) and text is not None:
            return item
        if text is not None:
            return text
        # An event that cannot be written back as JSON (nesting deeper than the encoder goes):
        # kept as its text in the body, which is what SendGrid sent.
        if not texts and isinstance(body, bytes | str):
            texts.extend(element_texts(body_text(body)))
        return texts[index] if index < len(texts) else quarantine_text(item)

    events: list[NormalisedEvent] = []
    quarantined: list[Quarantined] = []
    for index, item in enumerate(items):
        try:
            if isinstance(item, UnreadableElement):
                quarantined.append((item.text, item.reason))
                continue
            events.append(parse_event(item))
        except Exception as problem:  # noqa: BLE001 - the per-event boundary (see the module docstring)
            quarantined.append((kept(index, item), reason_of(problem)))
    return events, quarantined


def reason_of(problem: Exception) -> str:
    """The reason an event is quarantined for: a MalformedEvent's message, or any other error's class and message."""
    if isinstance(problem, MalformedEvent):
        return str(problem)
    try:
        message = str(problem)
    except Exception:  # noqa: BLE001 - a message that cannot be shown does not stop the quarantine
        message = ""
    return f"unreadable event ({type(problem).__name__}: {short(message)})"
