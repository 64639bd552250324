"""Checking a section's fields against its kind's schema, every problem at its line.

Each declared type has one checker, so a kind added as a file pair is validated like the
shipped ones: `FILE:LINE: field=value: reason`, with did-you-mean for unknown fields.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.content.kinds import COMMON_FIELDS, FieldSpec, SectionKind, did_you_mean
from pipeline.content.wording import inert_text
from pipeline.content.yamlsource import LinedYaml
from pipeline.errors import InputProblem

__all__ = ["FieldChecker", "Image", "check_kind_fields", "is_web_url", "is_time_zone", "control_character"]

# Control characters other than tab and line breaks: invisible to the editor, and MRML refuses
# the whole document over one of them ("unable to parse next template"), naming nothing.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_character(text: str) -> str | None:
    """The first control character (not tab or a line break) in `text`, written as U+XXXX, or None."""
    found = _CONTROL.search(text)
    return f"U+{ord(found.group(0)):04X}" if found else None


@dataclass(frozen=True)
class Image:
    """An image with its alt text (required: readers with images off or screen readers see it)."""

    src: str
    alt: str


def is_time_zone(name: object) -> bool:
    """Whether `name` is an IANA time zone name (never a path: zoneinfo refuses those)."""
    if not isinstance(name, str) or not name.strip():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, or a name too long
        return False
    return True


def is_web_url(value: object) -> bool:
    """Whether `value` is an http(s) URL with a dotted host name and no spaces."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(host) and "." in (host or "")


class FieldChecker:
    """Collects every problem of one YAML file, each at the line of the value concerned."""

    def __init__(self, path: Path, source: LinedYaml):
        self.path = path
        self.source = source
        self.problems: list[InputProblem] = []

    def problem(self, where: tuple, field_name: str, value: Any, reason: str, *, line_offset: int = 0) -> None:
        """Record a problem at the line of `where` (plus `line_offset` lines inside a multi-line value)."""
        self.problems.append(InputProblem(str(self.path), self.source.line(*where) + line_offset, field_name,
                                          value, reason))

    def text(self, raw: dict, where: tuple, key: str, label: str, *, required: bool = True,
             max_chars: int | None = None) -> str:
        """A text value (numbers are read as text); '' when absent or wrong."""
        value = raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.problem((*where, key), label, "", "is required")
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.problem((*where, key), label, value, "must be text")
            return ""
        control = control_character(str(value))
        if control:
            self.problem((*where, key), label, str(value), f"holds the control character {control}; remove it")
            return ""
        if max_chars is not None and len(str(value)) > max_chars:
            self.problem((*where, key), label, str(value), f"is {len(str(value))} characters; at most {max_chars}")
            return ""
        # The editor's words are shown as written and never read as a merge tag (`%%rf:...%%`).
        return inert_text(str(value))

    def url(self, raw: dict, where: tuple, key: str, label: str, *, required: bool = True) -> str:
        """An http(s) URL; '' when absent or wrong."""
        value = raw.get(key)
        if value is None:
            if required:
                self.problem((*where, key), label, "", "is required")
            return ""
        if not is_web_url(value):
            self.problem((*where, key), label, value, "is not an http(s) URL with a host name")
            return ""
        if "%%" in value:
            self.problem((*where, key), label, value, "'%%' is not valid in a URL (it would read as a merge tag); "
                                                       "write a literal % as %25")
            return ""
        return value

    def markdown(self, raw: dict, where: tuple, key: str, label: str, *, required: bool = False,
                 max_chars: int | None = None) -> str:
        """Markdown text: images need alt text and an http(s) source, reader links must exist."""
        from pipeline.rendering.markdown import markdown_problems  # rendering imports content: import late

        text = self.text(raw, where, key, label, required=required, max_chars=max_chars)
        if text:
            # A block scalar (`body: |`) starts on the line after its key; a one-line value on it.
            first = 1 if "\n" in text.strip() else 0
            for line, value, reason in markdown_problems(text):
                self.problem((*where, key), label, value, reason, line_offset=first + line)
        return text

    def image(self, raw: dict, where: tuple, key: str, label: str, *, required: bool) -> Image | None:
        """An image {src, alt}; None when absent or wrong."""
        image_raw = raw.get(key)
        if image_raw is None:
            if required:
                self.problem((*where, key), label, "", "an image with alt text is required: {src, alt}")
            return None
        if not isinstance(image_raw, dict):
            self.problem((*where, key), label, image_raw, "expected a mapping with src and alt")
            return None
        for extra in sorted(set(image_raw) - {"src", "alt"}, key=str):
            self.problem((*where, key, extra), f"{label}.{extra}", image_raw[extra],
                         f"unknown field{did_you_mean(extra, ['src', 'alt'])}; images take src, alt")
        src = self.url(image_raw, (*where, key), "src", f"{label}.src")
        alt = image_raw.get("alt")
        if not isinstance(alt, str) or not alt.strip():
            self.problem((*where, key, "alt"), f"{label}.alt", alt if alt is not None else "",
                         "alt text is required: describe the image for readers who cannot see it")
            return None
        return Image(src=src, alt=inert_text(alt.strip())) if src else None

    def date(self, raw: dict, where: tuple, key: str, label: str, *, required: bool) -> str:
        """An ISO date or date-time, normalised; '' when absent or wrong."""
        value = raw.get(key)
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        if isinstance(value, str) and value.strip():
            try:
                return dt.datetime.fromisoformat(value).isoformat() if len(value) > 10 else dt.date.fromisoformat(value).isoformat()
            except ValueError:
                self.problem((*where, key), label, value, "not an ISO date or date-time")
                return ""
        if value is not None and value != "":
            self.problem((*where, key), label, value, "not an ISO date or date-time")
        elif required:
            self.problem((*where, key), label, "", "is required (ISO date or date-time)")
        return ""

    def time_zone(self, raw: dict, where: tuple, key: str, label: str, *, required: bool) -> str:
        """An IANA time zone name such as Europe/London; '' when absent or unknown."""
        value = raw.get(key)
        if value is None or value == "":
            if required:
                self.problem((*where, key), label, "", "is required (an IANA time zone such as Europe/London)")
            return ""
        if not is_time_zone(value):
            self.problem((*where, key), label, value, "unknown time zone; use an IANA name such as Europe/London")
            return ""
        return str(value)

    def flag(self, raw: dict, where: tuple, key: str, label: str, default: bool = False) -> bool:
        """A true/false value."""
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.problem((*where, key), label, value, "must be true or false")
            return default
        return value

    def number(self, raw: dict, where: tuple, spec: FieldSpec, label: str) -> float | int | None:
        """A number within the spec's bounds."""
        value = raw.get(spec.name, spec.default)
        if value is None:
            if spec.required:
                self.problem((*where, spec.name), label, "", "is required")
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or (spec.minimum is not None and value < spec.minimum) \
                or (spec.maximum is not None and value > spec.maximum):
            bounds = f" from {spec.minimum} to {spec.maximum}" if spec.minimum is not None and spec.maximum is not None else ""
            self.problem((*where, spec.name), label, value, f"must be a number{bounds}")
            return None
        return value

    def unknown_keys(self, raw: dict, where: tuple, label: str, known: tuple[str, ...] | list[str], what: str) -> None:
        """Report every key of `raw` that is not in `known`, with a did-you-mean hint."""
        for key in sorted(set(raw) - set(known), key=str):
            self.problem((*where, key), f"{label}.{key}", raw[key],
                         f"unknown field{did_you_mean(key, list(known))}; {what} take {', '.join(sorted(known))}")


