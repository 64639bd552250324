"""Reading audience files (CSV or JSONL, our columns or a Mailchimp export) into checked records.

Every row is checked and every problem is reported, each as `FILE:LINE: field=value: reason`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.audience.addresses import AddressRefused, stored_address
from pipeline.audience.file_rows import AudienceFileRows, CsvUnreadable, HeaderProblem, first_undecodable_line, is_blank
from pipeline.audience.mailchimp import NONSUBSCRIBED, StatusUnclear, export_status, is_mailchimp_export
from pipeline.content.topics import TOPIC_PATTERN, Taxonomy, default_taxonomy
from pipeline.errors import InputProblem

__all__ = ["ReaderRecord", "ReadResult", "read_audience_file", "STATUSES", "DEFAULT_NEED_DAYS", "AudienceScan",
           "ScannedRow", "RowChecker", "duplicate_problem"]

# Only `subscribed` is ever sent to; the others are Mailchimp's statuses of people who left
# (unsubscribed), whose address bounced (cleaned) or who never opted in (nonsubscribed).
STATUSES = ("subscribed", "unsubscribed", "cleaned", NONSUBSCRIBED)
DEFAULT_NEED_DAYS = 45
MAX_NEED_DAYS = 366

_COLUMNS = ("email", "first_name", "last_name", "interests", "needs", "needs_until", "timezone", "status", "tags")
_NAME_LIMIT = 200


@dataclass
class ReaderRecord:
    """One valid row of an audience file."""

    line: int
    email: str
    first_name: str = ""
    last_name: str = ""
    interests: dict[str, float] | None = None  # None: the file says nothing about interests
    needs: dict[str, dt.date] = field(default_factory=dict)
    timezone: str = ""
    status: str | None = None
    tags: list[str] | None = None


@dataclass
class ReadResult:
    """Valid records, the problems found, and the raw text of each rejected line."""

    records: list[ReaderRecord]
    problems: list[InputProblem]
    rejected: list[tuple[int, str]]
    source_format: str


def _check_topic(topic: str, field_name: str, taxonomy: Taxonomy | None, problem) -> bool:
    if not TOPIC_PATTERN.match(topic):
        problem(field_name, topic, "topics are lowercase letters, digits and dashes")
        return False
    if taxonomy is not None and topic not in taxonomy:
        problem(field_name, topic, taxonomy.unknown_reason(topic))
        return False
    return True


def _parse_interests(value: Any, problem, taxonomy: Taxonomy | None) -> dict[str, float] | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = [(str(v), None) for v in value]
    else:
        items = []
        for part in str(value).split(";"):
            part = part.strip()
            if not part:
                continue
            topic, _, weight = part.partition(":")
            items.append((topic.strip(), weight.strip() or None))
    interests: dict[str, float] = {}
    for topic, weight in items:
        if not _check_topic(str(topic), "interests", taxonomy, problem):
            continue
        try:
            number = 1.0 if weight is None else float(weight)
        except (TypeError, ValueError):
            problem("interests", f"{topic}:{weight}", "weight must be a number from 0 to 1")
            continue
        if not 0.0 <= number <= 1.0:
            problem("interests", f"{topic}:{weight}", "weight must be from 0 to 1")
            continue
        interests[topic] = number
    return interests


def _parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


def _check_row(values: dict[str, Any], line: int, file: str, today: dt.date, problems: list[InputProblem], *,
               taxonomy: Taxonomy | None = None, stated_status: str | None = None) -> ReaderRecord | None:
    before = len(problems)

    def problem(field_name: str, value: Any, reason: str) -> None:
        problems.append(InputProblem(file, line, field_name, value, reason))

    if "__extra__" in values:
        problem("row", ",".join(values.pop("__extra__")), "more cells than there are columns")
    unknown = sorted(set(values) - set(_COLUMNS))
    for key in unknown:
        problem(key, values[key], f"unknown field; use {', '.join(_COLUMNS)}")

    raw_email = str(values.get("email") or "").strip()
    email = ""
    if not raw_email:
        problem("email", "", "is required")
    else:
        try:
            email = stored_address(raw_email)
        except AddressRefused as exc:
            problem("email", raw_email, str(exc))

    names = {}
    for key in ("first_name", "last_name", "timezone"):
        value = values.get(key)
        text = "" if value is None else str(value).strip()
        if len(text) > _NAME_LIMIT:
            problem(key, text, f"longer than {_NAME_LIMIT} characters")
        if not text.isprintable():
            problem(key, text, "contains control characters or line breaks")
        names[key] = text
    if names["timezone"]:
        try:
            zoneinfo.ZoneInfo(names["timezone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: 'Europe' is a folder
            problem("timezone", names["timezone"], "unknown time zone; use an IANA name such as Europe/London")

    status = values.get("status")
    status = str(status).strip().lower() if status not in (None, "") else None
    if status is not None and status not in STATUSES:
        problem("status", values.get("status"), f"unknown status; use {', '.join(STATUSES)}")
    elif stated_status is not None:
        if status is not None and status != stated_status:
            problem("status", values.get("status"), f"contradicts --status {stated_status}; correct the row or the option")
        status = stated_status

    interests = _parse_interests(values.get("interests"), problem, taxonomy)

    needs_raw = values.get("needs")
    need_topics: list[str] = []
    if isinstance(needs_raw, list):
        need_topics = [str(t).strip() for t in needs_raw]
    elif needs_raw not in (None, ""):
        need_topics = [t.strip() for t in str(needs_raw).split(";") if t.strip()]
    for topic in need_topics:
        _check_topic(topic, "needs", taxonomy, problem)
    until = today + dt.timedelta(days=DEFAULT_NEED_DAYS)
    until_raw = values.get("needs_until")
    if until_raw not in (None, ""):
        try:
            until = _parse_date(until_raw)
        except ValueError:
            problem("needs_until", until_raw, "not a date; use YYYY-MM-DD")
        else:
            if until < today:
                problem("needs_until", until_raw, f"is in the past (today is {today.isoformat()})")
            elif (until - today).days > MAX_NEED_DAYS:
                problem("needs_until", until_raw, f"is more than {MAX_NEED_DAYS} days ahead; needs are for the coming weeks")
        if not need_topics:
            problem("needs_until", until_raw, "given without any needs")

    tags_raw = values.get("tags")
    tags: list[str] | None = None
    if isinstance(tags_raw, list):
        tags = [str(t).strip() for t in tags_raw if str(t).strip()]
    elif tags_raw not in (None, ""):
        # Ours: "a;b". Mailchimp: "\"a\",\"b\"".
        sep = ";" if ";" in str(tags_raw) else ","
        tags = [t.strip().strip('"').strip() for t in str(tags_raw).split(sep) if t.strip().strip('"').strip()]
    for tag in tags or []:
        # Tags are labels people read in lists and exports: one printable line of a sane length.
        if len(tag) > _NAME_LIMIT:
            problem("tags", tag, f"a tag longer than {_NAME_LIMIT} characters")
        elif not tag.isprintable():
            problem("tags", tag, "a tag with control characters or line breaks")

    if len(problems) > before:
        return None
    return ReaderRecord(line=line, email=email, first_name=names["first_name"], last_name=names["last_name"],
                        interests=interests, needs={t: until for t in need_topics}, timezone=names["timezone"],
                        status=status, tags=tags)


def _mailchimp_status(path: Path, headers: list[str], stated: str | None) -> tuple[str | None, list[InputProblem]]:
    """The status of a Mailchimp export's people (None for our own format), or the problem why not."""
    if not is_mailchimp_export(headers):
        return stated, []
    try:
        return export_status(path, headers, stated), []
    except StatusUnclear as exc:
        return None, [InputProblem(str(path), 1, "status", stated or path.name, str(exc))]


