"""The send ledger: per (edition, reader), what was chosen and how far sending went.

planned -> sending (claimed by a batch, before the transport is called)
        -> sent (the transport confirmed it, with its message id)
        -> failed (the provider refused this reader's address: never sent; `reason` says why)
A crash or an ambiguous answer between the two leaves the batch `sending`: it is never resent
blindly, because it may already be in the reader's inbox; `pipeline.delivery.reconcile` settles
it from SendGrid's delivery events (sent), or puts it back to planned when none came.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson
from sqlalchemy import Connection, Text, and_, bindparam, case, cast, func, select, text, update
from sqlalchemy.dialects.postgresql.base import PGDialect

from pipeline.audience.directory import sendable
from pipeline.store.chunks import id_chunks
from pipeline.store.database import Database
from pipeline.content.edition import Edition
from pipeline.store.models import EditionSection, LedgerState, Reader, SendLedgerEntry, utcnow
from pipeline.store.upsert import upsert_rows

__all__ = ["SendLedger", "PlannedEntry", "PlannedBatch", "ClaimedEntry", "UnconfirmedBatch", "FailedReader", "HELD"]

# The statements of claim and confirm, built once: a send runs them for every batch, and
# building an IN list of literal values per call cost more than SQLite's own work.
_T = SendLedgerEntry.__table__
_IDS = bindparam("ids", expanding=True)
_OF_EDITION = _T.c.edition_id == bindparam("edition")
# A batch is the planned readers of one variant with ids from :first to :last (at most :size
# of them): a range of the (edition, variant, reader) index, never a list of ids.
_IN_BATCH = and_(_OF_EDITION, _T.c.variant_id == bindparam("variant"),
                 _T.c.reader_id.between(bindparam("first"), bindparam("last")))
_PLANNED_IN_BATCH = (select(_T.c.reader_id).where(_IN_BATCH, _T.c.state == LedgerState.PLANNED)
                     .order_by(_T.c.reader_id).limit(bindparam("size")))
_GONE = (select(_T.c.reader_id).join(Reader, Reader.id == _T.c.reader_id)
         .where(_IN_BATCH, _T.c.state == LedgerState.PLANNED, ~sendable()))
_SKIP = (update(_T).where(_OF_EDITION, _T.c.reader_id.in_(_IDS), _T.c.state == LedgerState.PLANNED)
         .values(state=LedgerState.SKIPPED))
# What reconciliation says of a batch it holds (`pipeline.delivery.reconcile`): true of that batch
# only, so a release or a new claim of its readers drops it.
HELD = ("held: no SendGrid event for this request, and none that shows the event webhook working just before and"
        " just after it was handed over")
_NOT_HELD = case((_T.c.reason == HELD, None), else_=_T.c.reason)
_CLAIM = (update(_T).where(_OF_EDITION, _T.c.reader_id.in_(_PLANNED_IN_BATCH.scalar_subquery()),
                           _T.c.state == LedgerState.PLANNED)
          .values(state=LedgerState.SENDING, batch_id=bindparam("batch"), transport=bindparam("transport"),
                  sending_at=bindparam("now"), reason=_NOT_HELD))
# picks as their stored text: readers of one batch often share theirs, and each text is parsed once.
_CLAIMED = (select(Reader.id, Reader.public_id, Reader.email, Reader.first_name, Reader.last_name,
                   cast(_T.c.picks, Text), _T.c.holdout, Reader.timezone)
            .join(Reader, Reader.id == _T.c.reader_id)
            .where(_IN_BATCH, _T.c.batch_id == bindparam("batch"), _T.c.state == LedgerState.SENDING)
            .order_by(_T.c.reader_id))
_OF_BATCH = and_(_OF_EDITION, _T.c.batch_id == bindparam("batch"), _T.c.state == LedgerState.SENDING)
_CONFIRM = update(_T).where(_OF_BATCH).values(state=LedgerState.SENT, message_id=bindparam("message"),
                                               sent_at=bindparam("now"))
_RELEASE = update(_T).where(_OF_BATCH).values(state=LedgerState.PLANNED, batch_id=None, sending_at=None,
                                               reason=_NOT_HELD)
_RELEASE_READER = _RELEASE.where(_T.c.reader_id == bindparam("rid"))
_CONFIRM_READER = (update(_T).where(_OF_BATCH, _T.c.reader_id == bindparam("rid"))
                   .values(state=LedgerState.SENT, message_id=bindparam("mid"), sent_at=bindparam("now")))
_FAIL_READER = (update(_T).where(_OF_BATCH, _T.c.reader_id == bindparam("rid"))
                .values(state=LedgerState.FAILED, reason=bindparam("why")))
# A reader is planned again only from nothing: sending may be in an inbox, sent is, failed cannot be sent.
_DONE = (LedgerState.SENDING, LedgerState.SENT, LedgerState.FAILED)


@dataclass(frozen=True)
class PlannedEntry:
    """One reader's chosen sections, before anything is sent."""

    reader_id: int
    variant_id: str
    picks: list[list[str]]  # [[section_id, reason], ...]
    holdout: bool = False


