"""Loading SendGrid event exports from files: a JSON array, or JSON Lines (one event, or one array, a line).

A file goes through the same reading and deduplication as the webhook, so loading an export
that overlaps what the webhook already stored adds only what is missing, and loading the same
file twice adds nothing. Events that cannot be read are quarantined with the file and line in
the reason, and the rest of the file is loaded. Events are stored a chunk at a time, each
chunk in its own transaction: an interrupted load is finished by running it again.

A file that is not an event export is refused whole, before anything is stored: a CSV, an
audience file or a log would otherwise be "loaded" as hundreds of thousands of quarantined
events. The rule: an event is a JSON object with an `event` or `sg_event_id` key (a malformed
event still has one: it is quarantined, not counted against the file); the file is refused when
its first event is not one, or when more than half of its events are not (a line that is not
JSON counts as one). So a real export with a few bad lines loads, and a file that is mostly
something else does not. JSON Lines files are read twice for this (decoding only, the first
time); a JSON array is read whole once, as before.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.engagement.event_array import (
    ArrayStructureError,
    InvalidEventBody,
    UnreadableElement,
    decode_body,
    decode_element,
    json_text,
    quarantine_text,
    split_array,
)
from pipeline.engagement.events import NormalisedEvent
from pipeline.engagement.sendgrid_events import Quarantined, parse_event, reason_of
from pipeline.engagement.store import StoreReport, store_events
from pipeline.errors import InputProblem, PipelineError
from pipeline.store.database import Database

__all__ = ["IngestReport", "InvalidEventFile", "ingest_file", "SOURCE"]

SOURCE = "sendgrid-file"
_CHUNK = 5_000  # events per transaction: bounded memory, and a large load still commits rarely
_PROBLEMS_KEPT = 100  # problems listed in the report; the rest are counted (all are quarantined)
_EVENT_KEYS = ("event", "sg_event_id")  # every SendGrid event has both; one is enough to look like one

# One element of a file: the line it starts on, its value (or why it has none), its text when known.
_Item = tuple[int, Any, str | None]


class InvalidEventFile(PipelineError, ValueError):
    """An event file that cannot be read at all (missing, or a JSON array that does not parse)."""


@dataclass
class IngestReport:
    """What loading one file did."""

    file: Path
    events: int = 0  # events read, good and malformed
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    unattributed: int = 0
    problems: list[InputProblem] = field(default_factory=list)

    def add(self, report: StoreReport) -> None:
        """Count one stored chunk."""
        self.stored += report.stored
        self.duplicates += report.duplicates
        self.quarantined += report.quarantined
        self.unattributed += report.unattributed


def _open(path: Path) -> IO[bytes]:
    # Exports are often kept compressed; gzip is recognised by its magic number, not its name.
    with path.open("rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")


def _text(data: bytes) -> str:
    # Bytes that are not UTF-8 are kept as surrogates: they spoil the event they are in, alone.
    return data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")


def _is_json_array(path: Path) -> bool:
    """True for a JSON array spread over lines; False for JSON Lines (whose lines may be arrays too)."""
    with _open(path) as file:
        for line in file:
            text = _text(line)
            if not text.strip():
                continue
            if not text.lstrip().startswith("["):
                return False
            try:
                split_array(text)
            except ArrayStructureError as exc:
                return exc.unclosed  # an array that goes on past its first line
            return False  # a whole array on one line: a webhook body per line
    return False


def _array_items(path: Path) -> list[_Item]:
    """Each element of a JSON array file with the line it starts on; the array's structure is checked first."""
    with _open(path) as file:
        text = _text(file.read())
    try:
        spans, end = split_array(text)
    except ArrayStructureError as exc:
        raise _broken(path, text, exc.position, f"not a JSON array: {exc}") from None
    if text[end:].strip():
        raise _broken(path, text, end, "text after the closing ']'")
    items: list[_Item] = []
    line, counted = 1, 0
    for start, stop in spans:
        line, counted = line + text.count("\n", counted, start), start
        element = text[start:stop]
        items.append((line, decode_element(element), element))
    return items


def _broken(path: Path, text: str, position: int, what: str) -> InvalidEventFile:
    return InvalidEventFile(f"{path}:{text.count(chr(10), 0, position) + 1}: {what}; nothing was loaded")