def duplicate_problem(file: str, line: int, email: str, first_line: int) -> InputProblem:
    """The problem of a row whose address an earlier row (`first_line`) already has."""
    return InputProblem(file, line, "email", email,
                        f"duplicate of line {first_line} (addresses compare case-insensitively)")


@dataclass
class ScannedRow:
    """One row of an audience file: its record when valid, else its problems; and its text as written."""

    line: int
    record: ReaderRecord | None
    problems: list[InputProblem]
    raw_text: str


class AudienceScan:
    """An audience file checked a row at a time, so that memory does not grow with the file.

    Iterate `rows()`; afterwards `problems` holds the file-level problems (the file or its header
    cannot be read, a Mailchimp export's status is unclear): with any of them, nothing of the file
    may be imported, whatever the rows said. Duplicate addresses are the caller's to find (with
    `duplicate_problem`), in memory or in a database, as the size of the file demands.
    """

    def __init__(self, path: Path | str, *, today: dt.date | None = None, taxonomy: Taxonomy | None = None,
                 status: str | None = None) -> None:
        self.path = Path(path)
        self.file = str(path)
        self.today = today or dt.date.today()
        self.taxonomy = taxonomy or default_taxonomy()
        self.status = status
        self.jsonl = self.path.suffix.lower() in (".jsonl", ".ndjson", ".json")
        self.problems: list[InputProblem] = []
        self.source_format = ""
        self.header = ""  # a CSV's header line, as written
        self.size = 0
        self._rows: AudienceFileRows | None = None
        self.checker = RowChecker(self.file, self.today, self.taxonomy, status)

    @property
    def position(self) -> int:
        """Bytes of the file read so far."""
        return self._rows.position if self._rows is not None else 0

    def no_readers(self) -> InputProblem:
        """The problem of a file with no rows at all."""
        return InputProblem(self.file, 1, "file", "", "no readers in this file")

    def _unopenable(self) -> InputProblem | None:
        file, path = self.file, self.path
        if self.status is not None and self.status not in STATUSES:
            return InputProblem(file, 0, "status", self.status, f"unknown status; use {', '.join(STATUSES)}")
        try:
            blank = is_blank(path)
        except FileNotFoundError:
            return InputProblem(file, 0, "file", file, "no such file")
        except IsADirectoryError:
            return InputProblem(file, 0, "file", file, "is a folder; give the audience file (CSV or JSONL)")
        except PermissionError:
            return InputProblem(file, 0, "file", file, "permission denied; this user cannot read it")
        except UnicodeDecodeError:
            return self._undecodable()
        if blank:
            return InputProblem(file, 0, "file", "", "the file is empty; export the audience again")
        return None

    def _undecodable(self) -> InputProblem:
        return InputProblem(self.file, first_undecodable_line(self.path), "file", "",
                            "not UTF-8 text; save the file as UTF-8")

    def rows(self) -> Iterator[ScannedRow]:
        """Each row of the file, checked; stops early (with `problems` set) when the file cannot be read on."""
        for line, values, raw_text in self.raw_rows():
            yield self.checker.check(line, values, raw_text)

    def raw_rows(self) -> Iterator[tuple[int, dict[str, Any] | str, str]]:
        """Each row as read, not yet checked: `(line, values or why the line is unreadable, text as written)`.

        Once the header is read, `checker` checks rows as this file's (its status included), in
        this process or another: reading must stay in one place, checking need not.
        """
        unopenable = self._unopenable()
        if unopenable is not None:
            self.problems.append(unopenable)
            return
        file, status = self.file, self.status
        self.source_format = "jsonl" if self.jsonl else "csv"
        try:
            with AudienceFileRows(self.path, jsonl=self.jsonl, columns=_COLUMNS) as rows:
                self._rows, self.size = rows, rows.size
                if not self.jsonl:
                    status, unclear = _mailchimp_status(self.path, rows.read_header(), status)
                    self.header = rows.header
                    if unclear:
                        self.problems.extend(unclear)
                        return
                self.checker = RowChecker(file, self.today, self.taxonomy, status)
                for line, values, raw_text in rows:
                    if not self.jsonl and not isinstance(values, str) and not values:
                        continue  # a CSV line of nothing but commas
                    yield line, values, raw_text
        except HeaderProblem as exc:
            known = ", ".join(_COLUMNS)
            found = [InputProblem(file, 1, "header", h, f"unknown column; use {known} (or a Mailchimp export)")
                     for h in exc.unknown]
            found += [InputProblem(file, 1, "header", h, "a second column for the same field; keep one")
                      for h in exc.repeated]
            if exc.missing_email:
                found.append(InputProblem(file, 1, "header", self.header,
                                          "no email column (email, or Mailchimp's 'Email Address')"))
            self.problems.extend(found)
        except CsvUnreadable as exc:
            self.problems.append(InputProblem(file, exc.line, "file", "", f"not readable as CSV ({exc.message});"
                                              " is a quote left open, or a cell far too long?"))
        except UnicodeDecodeError:
            self.problems.append(self._undecodable())