def _value(c: FieldChecker, spec: FieldSpec, raw: dict, where: tuple, label: str) -> Any:
    kind = spec.type
    if kind == "text":
        value = c.text(raw, where, spec.name, label, required=spec.required, max_chars=spec.max_chars)
        return value or (inert_text(str(spec.default)) if spec.default is not None else "")
    if kind == "markdown":
        return c.markdown(raw, where, spec.name, label, required=spec.required, max_chars=spec.max_chars)
    if kind == "url":
        return c.url(raw, where, spec.name, label, required=spec.required)
    if kind == "image":
        return c.image(raw, where, spec.name, label, required=spec.required)
    if kind == "date":
        return c.date(raw, where, spec.name, label, required=spec.required)
    if kind == "timezone":
        return c.time_zone(raw, where, spec.name, label, required=spec.required)
    if kind == "bool":
        return c.flag(raw, where, spec.name, label, bool(spec.default))
    if kind == "number":
        return c.number(raw, where, spec, label)
    if kind == "group":
        return _group(c, spec, raw, where, label)
    return _list(c, spec, raw, where, label)


def _group(c: FieldChecker, spec: FieldSpec, raw: dict, where: tuple, label: str) -> dict | None:
    value = raw.get(spec.name)
    if value is None:
        if spec.required:
            names = ", ".join(f.name + ("" if f.required else "?") for f in spec.fields)
            c.problem((*where, spec.name), label, "", f"is required: {spec.name}: {{{names}}}")
        return None
    if not isinstance(value, dict):
        c.problem((*where, spec.name), label, value, f"expected a mapping of {', '.join(f.name for f in spec.fields)}")
        return None
    return _fields_of(c, spec.fields, value, (*where, spec.name), label, f"{spec.name} fields")


def _list(c: FieldChecker, spec: FieldSpec, raw: dict, where: tuple, label: str) -> tuple[dict, ...]:
    value = raw.get(spec.name)
    if value is None or value == []:
        if spec.required:
            c.problem((*where, spec.name), label, "", f"needs a list of at least {max(spec.min_items, 1)}"
                                                      f" ({', '.join(f.name for f in spec.fields)})")
        return ()
    if not isinstance(value, list):
        c.problem((*where, spec.name), label, value, "expected a list")
        return ()
    if len(value) < spec.min_items or (spec.max_items is not None and len(value) > spec.max_items):
        wanted = (f"exactly {spec.min_items}" if spec.min_items == spec.max_items
                  else f"{spec.min_items} to {spec.max_items if spec.max_items is not None else 'any number'}")
        c.problem((*where, spec.name), label, f"{len(value)} items", f"takes {wanted} items")
    items = []
    for index, item in enumerate(value):
        item_where, item_label = (*where, spec.name, index), f"{label}[{index}]"
        if not isinstance(item, dict):
            c.problem(item_where, item_label, item, f"each item is a mapping of {', '.join(f.name for f in spec.fields)}")
            continue
        items.append(_fields_of(c, spec.fields, item, item_where, item_label, "items"))
    return tuple(items)


def _fields_of(c: FieldChecker, specs: tuple[FieldSpec, ...], raw: dict, where: tuple, label: str,
               what: str) -> dict:
    c.unknown_keys(raw, where, label, [f.name for f in specs], what)
    return {spec.name: _value(c, spec, raw, where, f"{label}.{spec.name}") for spec in specs}


def check_kind_fields(c: FieldChecker, kind: SectionKind, raw: dict, where: tuple, label: str) -> dict[str, Any]:
    """The declared fields of a section of `kind`, checked; unknown fields reported with a hint."""
    c.unknown_keys(raw, where, label, kind.field_names, f"{kind.name} sections")
    return {spec.name: _value(c, spec, raw, where, f"{label}.{spec.name}") for spec in kind.fields
            if spec.name not in COMMON_FIELDS}
