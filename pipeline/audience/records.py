"""Reading audience files (CSV or JSONL, our columns or a Mailchimp export) into checked records.

Every row is checked and every problem is reported, each as `FILE:LINE: field=value: reason`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.audience.addresses import AddressRefused, stored_address
from pipeline.audience.mailchimp import MAILCHIMP_COLUMNS, NONSUBSCRIBED, StatusUnclear, export_status, is_mailchimp_export
from pipeline.content.topics import TOPIC_PATTERN, Taxonomy, default_taxonomy
from pipeline.errors import InputProblem

__all__ = ["ReaderRecord", "ReadResult", "read_audience_file", "STATUSES", "DEFAULT_NEED_DAYS"]

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


def _rows_csv(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any], str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        headers = reader.fieldnames or []
    except csv.Error as exc:
        raise _CsvError(1, str(exc)) from None
    mailchimp = is_mailchimp_export(headers)
    mapping: dict[str, str] = {}
    unknown, repeated = [], []
    for header in headers:
        key = (header or "").strip()
        low = key.lower()
        # A Mailchimp export's other columns are its own; in ours an unknown column is a typo.
        column = MAILCHIMP_COLUMNS.get(low) if mailchimp else (low if low in _COLUMNS else None)
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
        raise _HeaderError(unknown, repeated=repeated)
    if "email" not in mapping.values():
        raise _HeaderError([], missing_email=True)
    # Physical lines as csv counts them: only \n ends a line (\f or U+2028 inside a cell do not).
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    start = 2
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a cell over csv's field limit: the file cannot be read past it
            raise _CsvError(start, str(exc)) from None
        end = reader.line_num
        raw_text = "\n".join(lines[start - 1:end])
        values = {mapping[k]: v for k, v in row.items() if k in mapping}
        if None in row:  # more cells than headers
            values["__extra__"] = row[None]
        yield start, values, raw_text
        start = end + 1


class _CsvError(Exception):
    def __init__(self, line: int, message: str):
        self.line = line
        self.message = message


class _HeaderError(Exception):
    def __init__(self, unknown: list[str], *, missing_email: bool = False, repeated: list[str] | None = None):
        self.unknown = unknown
        self.missing_email = missing_email
        self.repeated = repeated or []


def _rows_jsonl(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any] | str, str]]:
    for number, line in enumerate((part.removesuffix("\r") for part in text.split("\n")), start=1):
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


def _mailchimp_status(path: Path, text: str, stated: str | None) -> tuple[str | None, list[InputProblem]]:
    """The status of a Mailchimp export's people (None for our own format), or the problem why not."""
    try:
        headers = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        return stated, []  # reading the rows reports it, at its line
    if not is_mailchimp_export(headers):
        return stated, []
    try:
        return export_status(path, headers, stated), []
    except StatusUnclear as exc:
        return None, [InputProblem(str(path), 1, "status", stated or path.name, str(exc))]


def read_audience_file(path: Path | str, *, today: dt.date | None = None, taxonomy: Taxonomy | None = None,
                       status: str | None = None) -> ReadResult:
    """Read and check every row of a CSV or JSONL audience file.

    Topics must be in `taxonomy` (default: the project's `editions/topics.yaml`). `status`, when
    given, is the status of every row that does not state its own (and of every row of a
    Mailchimp export, whose status is otherwise told by its columns and file name).
    """
    path = Path(path)
    today = today or dt.date.today()
    taxonomy = taxonomy or default_taxonomy()
    file = str(path)
    if status is not None and status not in STATUSES:
        return ReadResult([], [InputProblem(file, 0, "status", status, f"unknown status; use {', '.join(STATUSES)}")],
                          [], "")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return ReadResult([], [InputProblem(file, 0, "file", file, "no such file")], [], "")
    except IsADirectoryError:
        return ReadResult([], [InputProblem(file, 0, "file", file, "is a folder; give the audience file (CSV or JSONL)")],
                          [], "")
    except PermissionError:
        return ReadResult([], [InputProblem(file, 0, "file", file, "permission denied; this user cannot read it")],
                          [], "")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        return ReadResult([], [InputProblem(file, line, "file", "", "not UTF-8 text; save the file as UTF-8")], [], "")
    if not text.strip():
        return ReadResult([], [InputProblem(file, 0, "file", "", "the file is empty; export the audience again")], [], "")
    is_jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
    records: list[ReaderRecord] = []
    problems: list[InputProblem] = []
    rejected: list[tuple[int, str]] = []
    first_seen: dict[str, int] = {}
    fmt = "jsonl" if is_jsonl else "csv"
    if not is_jsonl:
        status, unclear = _mailchimp_status(path, text, status)
        if unclear:
            return ReadResult([], unclear, [], fmt)
    rows = _rows_jsonl(path, text) if is_jsonl else _rows_csv(path, text)
    try:
        for line, values, raw_text in rows:
            before = len(problems)
            if isinstance(values, str):
                problems.append(InputProblem(file, line, "line", raw_text, values))
                record = None
            else:
                if not is_jsonl and "email" not in values and not values:
                    continue
                record = _check_row(values, line, file, today, problems, taxonomy=taxonomy, stated_status=status)
            if record is not None:
                if record.email in first_seen:
                    problems.append(InputProblem(file, line, "email", record.email,
                                                 f"duplicate of line {first_seen[record.email]} (addresses compare case-insensitively)"))
                else:
                    first_seen[record.email] = line
                    records.append(record)
            if len(problems) > before:
                rejected.append((line, raw_text))
    except _HeaderError as exc:
        known = ", ".join(_COLUMNS)
        found = [InputProblem(file, 1, "header", h, f"unknown column; use {known} (or a Mailchimp export)")
                 for h in exc.unknown]
        found += [InputProblem(file, 1, "header", h, "a second column for the same field; keep one")
                  for h in exc.repeated]
        if exc.missing_email:
            found.append(InputProblem(file, 1, "header", text.split("\n")[0].removesuffix("\r") if text else "",
                                      "no email column (email, or Mailchimp's 'Email Address')"))
        return ReadResult([], found, [], fmt)
    except _CsvError as exc:
        return ReadResult([], [InputProblem(file, exc.line, "file", "", f"not readable as CSV ({exc.message});"
                                            " is a quote left open, or a cell far too long?")], [], fmt)
    if not records and not problems:
        problems.append(InputProblem(file, 1, "file", "", "no readers in this file"))
    return ReadResult(records, problems, rejected, fmt)