def _line_items(path: Path) -> Iterator[_Item]:
    """Each event of a JSON Lines file with its line; an unreadable line comes as an UnreadableElement."""
    with _open(path) as file:
        for number, raw_line in enumerate(file, start=1):
            if not raw_line.strip():
                continue
            try:
                item = decode_body(raw_line.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw_line)
            except InvalidEventBody as exc:
                yield from _unreadable_line(number, _text(raw_line).rstrip("\r\n"), exc)
                continue
            # A line may hold one event or a whole webhook body (an array of events).
            if isinstance(item, list):
                for element in item:
                    yield number, element, None
            else:
                yield number, item, _text(raw_line).strip()


def _unreadable_line(number: int, text: str, problem: InvalidEventBody) -> Iterator[_Item]:
    """A line the decoder refused whole: a webhook body is read element by element, anything else is one unreadable event."""
    if text.lstrip().startswith("["):
        try:
            spans, end = split_array(text)
            if not text[end:].strip():
                for start, stop in spans:
                    yield number, decode_element(text[start:stop]), text[start:stop]
                return
        except ArrayStructureError:
            pass
    yield number, UnreadableElement(text, f"unreadable line: {problem}"), text


def _looks_like_event(item: Any) -> bool:
    return isinstance(item, dict) and any(key in item for key in _EVENT_KEYS)


def _refusal(items: Iterator[_Item]) -> str | None:
    """Why a file whose elements are `items` is not an event export (see the module docstring), or None."""
    total = bad = 0
    for line, item, _ in items:
        total += 1
        if _looks_like_event(item):
            continue
        bad += 1
        if total == 1:  # a CSV or a log is refused at its first line, without reading the rest
            shown = item.text if isinstance(item, UnreadableElement) else quarantine_text(item)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return f"line {line} is not a SendGrid event (a JSON object with an 'event' key): {_printable(shown)!r}"
    if bad * 2 > total:
        return f"{bad:,} of its {total:,} events are not SendGrid events (more than half)"
    return None


def ingest_file(db: Database, path: Path | str, *, source: str = SOURCE) -> IngestReport:
    """Load the SendGrid events in `path`, storing each event once; returns what was done.

    Raises InvalidEventFile, loading nothing, when the file is missing or unreadable, is a JSON
    array whose structure is broken, or is not an event export (the rule is in the module
    docstring). An event that cannot be read is quarantined instead, with its file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidEventFile(f"{path}: no such file")
    try:
        if _is_json_array(path):
            array = _array_items(path)
            refusal, items = _refusal(iter(array)), iter(array)
        else:
            refusal, items = _refusal(_line_items(path)), _line_items(path)
    except OSError as exc:  # unreadable, or a gzip file that is cut short or corrupt
        raise InvalidEventFile(f"{path}: cannot be read ({type(exc).__name__}: {exc}); nothing was loaded") from None
    if refusal:
        raise InvalidEventFile(f"{path}: not a SendGrid event export: {refusal}; nothing was loaded")
    report = IngestReport(file=path)
    events: list[NormalisedEvent] = []
    quarantined: list[Quarantined] = []

    def flush() -> None:
        if events or quarantined:
            report.add(store_events(db, events, quarantined, source=source))
            events.clear()
            quarantined.clear()

    for line, item, text in items:
        report.events += 1
        if isinstance(item, UnreadableElement):
            raw, reason = item.text, item.reason
        else:
            try:
                events.append(parse_event(item))
                raw = None
            except Exception as problem:  # noqa: BLE001 - the per-event boundary, as in parse_events
                raw, reason = _kept(item, text), reason_of(problem)
        if raw is not None:
            quarantined.append((raw, f"{path}:{line}: {reason}"))
            if len(report.problems) < _PROBLEMS_KEPT:
                value = raw.get("sg_event_id", "") if isinstance(raw, dict) else raw
                value = value if isinstance(value, str) else quarantine_text(value)
                report.problems.append(InputProblem(str(path), line, "event", _printable(value[:200]), _printable(reason)))
        if len(events) + len(quarantined) >= _CHUNK:
            flush()
    flush()
    return report


def _printable(text: str) -> str:
    """`text` with bytes that were not UTF-8 (kept as surrogates) written as escapes, so a terminal can show it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _kept(item: Any, text: str | None) -> dict | str:
    """What is kept in quarantine: the event as decoded, or its text in the file when JSON cannot write it back."""
    written = json_text(item)
    if written is None:
        return text if text is not None else quarantine_text(item)
    return item if isinstance(item, dict) else written