@dataclass(frozen=True)
class RowChecker:
    """What checking a row of one file needs, small enough to send to another process with its rows."""

    file: str
    today: dt.date
    taxonomy: Taxonomy | None
    status: str | None  # the status of rows that state none (the file's, or --status)

    def check(self, line: int, values: dict[str, Any] | str, raw_text: str) -> ScannedRow:
        """The row checked: its record when valid, else its problems."""
        problems: list[InputProblem] = []
        if isinstance(values, str):
            problems.append(InputProblem(self.file, line, "line", raw_text, values))
            return ScannedRow(line, None, problems, raw_text)
        record = _check_row(values, line, self.file, self.today, problems, taxonomy=self.taxonomy,
                            stated_status=self.status)
        return ScannedRow(line, record, problems, raw_text)

    def check_all(self, rows: list[tuple[int, dict[str, Any] | str, str]]) -> list[ScannedRow]:
        """Each of `rows` checked, in order."""
        return [self.check(*row) for row in rows]


def read_audience_file(path: Path | str, *, today: dt.date | None = None, taxonomy: Taxonomy | None = None,
                       status: str | None = None) -> ReadResult:
    """Read and check every row of a CSV or JSONL audience file, into lists (see AudienceScan for big files).

    Topics must be in `taxonomy` (default: the project's `editions/topics.yaml`). `status`, when
    given, is the status of every row that does not state its own (and of every row of a
    Mailchimp export, whose status is otherwise told by its columns and file name).
    """
    scan = AudienceScan(path, today=today, taxonomy=taxonomy, status=status)
    records: list[ReaderRecord] = []
    problems: list[InputProblem] = []
    rejected: list[tuple[int, str]] = []
    first_seen: dict[str, int] = {}
    for row in scan.rows():
        found = row.problems
        if row.record is not None:
            first = first_seen.setdefault(row.record.email, row.line)
            if first != row.line:
                found = [duplicate_problem(scan.file, row.line, row.record.email, first)]
            else:
                records.append(row.record)
        if found:
            problems += found
            rejected.append((row.line, row.raw_text))
    if scan.problems:
        return ReadResult([], scan.problems, [], scan.source_format)
    if not records and not problems:
        problems.append(scan.no_readers())
    return ReadResult(records, problems, rejected, scan.source_format)
