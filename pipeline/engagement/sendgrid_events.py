"""SendGrid Event Webhook JSON, translated to `NormalisedEvent`: the only module that reads it.

SendGrid posts a JSON array of events; each carries `sg_event_id`, `email`, `event` and a Unix
`timestamp`, and our per-personalization `custom_args` (edition_id, reader_id, variant_id,
holdout) come back as top-level keys. An event that cannot be read is never dropped: it is
returned with the reason, for the caller to quarantine, while the rest of the batch goes on.

Values are also checked against the widths of the `engagement_events` columns: PostgreSQL
refuses an over-long value, and one such event would otherwise fail its whole batch on every
one of SendGrid's retries.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from pipeline.engagement.events import EventType, NormalisedEvent
from pipeline.errors import PipelineError
from pipeline.rendering.links import read_tag

try:
    # Installed with Prefect. About twice as fast on a 768 KB batch, and strict: it refuses NaN,
    # infinite numbers and lone surrogates, none of which a database's JSON column can hold.
    import orjson
except ImportError:  # pragma: no cover - the standard library does the same, more slowly
    orjson = None

__all__ = [
    "InvalidEventBody",
    "MalformedEvent",
    "Quarantined",
    "SENDGRID_EVENTS",
    "decode_body",
    "parse_event",
    "parse_events",
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


class InvalidEventBody(PipelineError, ValueError):
    """A webhook body or export that is not a JSON array of events; nothing in it was read."""


class MalformedEvent(PipelineError, ValueError):
    """One event that cannot be read; the message is the reason it is quarantined with."""


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; PostgreSQL's json type would refuse the stored raw event.
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


# The standard library's decoder, made as strict as orjson about numbers.
STRICT_JSON = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)


def decode_body(body: bytes | str) -> Any:
    """The JSON value of `body`; raises InvalidEventBody when it is not JSON."""
    try:
        if orjson is not None:
            return orjson.loads(body)
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        value = STRICT_JSON.decode(text)
        if "\\u" in text:
            # A lone surrogate escape decodes, but no database can store it: refuse it here.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except (ValueError, RecursionError) as exc:  # the JSON decoders' errors are ValueErrors
        raise InvalidEventBody(f"the body is not JSON: {exc}") from None


def _text(event: Mapping[str, Any], key: str, *, required: bool, width: int = 0) -> str | None:
    value = event.get(key)
    if type(value) is str and value and (not width or len(value) <= width) and "\x00" not in value:
        return value  # the usual case, checked first: this runs several times for every event
    if value is None or value == "":
        if required:
            raise MalformedEvent(f"missing {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedEvent(f"{key}={value!r} is not a string")
    value = str(value)
    if "\x00" in value:
        raise MalformedEvent(f"{key} contains a NUL character")
    if width and len(value) > width:
        raise MalformedEvent(f"{key} is {len(value)} characters long; at most {width} are kept")
    return value


def _whole_number(value: Any) -> int | None:
    """`value` as an int if it is one (or a string of digits), else None."""
    if type(value) is int:
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _occurred_at(event: Mapping[str, Any]) -> dt.datetime:
    raw = event.get("timestamp")
    if raw is None or raw == "":
        raise MalformedEvent("missing timestamp")
    seconds = _whole_number(raw)
    if seconds is None:
        raise MalformedEvent(f"timestamp={raw!r} is not a whole number of Unix seconds")
    if not 0 <= seconds <= _MAX_TIMESTAMP:
        raise MalformedEvent(f"timestamp={raw!r} is out of range")
    return _EPOCH + dt.timedelta(seconds=seconds)


def _reader_id(event: Mapping[str, Any]) -> int | None:
    raw = event.get("reader_id")
    if raw is None or raw == "":
        return None
    reader_id = _whole_number(raw)
    if reader_id is None:
        raise MalformedEvent(f"reader_id={raw!r} is not an integer")
    if reader_id > _MAX_READER_ID:
        raise MalformedEvent(f"reader_id={raw!r} is out of range")
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
    raise MalformedEvent(f"holdout={raw!r} is neither '0' nor '1'")


def _event_type(event: Mapping[str, Any], name: str) -> EventType:
    if name == "bounce":
        kind = event.get("type")
        if kind is None or kind == "":
            return EventType.HARD_BOUNCE
        if not isinstance(kind, str) or kind.lower() not in _BOUNCE_TYPES:
            raise MalformedEvent(f"bounce type={kind!r} is not one of {', '.join(_BOUNCE_TYPES)}")
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


def parse_event(event: Any) -> NormalisedEvent:
    """One SendGrid event as a NormalisedEvent; raises MalformedEvent naming what is wrong."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"an event must be a JSON object, not {type(event).__name__}")
    name = event.get("event")
    if name is None or name == "":
        raise MalformedEvent("missing event")
    if not isinstance(name, str) or name not in SENDGRID_EVENTS:
        raise MalformedEvent(f"unknown event {name!r}")
    event_id = _text(event, "sg_event_id", required=True, width=_ID_WIDTH)
    email = _text(event, "email", required=True, width=_EMAIL_WIDTH)
    occurred_at = _occurred_at(event)
    event_type = _event_type(event, name)
    edition_id = _text(event, "edition_id", required=False, width=_EDITION_WIDTH)
    section_id = url = None
    if event_type is EventType.CLICK and isinstance(event.get("url"), str):
        url = event["url"]
        tagged_edition, tagged_section = read_tag(url)
        # A section id only means something within the edition its link names.
        tagged = {"edition_id": tagged_edition or edition_id, "section_id": tagged_section}
        edition_id = _text(tagged, "edition_id", required=False, width=_EDITION_WIDTH)
        section_id = _text(tagged, "section_id", required=False, width=_SECTION_WIDTH)
    group = _whole_number(event.get("asm_group_id")) if "asm_group_id" in event else None
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

    Raises InvalidEventBody when `body` is not JSON or not an array: then nothing was read.
    """
    items = decode_body(body) if isinstance(body, bytes | str) else body
    if not isinstance(items, list):
        raise InvalidEventBody(f"expected a JSON array of events, got a JSON {type(items).__name__}")
    events: list[NormalisedEvent] = []
    quarantined: list[Quarantined] = []
    for item in items:
        try:
            events.append(parse_event(item))
        except MalformedEvent as problem:
            raw = item if isinstance(item, dict) else json.dumps(item)
            quarantined.append((raw, str(problem)))
    return events, quarantined