class PlannedBatch(NamedTuple):
    """Up to `readers` planned readers of one variant: those with ids from `first_reader` to `last_reader`.

    Three numbers and a name, whatever the batch's size: batches travel between tasks and
    processes, and a send of a million readers never holds a million ids to describe them.
    """

    variant_id: str
    first_reader: int
    last_reader: int
    readers: int


@dataclass(frozen=True)
class ClaimedEntry:
    """A ledger entry claimed by a batch, with what the transport needs of the reader."""

    reader_id: int
    public_id: str
    email: str
    first_name: str
    last_name: str
    picks: list[list[str]]
    holdout: bool
    timezone: str = ""  # the reader's declared IANA zone: event times are shown in it


@dataclass(frozen=True)
class UnconfirmedBatch:
    """A batch handed to the transport and never confirmed: it may or may not have been sent."""

    batch_id: str
    readers: int
    since: dt.datetime
    transport: str | None
    reason: str | None = None  # what reconciliation said of it so far (held), if anything

    @property
    def held(self) -> bool:
        """Whether reconciliation holds it: no event of its own, and none showing the webhook working then."""
        return self.reason == HELD


@dataclass(frozen=True)
class FailedReader:
    """A reader the provider refused for this edition, and its reason."""

    reader_id: int
    email: str
    reason: str


