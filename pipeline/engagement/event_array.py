"""The JSON of an array of events: decoded whole when it can be, else element by element.

SendGrid's webhook body and an exported array are JSON arrays of events. Decoded whole, one
element the decoder refuses (a 5,000-digit number, NaN, a lone surrogate, nesting deeper than
the decoder goes, bytes that are not UTF-8) fails the whole array, and every good event beside
it. Split first, each element is decoded alone: the odd one is quarantined, the rest are read.

Only the array's structure is checked here: brackets that match, strings that close, one comma
between elements. An array whose structure is broken cannot be split safely (where would the
next element start?), so `split_array` refuses it whole, saying where it broke.

`read_array` decodes a body whole first (orjson, fast: the usual case) and falls back to the
split only when that fails. What an element decodes to is not checked here: that is
`sendgrid_events`'s work.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError

try:
    # Installed with Prefect. About twice as fast on a 768 KB batch, and strict: it refuses NaN,
    # infinite numbers and lone surrogates, none of which a database's JSON column can hold.
    import orjson
except ImportError:  # pragma: no cover - the standard library does the same, more slowly
    orjson = None

__all__ = ["ArrayStructureError", "InvalidEventBody", "STRICT_JSON", "UnreadableElement", "body_text", "decode_body",
           "decode_element", "element_texts", "json_text", "quarantine_text", "read_array", "short", "split_array"]

# A closed string (escapes included, the unrolled form so that long strings cost no backtracking),
# a quote that never closes, or a bracket or comma. Numbers, literals and spaces between them are
# skipped: they belong to whichever element they sit in.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.S)
_CLOSING = {"]": "[", "}": "{"}
_SPACE = " \t\r\n"


class ArrayStructureError(PipelineError, ValueError):
    """Text that is not a JSON array: the message says what broke and `position` where."""

    def __init__(self, position: int, reason: str, *, unclosed: bool = False):
        super().__init__(reason)
        self.position = position
        # True when the text ended inside the array: it may go on in text not given (the next lines).
        self.unclosed = unclosed


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in _SPACE:
        position += 1
    return position


def split_array(text: str, start: int = 0) -> tuple[list[tuple[int, int]], int]:
    """(start, end) of each element of the JSON array beginning at `text[start:]`, and where the array ends.

    Spaces around an element are not part of it. Raises ArrayStructureError when the text from
    `start` is not an array whose brackets match, whose strings close and whose elements are
    separated by single commas; what follows the array is the caller's to check.
    """
    position = _skip_space(text, start)
    if not text.startswith("[", position):
        found = repr(text[position:position + 10]) if position < len(text) else "nothing"
        raise ArrayStructureError(position, f"expected '[' to open an array of events, found {found}")
    spans: list[tuple[int, int]] = []
    stack = ["["]
    element_start = position + 1
    for token in _TOKENS.finditer(text, position + 1):
        symbol = token.group()
        if symbol == '"':
            raise ArrayStructureError(token.start(), "a string is never closed", unclosed=True)
        if symbol[0] == '"':
            continue
        if symbol in "[{":
            stack.append(symbol)
            continue
        if symbol == ",":
            if len(stack) == 1:
                spans.append(_element(text, element_start, token.start()))
                element_start = token.end()
            continue
        if stack.pop() != _CLOSING[symbol]:
            raise ArrayStructureError(token.start(), f"'{symbol}' does not close the bracket it meets")
        if not stack:
            last = _skip_space(text, element_start)
            # `[]` is an empty batch; any other array has an element before its closing bracket.
            if spans or last < token.start():
                spans.append(_element(text, element_start, token.start()))
            return spans, token.end()
    raise ArrayStructureError(len(text), "the array is never closed", unclosed=True)


def _element(text: str, start: int, end: int) -> tuple[int, int]:
    first = _skip_space(text, start)
    last = end
    while last > first and text[last - 1] in _SPACE:
        last -= 1
    if first == last:
        raise ArrayStructureError(first, "an empty element (two commas, or a comma before ']')")
    return first, last


class InvalidEventBody(PipelineError, ValueError):
    """A webhook body or export that is not a JSON array of events; nothing in it was read."""


@dataclass(frozen=True)
class UnreadableElement:
    """An element of an event array that is not JSON a database can hold: its text and why."""

    text: str
    reason: str


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


def decode_element(text: str) -> Any:
    """The JSON value of one element's text, or an UnreadableElement saying why it has none."""
    try:
        if orjson is not None:
            return orjson.loads(text)
        text.encode("utf-8")  # bytes that were not UTF-8 come as surrogates (see read_array)
        value = STRICT_JSON.decode(text)
        if "\\u" in text:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except (ValueError, RecursionError) as exc:
        return UnreadableElement(text, f"not JSON a database can hold: {short(str(exc))}")


def body_text(body: bytes | str) -> str:
    """`body` as text, without a byte-order mark."""
    # Bytes that are not UTF-8 are kept as surrogates: they fail the element they are in, alone.
    text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
    return text.removeprefix("\ufeff")


def element_texts(text: str) -> list[str]:
    """The text of each element of the array `text`; raises InvalidEventBody when it is not one."""
    try:
        spans, end = split_array(text)
    except ArrayStructureError as exc:
        raise InvalidEventBody(f"the body is not a JSON array of events: {exc} (character {exc.position})") from None
    if text[end:].strip(" \t\r\n"):
        raise InvalidEventBody(f"the body is not a JSON array of events: text after its closing ']' "
                               f"(character {end})")
    return [text[start:stop] for start, stop in spans]


def read_array(body: bytes | str) -> list[Any]:
    """The elements of the JSON array `body`; an element that cannot be decoded is an UnreadableElement.

    Decoded whole first (the usual case, fast); when that fails, split and decoded element by
    element. Raises InvalidEventBody only when `body` is not an array at all.
    """
    try:
        items = decode_body(body)
    except InvalidEventBody:
        return [decode_element(text) for text in element_texts(body_text(body))]
    if not isinstance(items, list):
        raise InvalidEventBody(f"expected a JSON array of events, got a JSON {type(items).__name__}")
    return items


def short(text: str, limit: int = 200) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def json_text(item: Any) -> str | None:
    """`item` as JSON text, or None when no encoder can write it."""
    if orjson is not None:
        try:
            return orjson.dumps(item).decode()
        except TypeError:
            pass  # beyond orjson (an integer past 64 bits, nesting past 254 levels): the standard library
    try:
        return json.dumps(item, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        return None


def quarantine_text(item: Any) -> str:
    """`item` as the text kept in quarantine: the string itself, or its JSON, or at worst its type."""
    if isinstance(item, str):
        return item
    text = json_text(item)
    return text if text is not None else f"<a {type(item).__name__} that cannot be written as JSON>"
