"""Importing an audience file into the database: all or nothing, learned data never erased.

A re-import updates what the file says (names, declared interests, needs, tags) and leaves
what readerfirst learned (topic posteriors, suppressions) alone. A reader who unsubscribed,
was cleaned or is suppressed stays so even if the file says `subscribed` (or Mailchimp's
`nonsubscribed`, from which a later file could subscribe them): only the reader can resubscribe.

The file is read, checked and staged a batch at a time (see `staging`), in the one transaction
that then merges it: memory stays flat however long the file, and a refused import leaves nothing.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, select

from pipeline.audience.mailchimp import NONSUBSCRIBED
from pipeline.audience.checking import checked_batches, checking_workers
from pipeline.audience.records import AudienceScan, ReaderRecord, ScannedRow, duplicate_problem
from pipeline.audience.staging import ImportStaging
from pipeline.bulk import cycle_collection_paused
from pipeline.content.topics import Taxonomy
from pipeline.errors import InputProblem, InvalidAudience
from pipeline.store.database import Database
from pipeline.store.models import Audience, utcnow

__all__ = ["BATCH", "ImportReport", "import_audience", "next_status"]

# Statuses only the reader (or their mailbox) can leave: a file never moves a reader out of them.
_OPTED_OUT = ("unsubscribed", "cleaned")
BATCH = 5_000  # rows read, checked and staged at a time: what an import holds in memory


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
                    taxonomy: Taxonomy | None = None, status: str | None = None,
                    progress: Callable[[int, int], None] | None = None, batch_size: int = BATCH,
                    workers: int = 0) -> ImportReport:
    """Import `path` into `audience`; raises InvalidAudience (changing nothing) on any bad row.

    With `skip_invalid`, good rows are imported and the bad ones written, as they were, to
    `rejected_file` (default: `<file>.rejected<suffix>` beside the input). Topics must be in
    `taxonomy` (default: `editions/topics.yaml`); `status` states the status of the file's
    people where the file does not (see `read_audience_file`). `progress`, when given, is
    called after each batch of `batch_size` rows with the bytes read and the file's size.
    `workers` processes check the rows (1: this one; 0: chosen by the file's size and the cores).
    """
    path = Path(path)
    if not audience.strip():
        raise InvalidAudience([InputProblem(str(path), 0, "audience", audience, "an audience name is required")])
    scan = AudienceScan(path, today=today, taxonomy=taxonomy, status=status)
    report = ImportReport(audience=audience)
    rejected_to = rejected_file or path.with_name(f"{path.stem}.rejected{path.suffix}")
    with (cycle_collection_paused(), _RejectedRows(rejected_to, keep=skip_invalid) as rejected,
          db.transaction() as connection, ImportStaging(connection, _audience_id(connection, audience)) as staging):
        accepted = 0
        checkers = checking_workers(workers, _size(path))
        for batch in checked_batches(scan, batch_size, checkers):
            accepted += _stage_batch(staging, scan, batch, report, rejected)
            if progress is not None:
                progress(scan.position, scan.size)
        if not scan.problems and not accepted and not report.problems:
            scan.problems.append(scan.no_readers())
        if scan.problems:
            raise InvalidAudience(scan.problems)
        if report.problems and (not skip_invalid or not accepted):
            raise InvalidAudience(report.problems)
        counts = staging.merge(utcnow())
        report.created, report.updated = counts.created, counts.updated
        report.kept_unsubscribed, report.forgotten = counts.kept_unsubscribed, counts.forgotten
        if report.rejected:
            rejected.keep(scan.header if scan.source_format == "csv" else None)
            report.rejected_file = rejected_to
    return report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the scan reports what is wrong with the path


def _stage_batch(staging: ImportStaging, scan: AudienceScan, batch: list[ScannedRow], report: ImportReport,
                 rejected: _RejectedRows) -> int:
    """Stage the valid rows of `batch` whose address no earlier row has; returns how many were staged."""
    valid = [row.record for row in batch if row.record is not None]
    # The staging table's unique index knows every address before this batch; a dict this one's.
    first = staging.first_lines([r.email for r in valid])
    fresh: list[ReaderRecord] = []
    for row in batch:
        found = row.problems
        if row.record is not None:
            line = first.setdefault(row.record.email, row.line)
            if line != row.line:
                found = [duplicate_problem(scan.file, row.line, row.record.email, line)]
            else:
                fresh.append(row.record)
        if found:
            report.problems += found
            report.rejected += 1
            rejected.write(row.raw_text)
    staging.add(fresh)
    return len(fresh)


def _audience_id(connection: Connection, name: str) -> int:
    found = connection.scalar(select(Audience.id).where(Audience.name == name))
    if found is None:
        found = connection.execute(Audience.__table__.insert().values(name=name, created_at=utcnow())).inserted_primary_key[0]
    return found


class _RejectedRows:
    """Rejected rows as written, streamed to a hidden file beside the target and put in place only if kept."""

    def __init__(self, target: Path, *, keep: bool) -> None:
        self.target = target
        self.enabled = keep
        self._file: IO[str] | None = None
        self._kept = False
        self._header: str | None = None

    def __enter__(self) -> _RejectedRows:
        return self

    def write(self, raw_text: str) -> None:
        """Add one rejected row."""
        if not self.enabled:
            return
        if self._file is None:
            self._file = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.target.parent,
                                                     prefix=f".{self.target.name}.", suffix=".partial", delete=False)
        self._file.write(raw_text + "\n")

    def keep(self, header: str | None) -> None:
        """Put the rows in place (after `header`, a CSV's first line) once the import is committed."""
        self._kept = True
        self._header = header

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._file is None:
            return
        self._file.close()
        partial = Path(self._file.name)
        if not self._kept or exc_type is not None:
            partial.unlink(missing_ok=True)
            return
        with self.target.open("w", encoding="utf-8") as out, partial.open(encoding="utf-8") as rows:
            if self._header is not None:
                out.write(self._header + "\n")
            shutil.copyfileobj(rows, out)
        partial.unlink()
