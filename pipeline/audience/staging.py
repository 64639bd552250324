"""An import's readers held in temporary tables of its transaction, then merged in a few statements.

Rows go in a batch at a time (PostgreSQL's COPY, SQLite's executemany), so an import of a
million readers holds one batch in memory, never the file or the audience. Duplicate addresses
are found by the staging table's unique index, not a set in memory. The merge is a handful of
set-based statements: update the readers the audience has, insert the others, restate declared
interests and needs. All of it happens inside the caller's transaction: a refused import rolls
back and leaves nothing, the temporary tables included.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import orjson
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Date, DateTime, bindparam, text

from pipeline.audience.mailchimp import NONSUBSCRIBED
from pipeline.audience.privacy import forgotten_among
from pipeline.audience.records import ReaderRecord
from pipeline.store.chunks import ANY_OF_LINES, as_lines, id_chunks

__all__ = ["ImportStaging", "MergeCounts"]

# Statuses only the reader (or their mailbox) can leave; `next_status` in importer.py says the same in Python.
_OPTED_OUT = "('unsubscribed', 'cleaned')"
# The status a re-import gives a reader (NULL: keep theirs). s: the staged row, r: the reader.
_NEW_STATUS = f"""CASE WHEN s.status IS NULL OR s.status = {{r}}.status THEN NULL
     WHEN {{r}}.status IN {_OPTED_OUT} AND s.status IN ('subscribed', '{NONSUBSCRIBED}') THEN NULL
     WHEN s.status = 'subscribed' AND ({{r}}.status <> '{NONSUBSCRIBED}' OR {{r}}.suppressed_reason IS NOT NULL)
     THEN NULL ELSE s.status END"""

_READER_COLUMNS = ("line", "email", "public_id", "first_name", "last_name", "timezone", "status", "tags", "declares",
                   "forgotten")
_TABLES = {
    "import_readers": "line INTEGER NOT NULL, email TEXT NOT NULL, public_id TEXT NOT NULL, first_name TEXT NOT NULL,"
                      " last_name TEXT NOT NULL, timezone TEXT NOT NULL, status TEXT, tags {json},"
                      " declares BOOLEAN NOT NULL, forgotten BOOLEAN NOT NULL",
    "import_interests": "email TEXT NOT NULL, topic TEXT NOT NULL, weight FLOAT NOT NULL",
    "import_needs": "email TEXT NOT NULL, topic TEXT NOT NULL, until DATE NOT NULL",
}
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
# Staged rows joined to the audience's reader of the same address.
_MATCH = "JOIN readers r ON r.audience_id = :audience AND r.email = s.email"


@dataclass
class MergeCounts:
    """What a merge did: readers created and updated, status changes refused, forgotten rows left out."""

    created: int = 0
    updated: int = 0
    kept_unsubscribed: int = 0
    forgotten: int = 0


class ImportStaging:
    """The staging tables of one import, on one connection inside its transaction."""

    def __init__(self, connection: Connection, audience_id: int) -> None:
        self.connection = connection
        self.audience_id = audience_id
        self.postgres = connection.dialect.name == "postgresql"
        for name, columns in _TABLES.items():
            if self.postgres:
                # Dropped at commit or rollback: nothing of an import outlives its transaction.
                connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns.format(json='JSON')}) "
                                           "ON COMMIT DROP")
            else:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
                connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns.format(json='TEXT')})")
        connection.exec_driver_sql("CREATE UNIQUE INDEX ix_import_readers_email ON import_readers (email)")

    def __enter__(self) -> ImportStaging:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.postgres:
            # SQLite runs DDL outside the transaction: drop the tables, or a pooled connection
            # would keep a whole file's rows until the next import.
            for name in _TABLES:
                self.connection.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")

    def first_lines(self, emails: Sequence[str]) -> dict[str, int]:
        """Of `emails`, those already staged, with the line that brought them."""
        found: dict[str, int] = {}
        if self.postgres:
            rows = self.connection.exec_driver_sql(
                f"SELECT email, line FROM import_readers WHERE email = {ANY_OF_LINES}", (as_lines(emails),))
            return dict(rows.all())
        for part in id_chunks(list(emails)):
            rows = self.connection.exec_driver_sql(
                "SELECT email, line FROM import_readers WHERE email IN (SELECT value FROM json_each(?))",
                (json.dumps(list(part)),))
            found.update(rows.all())
        return found

    def add(self, records: Sequence[ReaderRecord]) -> None:
        """Stage `records` (valid, addresses not yet staged), marking those of forgotten people."""
        if not records:
            return
        forgotten = forgotten_among(self.connection, [r.email for r in records])
        readers = [(r.line, r.email, public_id, r.first_name, r.last_name, r.timezone, r.status,
                    None if r.tags is None else orjson.dumps(r.tags).decode(), r.interests is not None, r.email in forgotten)
                   for r, public_id in zip(records, _public_ids(len(records)), strict=True)]
        interests = [(r.email, topic, weight) for r in records if r.interests for topic, weight in r.interests.items()]
        needs = [(r.email, topic, until) for r in records for topic, until in r.needs.items()]
        self._write("import_readers", _READER_COLUMNS, readers)
        self._write("import_interests", ("email", "topic", "weight"), interests)
        self._write("import_needs", ("email", "topic", "until"), needs)

    def _write(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        if self.postgres:
            # COPY: one stream per batch, several times faster than INSERTs of the same rows.
            cursor = self.connection.connection.driver_connection.cursor()
            with cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        if table == "import_needs":  # SQLite keeps dates as SQLAlchemy writes them
            as_text = Date().dialect_impl(self.connection.dialect).bind_processor(self.connection.dialect)
            rows = [(email, topic, as_text(until)) for email, topic, until in rows]
        marks = ", ".join("?" * len(columns))
        self.connection.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def merge(self, now: dt.datetime) -> MergeCounts:
        """Merge the staged rows into the audience: update, insert, restate interests and needs."""
        run = self._run
        if self.postgres:
            # Autovacuum never sees temporary tables: without statistics the planner would join a
            # million staged rows as if they were a handful.
            self.connection.exec_driver_sql(f"ANALYZE {', '.join(_TABLES)}")
        counts = MergeCounts()
        counts.forgotten = self._scalar("SELECT count(*) FROM import_readers WHERE forgotten")
        counts.updated, counts.kept_unsubscribed = self.connection.execute(text(
            f"SELECT count(*), coalesce(sum(CASE WHEN s.status IS NOT NULL AND s.status <> r.status"
            f" AND ({_NEW_STATUS.format(r='r')}) IS NULL THEN 1 ELSE 0 END), 0) FROM import_readers s {_MATCH}"
            " WHERE NOT s.forgotten"), {"audience": self.audience_id}).one()
        # An empty cell changes nothing; tags are restated when the file has the column filled.
        run(f"""UPDATE readers SET
                first_name = CASE WHEN s.first_name <> '' THEN s.first_name ELSE readers.first_name END,
                last_name = CASE WHEN s.last_name <> '' THEN s.last_name ELSE readers.last_name END,
                timezone = CASE WHEN s.timezone <> '' THEN s.timezone ELSE readers.timezone END,
                tags = coalesce(s.tags, readers.tags),
                status = coalesce(({_NEW_STATUS.format(r='readers')}), readers.status),
                updated_at = :now
            FROM import_readers s
            WHERE readers.audience_id = :audience AND readers.email = s.email AND NOT s.forgotten""", now)
        empty_tags = "CAST('[]' AS JSON)" if self.postgres else "'[]'"
        counts.created = run(f"""INSERT INTO readers (audience_id, public_id, email, first_name, last_name, timezone,
                status, tags, soft_bounces, created_at, updated_at)
            SELECT :audience, s.public_id, s.email, s.first_name, s.last_name, s.timezone,
                coalesce(s.status, 'subscribed'), coalesce(s.tags, {empty_tags}), 0, :now, :now
            FROM import_readers s
            WHERE NOT s.forgotten
              AND NOT EXISTS (SELECT 1 FROM readers r WHERE r.audience_id = :audience AND r.email = s.email)
            ORDER BY s.line""", now)
        if self.postgres and counts.created:
            # The readers just inserted are in no statistics yet: planned as the handful the
            # statistics say, the joins below became nested loops (quadratic: a million-reader
            # first import never finished its interests).
            self.connection.exec_driver_sql("ANALYZE readers")
        # The file restates declared interests; learned columns are left as they are.
        run(f"""UPDATE reader_interests SET declared_weight = NULL
            WHERE declared_weight IS NOT NULL AND reader_id IN (
                SELECT r.id FROM import_readers s {_MATCH} WHERE s.declares AND NOT s.forgotten)""", now)
        # `WHERE true`: SQLite's parser needs it between INSERT ... SELECT and ON CONFLICT.
        run(f"""INSERT INTO reader_interests (reader_id, topic, declared_weight, learned_clicks, learned_exposures,
                opted_out)
            SELECT r.id, s.topic, s.weight, 0, 0, false FROM import_interests s {_MATCH} WHERE true
            ON CONFLICT (reader_id, topic) DO UPDATE SET declared_weight = excluded.declared_weight""", now)
        run(f"""INSERT INTO reader_needs (reader_id, topic, until, source)
            SELECT r.id, s.topic, s.until, 'import' FROM import_needs s {_MATCH} WHERE true
            ON CONFLICT (reader_id, topic) DO UPDATE SET until = excluded.until, source = excluded.source""", now)
        return counts

    def _run(self, sql: str, now: dt.datetime) -> int:
        statement = text(sql)
        params: dict[str, object] = {"audience": self.audience_id}
        if ":now" in sql:  # typed, so that SQLite gets the text form SQLAlchemy writes and reads back
            statement, params["now"] = statement.bindparams(bindparam("now", type_=DateTime())), now
        return self.connection.execute(statement, params).rowcount

    def _scalar(self, sql: str) -> int:
        return int(self.connection.exec_driver_sql(sql).scalar() or 0)


def _public_ids(count: int) -> list[str]:
    """`count` new public ids, each the hex of a random (version 4) UUID, as `uuid.uuid4().hex` but faster."""
    digits = os.urandom(16 * count).hex()
    # A version 4 UUID: the 13th digit is 4, the 17th one of 8, 9, a, b; the other 122 bits are random.
    return [f"{digits[i:i + 12]}4{digits[i + 13:i + 16]}{_VARIANT[digits[i + 16]]}{digits[i + 17:i + 32]}"
            for i in range(0, 32 * count, 32)]
