"""The rows of an audience file (CSV or JSONL), read a line at a time with their numbers and text.

A million-row file is never held whole: rows come from the open file as csv or json reads
them, each with the line it starts on and its text as written (for a rejected-rows file), and
`position` tells how far into the file reading has got (for a progress bar).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pipeline.audience.mailchimp import MAILCHIMP_COLUMNS, is_mailchimp_export

__all__ = ["AudienceFileRows", "CsvUnreadable", "HeaderProblem", "first_undecodable_line", "is_blank"]

_CHUNK = 1 << 16


class CsvUnreadable(Exception):
    """csv cannot read the file past `line` (a quote left open, a cell over csv's limit)."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


class HeaderProblem(Exception):
    """The CSV header names unknown or repeated columns, or no email column."""

    def __init__(self, unknown: list[str], *, missing_email: bool = False, repeated: list[str] | None = None):
        super().__init__("header")
        self.unknown = unknown
        self.missing_email = missing_email
        self.repeated = repeated or []


class _LineTap:
    """The file's lines for csv, keeping those of the row being read: its text as written."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.taken: list[str] = []

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = next(self.file)
        self.taken.append(line)
        return line

    def take(self) -> str:
        """The lines read since the last take, without their line ends."""
        taken = self.taken
        if len(taken) == 1:  # most rows: one line
            text = taken[0].removesuffix("\n").removesuffix("\r")
        else:
            text = "\n".join(line.removesuffix("\n").removesuffix("\r") for line in taken)
        taken.clear()
        return text


def is_blank(path: Path) -> bool:
    """True when the file holds nothing but white space (read until the first character that is not)."""
    with path.open(encoding="utf-8-sig") as file:
        while chunk := file.read(_CHUNK):
            if chunk.strip():
                return False
    return True


def first_undecodable_line(path: Path) -> int:
    """The line of the first byte that is not UTF-8 (1 if none is found)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as file:
        while True:
            chunk = file.read(_CHUNK)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return line + (pending + chunk)[:exc.start].count(b"\n")
            if not chunk:
                return line
            line += chunk.count(b"\n")


class AudienceFileRows:
    """An open audience file's rows: `(line, values or why the line is unreadable, text as written)`."""

    def __init__(self, path: Path, *, jsonl: bool, columns: tuple[str, ...]) -> None:
        self.path = path
        self.jsonl = jsonl
        self.columns = columns
        self.size = path.stat().st_size
        self.header = ""  # a CSV's first line as written, for its rejected-rows file
        self.headers: list[str] = []
        self._reader: csv.DictReader | None = None
        self._tap: _LineTap | None = None
        self._binary = path.open("rb")
        # Line ends read as \n, as read_text gives them (a cell's \r\n is kept as \n); U+2028 ends no line.
        self._text = io.TextIOWrapper(self._binary, encoding="utf-8-sig")

    @property
    def position(self) -> int:
        """Bytes read so far (ahead of the row being checked by at most one read buffer)."""
        return self._binary.tell() if not self._binary.closed else self.size

    def close(self) -> None:
        """Close the file."""
        self._text.close()

    def __enter__(self) -> AudienceFileRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any] | str, str]]:
        return self._jsonl() if self.jsonl else self._csv()

    def read_header(self) -> list[str]:
        """A CSV's column names as written, read once; raises CsvUnreadable or HeaderProblem."""
        if self._reader is None:
            self._tap = _LineTap(self._text)
            self._reader = csv.DictReader(self._tap)
            try:
                self.headers = list(self._reader.fieldnames or [])
            except csv.Error as exc:
                raise CsvUnreadable(1, str(exc)) from None
            self.header = self._tap.take()
        return self.headers

    def _csv(self) -> Iterator[tuple[int, dict[str, Any] | str, str]]:
        mapping = self._mapping(self.read_header())
        reader, tap = self._reader, self._tap
        start = 2
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a cell over csv's field limit: the file cannot be read past it
                raise CsvUnreadable(start, str(exc)) from None
            values = {mapping[k]: v for k, v in row.items() if k in mapping}
            if None in row:  # more cells than headers
                values["__extra__"] = row[None]
            yield start, values, tap.take()
            start = reader.line_num + 1

    def _mapping(self, headers: list[str]) -> dict[str, str]:
        mailchimp = is_mailchimp_export(headers)
        mapping: dict[str, str] = {}
        unknown, repeated = [], []
        for header in headers:
            low = (header or "").strip().lower()
            # A Mailchimp export's other columns are its own; in ours an unknown column is a typo.
            column = MAILCHIMP_COLUMNS.get(low) if mailchimp else (low if low in self.columns else None)
            if column is None:
                if not mailchimp:
                    unknown.append(header)
            elif column in mapping.values():
                # Two headers for one column ("email" and "Email"): csv would keep only the last one's
                # value, silently, so which address or status a row has would depend on column order.
                repeated.append(header)
            else:
                mapping[header] = column
        if unknown or repeated:
            raise HeaderProblem(unknown, repeated=repeated)
        if "email" not in mapping.values():
            raise HeaderProblem([], missing_email=True)
        return mapping

    def _jsonl(self) -> Iterator[tuple[int, dict[str, Any] | str, str]]:
        for number, raw in enumerate(self._text, start=1):
            line = raw.removesuffix("\n").removesuffix("\r")
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"not valid JSON: {exc.msg}", line
                continue
            if not isinstance(value, dict):
                yield number, "each line must be a JSON object", line
                continue
            yield number, value, line
