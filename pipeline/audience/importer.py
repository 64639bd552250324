"""Importing an audience file into the database: all or nothing, learned data never erased.

A re-import updates what the file says (names, declared interests, needs, tags) and leaves
what readerfirst learned (topic posteriors, suppressions) alone. A reader who unsubscribed,
was cleaned or is suppressed stays so even if the file says `subscribed` (or Mailchimp's
`nonsubscribed`, from which a later file could subscribe them): only the reader can resubscribe.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import bindparam, select, update

from pipeline.audience.mailchimp import NONSUBSCRIBED
from pipeline.audience.privacy import forgotten_among
from pipeline.audience.records import ReaderRecord, read_audience_file
from pipeline.content.topics import Taxonomy
from pipeline.errors import InputProblem, InvalidAudience
from pipeline.store.database import Database
from pipeline.store.models import Audience, Reader, ReaderInterest, ReaderNeed, utcnow
from pipeline.store.upsert import upsert_rows

__all__ = ["ImportReport", "import_audience", "next_status"]

# Statuses only the reader (or their mailbox) can leave: a file never moves a reader out of them.
_OPTED_OUT = ("unsubscribed", "cleaned")


@dataclass
class ImportReport:
    """What an import did."""

    audience: str
    created: int = 0
    updated: int = 0
    kept_unsubscribed: int = 0
    forgotten: int = 0  # rows of people who asked to be forgotten: never imported again
    rejected: int = 0
    rejected_file: Path | None = None
    problems: list[InputProblem] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Readers created or updated."""
        return self.created + self.updated


def _write_rejected(path: Path, out: Path, rejected: list[tuple[int, str]], fmt: str) -> None:
    lines = [text for _, text in rejected]
    if fmt == "csv":
        header = path.read_text(encoding="utf-8-sig").splitlines()[0]
        lines = [header, *lines]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def next_status(current: str, suppressed: bool, incoming: str | None) -> str | None:
    """The status a re-import gives a reader now `current`, or None to keep it.

    A file may always take a reader further from the inbox (to unsubscribed, cleaned or
    nonsubscribed), never back: `subscribed` is taken only from nonsubscribed (a contact who
    opted in since) and never by a suppressed reader.
    """
    if incoming is None or incoming == current:
        return None
    if current in _OPTED_OUT and incoming in ("subscribed", NONSUBSCRIBED):
        return None
    if incoming == "subscribed" and (current != NONSUBSCRIBED or suppressed):
        return None
    return incoming


def import_audience(db: Database, path: Path | str, audience: str, *, skip_invalid: bool = False,
                    rejected_file: Path | None = None, today: dt.date | None = None,
                    taxonomy: Taxonomy | None = None, status: str | None = None) -> ImportReport:
    """Import `path` into `audience`; raises InvalidAudience (changing nothing) on any bad row.

    With `skip_invalid`, good rows are imported and the bad ones written, as they were, to
    `rejected_file` (default: `<file>.rejected<suffix>` beside the input). Topics must be in
    `taxonomy` (default: `editions/topics.yaml`); `status` states the status of the file's
    people where the file does not (see `read_audience_file`).
    """
    path = Path(path)
    if not audience.strip():
        raise InvalidAudience([InputProblem(str(path), 0, "audience", audience, "an audience name is required")])
    result = read_audience_file(path, today=today, taxonomy=taxonomy, status=status)
    file_level = [p for p in result.problems if p.field in ("file", "header")]
    if result.problems and (not skip_invalid or file_level or not result.records):
        raise InvalidAudience(result.problems)
    report = ImportReport(audience=audience, rejected=len(result.rejected), problems=result.problems)
    if result.rejected:
        report.rejected_file = rejected_file or path.with_name(f"{path.stem}.rejected{path.suffix}")
    _store(db, audience, result.records, report)
    if report.rejected_file:
        _write_rejected(path, report.rejected_file, result.rejected, result.source_format)
    return report


def _store(db: Database, audience_name: str, records: list[ReaderRecord], report: ImportReport) -> None:
    now = utcnow()
    with db.session() as session:
        audience_id = session.scalar(select(Audience.id).where(Audience.name == audience_name))
        if audience_id is None:
            audience_row = Audience(name=audience_name)
            session.add(audience_row)
            session.flush()
            audience_id = audience_row.id
        existing = {email: (rid, status, suppressed) for rid, email, status, suppressed in session.execute(
            select(Reader.id, Reader.email, Reader.status, Reader.suppressed_reason).where(Reader.audience_id == audience_id))}
        connection = session.connection()

        new_rows, updates = [], []
        # People who asked to be forgotten are not imported again, from any old list.
        forgotten = forgotten_among(connection, [r.email for r in records if r.email not in existing])
        if forgotten:
            report.forgotten = sum(r.email in forgotten for r in records)
            records = [r for r in records if r.email not in forgotten]
        for record in records:
            found = existing.get(record.email)
            if found is None:
                new_rows.append({
                    "audience_id": audience_id, "public_id": uuid.uuid4().hex, "email": record.email,
                    "first_name": record.first_name, "last_name": record.last_name, "timezone": record.timezone,
                    "status": record.status or "subscribed", "tags": record.tags or [],
                    "created_at": now, "updated_at": now,
                })
                continue
            rid, status, suppressed = found
            values: dict = {"id": rid, "updated_at": now}
            for key in ("first_name", "last_name", "timezone"):
                if getattr(record, key):
                    values[key] = getattr(record, key)
            if record.tags is not None:
                values["tags"] = record.tags
            new_status = next_status(status, suppressed is not None, record.status)
            if new_status is not None:
                values["status"] = new_status
            elif record.status not in (None, status):
                report.kept_unsubscribed += 1
            updates.append(values)
        if new_rows:
            connection.execute(Reader.__table__.insert(), new_rows)
        report.created = len(new_rows)
        report.updated = len(updates)
        _update_readers(connection, updates)

        ids = dict(session.execute(select(Reader.email, Reader.id).where(Reader.audience_id == audience_id)).all())
        declaring = [ids[r.email] for r in records if r.interests is not None]
        for start in range(0, len(declaring), 500):
            # The file restates declared interests; learned columns are left as they are.
            connection.execute(update(ReaderInterest).where(ReaderInterest.reader_id.in_(declaring[start:start + 500]))
                               .values(declared_weight=None))
        interest_rows = [{"reader_id": ids[r.email], "topic": t, "declared_weight": w, "learned_clicks": 0.0,
                          "learned_exposures": 0.0, "opted_out": False}
                         for r in records if r.interests for t, w in r.interests.items()]
        upsert_rows(connection, ReaderInterest.__table__, interest_rows, ["reader_id", "topic"], ["declared_weight"])
        need_rows = [{"reader_id": ids[r.email], "topic": t, "until": until, "source": "import"}
                     for r in records for t, until in r.needs.items()]
        upsert_rows(connection, ReaderNeed.__table__, need_rows, ["reader_id", "topic"], ["until", "source"])


def _update_readers(connection, updates: list[dict]) -> None:
    """Apply per-reader updates, grouped by the set of columns they change."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for values in updates:
        groups.setdefault(tuple(sorted(values)), []).append(values)
    table = Reader.__table__
    for columns, rows in groups.items():
        statement = (table.update().where(table.c.id == bindparam("_id"))
                     .values({c: bindparam(c) for c in columns if c != "id"}))
        connection.execute(statement, [{**{k: v for k, v in row.items() if k != "id"}, "_id": row["id"]} for row in rows])