class SendLedger:
    """The ledger of one edition."""

    def __init__(self, db: Database, edition_id: str):
        self.db = db
        self.edition_id = edition_id

    def record_sections(self, edition: Edition) -> None:
        """Keep each section's kind, title and topics, for learning and reports after the send."""
        rows = [{"edition_id": self.edition_id, "section_id": s.id, "position": i, "kind": s.kind, "title": s.title,
                 "topics": list(s.topics), "pinned": s.pinned} for i, s in enumerate(edition.sections)]
        with self.db.session() as session:
            upsert_rows(session.connection(), EditionSection.__table__, rows, ["edition_id", "section_id"],
                        ["position", "kind", "title", "topics", "pinned"])

    def _to_plan(self, audience_id: int, between: tuple[int, int] | None = None):
        # NOT EXISTS looks each reader up by the ledger's primary key: a NOT IN (...) list of the
        # edition's sent readers was rebuilt for every chunk, reading the whole edition each time.
        done = select(SendLedgerEntry.reader_id).where(
            SendLedgerEntry.edition_id == self.edition_id, SendLedgerEntry.reader_id == Reader.id,
            SendLedgerEntry.state.in_(_DONE))
        readers = select(Reader.id).where(Reader.audience_id == audience_id, sendable())
        if between is not None:
            # The range on both sides, though the join implies it: PostgreSQL's estimate for the
            # ledger's rows comes from statistics taken before the send filled it, so it merges
            # the chunk's readers with every ledger row of the edition, and a chunk's read grew
            # with the readers planned before it (a send's planning grew with the square of its
            # audience). Bounded, it reads the chunk's range of the primary key and no more.
            readers = readers.where(Reader.id.between(*between))
            done = done.where(SendLedgerEntry.reader_id.between(*between))
        return readers.where(~done.exists()).order_by(Reader.id)

    def readers_to_plan(self, audience_id: int, reader_ids: Sequence[int] | None = None, *,
                        between: tuple[int, int] | None = None) -> list[int]:
        """Sendable readers of the audience not yet sending or sent for this edition (of `reader_ids`,
        or with ids in `between`, both ends included)."""
        query = self._to_plan(audience_id, between)
        if reader_ids is not None:
            query = query.where(Reader.id.in_(list(reader_ids)))
        with self.db.transaction() as connection:
            return list(connection.execute(query).scalars())

    def plan_chunks(self, audience_id: int, size: int, *, limit: int | None = None) -> list[tuple[int, int]]:
        """The readers to plan (the first `limit` of them) as ranges of ids holding at most `size` each.

        Streamed: the send of a million readers keeps a few hundred pairs, not a million ids.
        """
        chunks: list[tuple[int, int]] = []
        count = 0
        with self.db.transaction() as connection:
            query = self._to_plan(audience_id).execution_options(yield_per=10_000)
            for reader_id in connection.execute(query).scalars():
                if limit is not None and count >= limit:
                    break
                if count % size == 0:
                    chunks.append((reader_id, reader_id))
                else:
                    chunks[-1] = (chunks[-1][0], reader_id)
                count += 1
        return chunks

    def record_plan(self, audience_id: int, entries: Sequence[PlannedEntry]) -> None:
        """Store (or refresh) the plan of readers not yet claimed by a batch."""
        now = utcnow()
        # Stored in (variant, reader) order: a batch is one variant's readers, so its rows of this
        # chunk sit side by side and claiming and confirming it rewrites fewer pages.
        rows = [{"edition_id": self.edition_id, "reader_id": e.reader_id, "audience_id": audience_id,
                 "variant_id": e.variant_id, "picks": e.picks, "holdout": e.holdout,
                 "state": LedgerState.PLANNED, "planned_at": now}
                for e in sorted(entries, key=lambda e: (e.variant_id, e.reader_id))]
        with self.db.write_transaction() as connection:
            if connection.dialect.name == "postgresql":
                _copy_plan(connection, rows)
                return
            upsert_rows(connection, _T, rows, ["edition_id", "reader_id"],
                        ["variant_id", "picks", "holdout", "planned_at"],
                        where=_T.c.state == LedgerState.PLANNED)

    def entries(self, reader_ids: Sequence[int] | None = None) -> list[PlannedEntry]:
        """What was chosen for each reader of this edition (any state), in reader order."""
        query = (select(_T.c.reader_id, _T.c.variant_id, _T.c.picks, _T.c.holdout)
                 .where(_T.c.edition_id == self.edition_id).order_by(_T.c.reader_id))
        found: list[PlannedEntry] = []
        with self.db.session() as session:
            for part in id_chunks(list(reader_ids)) if reader_ids is not None else [None]:
                scoped = query if part is None else query.where(_T.c.reader_id.in_(part))
                found += [PlannedEntry(r, v, list(p or []), bool(h)) for r, v, p, h in session.execute(scoped)]
        return sorted(found, key=lambda entry: entry.reader_id)

    def planned_batches(self, size: int, between: tuple[int, int] | None = None) -> list[PlannedBatch]:
        """Planned readers (with ids in `between`, if given) by variant, in batches of at most `size`."""
        query = (select(SendLedgerEntry.variant_id, SendLedgerEntry.reader_id)
                 .where(SendLedgerEntry.edition_id == self.edition_id, SendLedgerEntry.state == LedgerState.PLANNED)
                 .order_by(SendLedgerEntry.variant_id, SendLedgerEntry.reader_id))
        if between is not None:
            query = query.where(SendLedgerEntry.reader_id.between(*between))
        batches: list[PlannedBatch] = []
        variant, first, last, count = None, 0, 0, 0
        with self.db.transaction() as connection:
            # Streamed, not buffered: a million planned readers must not be held as rows at once.
            for variant_id, reader_id in connection.execute(query.execution_options(yield_per=10_000)):
                if variant_id != variant or count >= size:
                    if count:
                        batches.append(PlannedBatch(variant, first, last, count))
                    variant, first, count = variant_id, reader_id, 0
                last = reader_id
                count += 1
        if count:
            batches.append(PlannedBatch(variant, first, last, count))
        return batches

    def claim(self, batch: PlannedBatch, batch_id: str, transport: str) -> tuple[list[ClaimedEntry], int]:
        """Move the batch's planned entries to `sending` under `batch_id`; returns those this call
        claimed (in reader order, at most `batch.readers`), and how many were skipped.

        Readers who unsubscribed or were suppressed since planning are marked skipped instead.
        Entries another process claimed first, or is claiming now, are left to it.
        """
        found = {"edition": self.edition_id, "variant": batch.variant_id, "first": batch.first_reader,
                 "last": batch.last_reader}
        skipped = 0
        with self.db.write_transaction() as connection:
            claim = {**found, "size": batch.readers, "batch": batch_id, "transport": transport, "now": utcnow()}
            if connection.dialect.name == "postgresql":
                return _claim_in_one_statement(connection, claim)
            # SQLite: one writer at a time, and this process's writers queue on db.write_transaction
            gone = list(connection.execute(_GONE, found).scalars())
            for part in id_chunks(gone):
                skipped += connection.execute(_SKIP, {"edition": self.edition_id, "ids": part}).rowcount
            connection.execute(_CLAIM, claim)
            rows = connection.execute(_CLAIMED, {**found, "batch": batch_id}).all()
        return _claimed_entries(rows), skipped

    def confirm(self, batch_id: str, message_id: str | None, per_reader: dict[int, str] | None = None,
                refused: dict[int, str] | None = None) -> None:
        """Mark a batch sent, with the transport's message id(s); readers in `refused` (reader id ->
        the provider's reason) are marked failed instead, in the same transaction."""
        now = utcnow()
        batch = {"edition": self.edition_id, "batch": batch_id, "now": now}
        with self.db.write_transaction() as connection:
            if connection.dialect.name == "postgresql":
                # The claim was committed durably before the transport was called; this commit
                # need not wait for its flush to disk (half a batch's time on PostgreSQL). A
                # server crash in the next moment loses it and leaves the batch `sending`:
                # reconciliation settles it from SendGrid's events, as after a crash mid-send.
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            if refused:
                connection.execute(_FAIL_READER, [{**batch, "rid": r, "why": why[:2000]} for r, why in refused.items()])
            if per_reader:
                connection.execute(_CONFIRM_READER, [{**batch, "rid": r, "mid": m} for r, m in per_reader.items()])
            connection.execute(_CONFIRM, {**batch, "message": message_id})

    def fail(self, batch_id: str, refused: dict[int, str]) -> None:
        """Mark readers of a claimed batch failed (reader id -> reason): they cannot be sent as they are."""
        if not refused:
            return
        batch = {"edition": self.edition_id, "batch": batch_id}
        with self.db.write_transaction() as connection:
            connection.execute(_FAIL_READER, [{**batch, "rid": r, "why": why[:2000]} for r, why in refused.items()])

    def failed(self, limit: int = 50) -> list[FailedReader]:
        """The first `limit` readers refused for this edition, with the reason, in reader order."""
        with self.db.session() as session:
            rows = session.execute(
                select(_T.c.reader_id, Reader.email, _T.c.reason).join(Reader, Reader.id == _T.c.reader_id)
                .where(_T.c.edition_id == self.edition_id, _T.c.state == LedgerState.FAILED)
                .order_by(_T.c.reader_id).limit(limit)).all()
        return [FailedReader(r, e, why or "") for r, e, why in rows]

    def reasons(self) -> dict[tuple[str, str], int]:
        """Readers per (state, reason) for entries that carry a reason (refusals, reconciliation)."""
        with self.db.session() as session:
            rows = session.execute(select(_T.c.state, _T.c.reason, func.count())
                                   .where(_T.c.edition_id == self.edition_id, _T.c.reason.is_not(None))
                                   .group_by(_T.c.state, _T.c.reason)).all()
        return {(state, reason): count for state, reason, count in rows}

    def release_readers(self, batch_id: str, reader_ids: Sequence[int]) -> None:
        """Put these readers of a claimed batch, not handed to the transport, back to planned (to be planned again)."""
        if not reader_ids:
            return
        batch = {"edition": self.edition_id, "batch": batch_id}
        with self.db.write_transaction() as connection:
            connection.execute(_RELEASE_READER, [{**batch, "rid": r} for r in reader_ids])

    def release(self, batch_id: str) -> int:
        """Put a batch that was certainly not delivered back to planned; returns how many readers."""
        with self.db.write_transaction() as connection:
            return connection.execute(_RELEASE, {"edition": self.edition_id, "batch": batch_id}).rowcount

    def unconfirmed(self) -> list[UnconfirmedBatch]:
        """Batches stuck in `sending`: handed to the transport, never confirmed."""
        with self.db.session() as session:
            rows = session.execute(
                select(_T.c.batch_id, func.count(), func.min(_T.c.sending_at), func.min(_T.c.transport),
                       func.max(_T.c.reason))
                .where(_T.c.edition_id == self.edition_id, _T.c.state == LedgerState.SENDING)
                .group_by(_T.c.batch_id).order_by(_T.c.batch_id)).all()
        return [UnconfirmedBatch(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Readers per state for this edition."""
        with self.db.session() as session:
            found = dict(session.execute(select(_T.c.state, func.count()).where(_T.c.edition_id == self.edition_id)
                                         .group_by(_T.c.state)).all())
        return {state: found.get(state, 0) for state in LedgerState.ALL}

    def variants(self) -> int:
        """Distinct variants planned or sent for this edition."""
        with self.db.session() as session:
            return session.scalar(select(func.count(func.distinct(_T.c.variant_id)))
                                  .where(_T.c.edition_id == self.edition_id)) or 0


_MERGE_PLAN = text("""INSERT INTO send_ledger (edition_id, reader_id, audience_id, variant_id, picks, holdout, state,
        planned_at)
    SELECT :edition, reader_id, :audience, variant_id, CAST(picks AS JSON), holdout, :state, :now
    FROM plan_rows ORDER BY variant_id, reader_id
    ON CONFLICT (edition_id, reader_id) DO UPDATE SET variant_id = excluded.variant_id, picks = excluded.picks,
        holdout = excluded.holdout, planned_at = excluded.planned_at
    WHERE send_ledger.state = :state""")


def _copy_plan(connection: Connection, rows: Sequence[dict]) -> None:
    """PostgreSQL: a chunk's plan COPYed into a temporary table and merged in one statement, the
    same upsert as `upsert_rows` (an entry already claimed keeps its plan) without a statement of
    thousands of placeholders for psycopg to parse per 500 rows."""
    if not rows:
        return
    connection.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS plan_rows (reader_id BIGINT NOT NULL,"
                               " variant_id TEXT NOT NULL, picks TEXT NOT NULL, holdout BOOLEAN NOT NULL)"
                               " ON COMMIT DELETE ROWS")
    cursor = connection.connection.driver_connection.cursor()
    with cursor, cursor.copy("COPY plan_rows (reader_id, variant_id, picks, holdout) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((row["reader_id"], row["variant_id"], orjson.dumps(row["picks"]).decode(), row["holdout"]))
    first = rows[0]
    connection.execute(_MERGE_PLAN, {"edition": first["edition_id"], "audience": first["audience_id"],
                                     "state": LedgerState.PLANNED, "now": first["planned_at"]})


# PostgreSQL, where several processes claim at once: a batch's claim in one statement, one round
# trip instead of five. `batch` locks the batch's planned rows, skipping those another
# transaction is claiming, so that two claims never wait for each other nor take the same reader
# (MATERIALIZED: PostgreSQL may run a `LIMIT ... FOR UPDATE SKIP LOCKED` subquery more than once
# in one statement and claim more than LIMIT rows; a materialized CTE runs once). It reads what
# the claim returns of each reader there, once: `claimed` returns it from its FROM list (joining
# the CTE back was a nested loop of batch x batch rows on a fresh ledger). `gone` marks skipped
# those who may no longer be sent to, `claimed` moves the others to sending: apart, as one
# statement may update a row only once. The last row, with no reader id, carries how many were
# skipped. The batch's range (`_IN_BATCH`), the columns returned (`_CLAIMED`'s) and who may be
# sent to (`sendable()`) are those definitions compiled, not copies of them in the statement's
# text, so the claim can never drift from SQLite's claim nor from the planner's rule.
_PG = PGDialect(paramstyle="named")  # no driver's casts after the names: text() must see `:edition`
_SENDABLE = str(sendable().compile(dialect=_PG, compile_kwargs={"literal_binds": True}))
_IN_BATCH_SQL = str(_IN_BATCH.compile(dialect=_PG))
_RETURNED = _CLAIMED.selected_columns
_BATCH_COLUMNS = ", ".join(f"{column.compile(dialect=_PG)} AS {name}" for name, column in _RETURNED.items())
_CLAIM_IN_ONE = text(f"""WITH batch AS MATERIALIZED (
        SELECT send_ledger.reader_id, {_BATCH_COLUMNS}, ({_SENDABLE}) AS sendable
        FROM send_ledger JOIN readers ON readers.id = send_ledger.reader_id
        WHERE {_IN_BATCH_SQL} AND send_ledger.state = :planned
        ORDER BY send_ledger.reader_id LIMIT :size FOR UPDATE OF send_ledger SKIP LOCKED),
    gone AS (
        UPDATE send_ledger SET state = :skipped FROM batch
        WHERE send_ledger.edition_id = :edition AND send_ledger.reader_id = batch.reader_id AND NOT batch.sendable
            AND send_ledger.state = :planned
        RETURNING send_ledger.reader_id),
    claimed AS (
        UPDATE send_ledger SET state = :sending, batch_id = :batch, transport = :transport, sending_at = :now
        FROM batch WHERE send_ledger.edition_id = :edition AND send_ledger.reader_id = batch.reader_id
            AND batch.sendable AND send_ledger.state = :planned
        RETURNING {", ".join(f"batch.{name}" for name in _RETURNED.keys())})
    SELECT * FROM claimed
    UNION ALL SELECT {"NULL, " * (len(_RETURNED) - 1)}CAST(count(*) AS TEXT) FROM gone""")


def _claim_in_one_statement(connection: Connection, claim: dict) -> tuple[list[ClaimedEntry], int]:
    """PostgreSQL: claim a batch with `_CLAIM_IN_ONE`; returns the claimed entries in reader order and the skipped count."""
    rows = connection.execute(_CLAIM_IN_ONE, {**claim, "planned": LedgerState.PLANNED, "sending": LedgerState.SENDING,
                                              "skipped": LedgerState.SKIPPED}).all()
    skipped = next(int(row[-1]) for row in rows if row[0] is None)
    return _claimed_entries(sorted((row for row in rows if row[0] is not None), key=lambda row: row[0])), skipped


def _claimed_entries(rows: Sequence) -> list[ClaimedEntry]:
    """Claimed rows as entries; picks come as their stored text, often shared by a batch's readers: each is parsed once."""
    parsed: dict[str, list] = {}
    claimed = []
    for reader_id, public_id, email, first_name, last_name, picks, holdout, timezone in rows:
        if picks not in parsed:
            parsed[picks] = orjson.loads(picks)
        claimed.append(ClaimedEntry(reader_id, public_id, email, first_name, last_name, parsed[picks],
                                    bool(holdout), timezone or ""))
    return claimed
