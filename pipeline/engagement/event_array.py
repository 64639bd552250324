"""A JSON array of events split into its elements before any is decoded, so each is read alone.

SendGrid's webhook body and an exported array are JSON arrays of events. Decoded whole, one
element the decoder refuses (a 5,000-digit number, NaN, a lone surrogate, nesting deeper than
the decoder goes, bytes that are not UTF-8) fails the whole array, and every good event beside
it. Split first, each element is decoded alone: the odd one is quarantined, the rest are read.

Only the array's structure is checked here: brackets that match, strings that close, one comma
between elements. An array whose structure is broken cannot be split safely (where would the
next element start?), so `split_array` refuses it whole, saying where it broke.
"""

from __future__ import annotations

import re

from pipeline.errors import PipelineError

__all__ = ["ArrayStructureError", "split_array"]

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
