"""Loading SendGrid event exports from files: a JSON array, or JSON Lines (one event, or one array, a line).

A file goes through the same reading and deduplication as the webhook, so loading an export
that overlaps what the webhook already stored adds only what is missing, and loading the same
file twice adds nothing. Lines that cannot be read are quarantined with the file and line in
the reason, and the rest of the file is loaded. Events are stored a chunk at a time, each
chunk in its own transaction: an interrupted load is finished by running it again.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline.engagement.events import NormalisedEvent
from pipeline.engagement.sendgrid_events import (
    InvalidEventBody,
    MalformedEvent,
    Quarantined,
    STRICT_JSON,
    decode_body,
    parse_event,
)
from pipeline.engagement.store import StoreReport, store_events
from pipeline.errors import InputProblem, PipelineError
from pipeline.store.database import Database

__all__ = ["IngestReport", "InvalidEventFile", "ingest_file", "SOURCE"]

SOURCE = "sendgrid-file"
_CHUNK = 5_000  # events per transaction: bounded memory, and a large load still commits rarely
_PROBLEMS_KEPT = 100  # problems listed in the report; the rest are counted (all are quarantined)


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


def _is_json_array(path: Path) -> bool:
    """True for a JSON array spread over lines; False for JSON Lines (whose lines may be arrays too)."""
    with _open(path) as file:
        for line in file:
            line = line.lstrip(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            if not line.lstrip().startswith(b"["):
                return False
            try:
                decode_body(line)
            except InvalidEventBody:
                return True  # an array that goes on past its first line
            return False  # a whole array on one line: a webhook body per line
    return False


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _array_items(path: Path) -> Iterator[tuple[int, object, str | None]]:
    """Each element of a JSON array file with the line it starts on; the whole file is checked first."""
    with _open(path) as file:
        data = file.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidEventFile(f"{path}: not UTF-8 ({exc}); nothing was loaded") from None

    def broken(position: int, what: str) -> InvalidEventFile:
        return InvalidEventFile(f"{path}:{text.count(chr(10), 0, position) + 1}: {what}; nothing was loaded")

    # Element by element, so that a malformed event can be named by its line; all of them are
    # decoded before any is stored, because an array that does not parse is loaded not at all.
    items: list[tuple[int, object, str | None]] = []
    position = _skip_space(text, text.index("[") + 1)
    line, counted = 1, 0
    if not text.startswith("]", position):
        while True:
            try:
                item, after = STRICT_JSON.raw_decode(text, position)
            except (ValueError, RecursionError) as exc:
                raise broken(position, f"not JSON: {exc}") from None
            line, counted = line + text.count("\n", counted, position), position
            items.append((line, item, None))
            position = _skip_space(text, after)
            if text.startswith(",", position):
                position = _skip_space(text, position + 1)
            elif text.startswith("]", position):
                break
            else:
                raise broken(position, "expected ',' or ']' after an event")
    if text[position + 1:].strip():
        raise broken(position, "text after the closing ']'")
    yield from items


def _line_items(path: Path) -> Iterator[tuple[int, object, str | None]]:
    """Each event of a JSON Lines file with its line; unreadable lines come with the reason."""
    with _open(path) as file:
        for number, line in enumerate(file, start=1):
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            try:
                item = decode_body(line)
            except InvalidEventBody as exc:
                yield number, line.decode("utf-8", "replace").rstrip("\r\n"), str(exc)
                continue
            # A line may hold one event or a whole webhook body (an array of events).
            for element in item if isinstance(item, list) else [item]:
                yield number, element, None


def ingest_file(db: Database, path: Path | str, *, source: str = SOURCE) -> IngestReport:
    """Load the SendGrid events in `path`, storing each event once; returns what was done.

    Raises InvalidEventFile (loading nothing) when the file is missing or is a JSON array
    that does not parse; a bad line of a JSON Lines file is quarantined instead.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidEventFile(f"{path}: no such file")
    report = IngestReport(file=path)
    events: list[NormalisedEvent] = []
    quarantined: list[Quarantined] = []

    def flush() -> None:
        if events or quarantined:
            report.add(store_events(db, events, quarantined, source=source))
            events.clear()
            quarantined.clear()

    items = _array_items(path) if _is_json_array(path) else _line_items(path)
    for line, item, unreadable in items:
        report.events += 1
        try:
            if unreadable is not None:
                raise MalformedEvent(f"unreadable line: {unreadable}")
            events.append(parse_event(item))
        except MalformedEvent as problem:
            raw = item if isinstance(item, dict | str) else json.dumps(item)
            quarantined.append((raw, f"{path}:{line}: {problem}"))
            if len(report.problems) < _PROBLEMS_KEPT:
                value = raw.get("sg_event_id", "") if isinstance(raw, dict) else raw
                report.problems.append(InputProblem(str(path), line, "event", value, str(problem)))
        if len(events) + len(quarantined) >= _CHUNK:
            flush()
    flush()
    return report
