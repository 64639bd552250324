"""Merge fields: the per-reader values of a compiled newsletter, and their safe substitution.

A variant (the same sections in the same order) is compiled once with merge tags such as
`%%rf:first_name%%` in it. Each reader's copy is made by one pass over the tags, so a value
can never introduce another tag; values are escaped for HTML, and `%` in them is neutralised
so that a provider doing its own substitution (SendGrid) cannot be tricked either.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from markupsafe import Markup

from pipeline.content.wording import inert_text

__all__ = [
    "MergeTemplate",
    "merge_tag",
    "html_value",
    "text_value",
    "TAG_PATTERN",
    "MAX_FIELD_CHARS",
    "ReaderTags",
]

TAG_PATTERN = re.compile(r"%%rf:([a-z_]+(?::[a-z0-9-]+)?)%%")
MAX_FIELD_CHARS = 200  # longer reader values are cut, which also bounds a message's size


def merge_tag(name: str) -> str:
    """The merge tag for field `name` (for a reason: `why:<section id>`)."""
    return f"%%rf:{name}%%"


_HTML_SPECIAL = re.compile(r"[&<>\"'%\r\n]")
_TEXT_SPECIAL = re.compile(r"[%\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def html_value(value: str) -> str:
    """`value` ready to stand in HTML text or a quoted attribute."""
    value = str(value)[:MAX_FIELD_CHARS]
    if not _HTML_SPECIAL.search(value):  # the common case: nothing to escape
        return value
    return html.escape(value, quote=True).replace("%", "&#37;").replace("\r", " ").replace("\n", " ")


def text_value(value: str) -> str:
    """`value` ready for the plain-text part: one line, and no `%%` that could read as a tag."""
    value = str(value)[:MAX_FIELD_CHARS]
    if not _TEXT_SPECIAL.search(value):
        return value
    return inert_text(" ".join(value.splitlines()))


class ReaderTags:
    """What templates see as `reader`: each field renders as its merge tag."""

    def __getattr__(self, name: str) -> Markup:
        if name.startswith("_"):
            raise AttributeError(name)
        return Markup(merge_tag(name))


@dataclass(frozen=True)
class MergeTemplate:
    """A text with merge tags, pre-split so that each copy is a single join."""

    parts: tuple[str, ...]  # literal, tag, literal, tag, ..., literal

    @classmethod
    def parse(cls, text: str) -> MergeTemplate:
        """Split `text` at its merge tags."""
        return cls(tuple(TAG_PATTERN.split(text)))

    @property
    def tags(self) -> tuple[str, ...]:
        """The tag names, in order of appearance."""
        return self.parts[1::2]

    @property
    def literal_size(self) -> int:
        """Bytes of the text outside merge tags (UTF-8)."""
        return sum(len(p.encode()) for p in self.parts[0::2])

    def merge(self, values: dict[str, str]) -> str:
        """The text with every tag replaced by its (already escaped) value; unknown tags become ''."""
        parts = list(self.parts)
        get = values.get
        for i in range(1, len(parts), 2):
            parts[i] = get(parts[i], "")
        return "".join(parts)
