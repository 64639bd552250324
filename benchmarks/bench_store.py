"""The database a data benchmark fills: a temporary SQLite file or a fresh PostgreSQL schema.

Both are migrated by readerfirst, then filled directly, bypassing the pipeline: sqlite3
`executemany` for SQLite, `COPY ... FROM STDIN` (psycopg 3 `cursor.copy`) for PostgreSQL.
Rows are written as they are generated, so ten million events never sit in one list. A
PostgreSQL schema is dropped when the benchmark ends, whatever happened.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import uuid
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["BenchStore", "bench_store", "add_store_arguments", "store_url", "peak_rss_mb", "dumps", "edition_sections",
           "server_settings",
           "write_audience", "write_sections", "EditionEvents", "LEDGER_COLUMNS", "EVENT_COLUMNS"]

_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite
_ROWS_PER_CALL = 10_000  # rows handed to executemany at once: bounded memory, few calls


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """`--url` (default READERFIRST_TEST_POSTGRES_URL) and `--sqlite`."""
    parser.add_argument("--url", default=os.environ.get("READERFIRST_TEST_POSTGRES_URL"),
                        help="PostgreSQL to make a fresh schema in (default: READERFIRST_TEST_POSTGRES_URL);"
                             " without one, a temporary SQLite file")
    parser.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file even when a URL is set")


def store_url(args: argparse.Namespace) -> str | None:
    """The PostgreSQL URL the arguments ask for, or None for SQLite."""
    return None if args.sqlite else args.url or None


def dumps(value: object) -> str:
    """JSON text made by orjson: json.dumps took a tenth of the seeding time at 10M events."""
    import orjson

    return orjson.dumps(value).decode()


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The PostgreSQL settings that move these benchmarks' figures most: printed with them, since a
# server tuned as docs/scale.md says and one on the defaults give different seconds.
SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "effective_cache_size", "synchronous_commit")


def server_settings(postgres_url: str | None) -> str:
    """One line naming the server and its SETTINGS, e.g. `PostgreSQL 15.8; shared_buffers 128MB, ...`."""
    if not postgres_url:
        return f"SQLite {sqlite3.sqlite_version}"
    from pipeline.store import open_database

    database = open_database(postgres_url, migrate=False)
    try:
        with database.engine.connect() as connection:
            version = connection.exec_driver_sql("SHOW server_version").scalar()
            shown = [f"{name} {connection.exec_driver_sql(f'SHOW {name}').scalar()}" for name in SETTINGS]
    finally:
        database.dispose()
    return f"PostgreSQL {version}; {', '.join(shown)}"


class BenchStore:
    """A migrated benchmark database: `url` for readerfirst, `write` to fill a table fast."""

    def __init__(self, url: str, postgres: bool) -> None:
        self.url, self.postgres = url, postgres
        self.name = "PostgreSQL" if postgres else "SQLite"
        if postgres:
            import psycopg

            # libpq takes the same URL, search_path option included; the SQLAlchemy driver name it does not.
            self.connection: Any = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        else:
            self.connection = sqlite3.connect(url.removeprefix("sqlite:///"))
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=OFF")

    def stamp(self, moment: dt.datetime) -> Any:
        """A DateTime column's value as `write` takes it (SQLite: the text SQLAlchemy stores)."""
        return moment if self.postgres else moment.strftime(_STAMP)

    def write(self, table: str, columns: str, rows: Iterable[tuple]) -> int:
        """Append `rows` (values in `columns` order) to `table` and commit; returns how many."""
        written = 0
        if self.postgres:
            with self.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    written += 1
        else:
            sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(columns.split(',')))})"
            chunk: list[tuple] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) == _ROWS_PER_CALL:
                    self.connection.executemany(sql, chunk)
                    written += len(chunk)
                    chunk.clear()
            self.connection.executemany(sql, chunk)
            written += len(chunk)
        self.connection.commit()
        return written

    @contextmanager
    def indexes_rebuilt(self, *tables: str) -> Iterator[None]:
        """Drop the tables' plain (not unique) indexes for a bulk load, and build them again after it.

        As a PostgreSQL bulk load is done: building an index once is much faster than keeping it
        up to date row by row (10M events would take minutes more). The result is the same index.
        SQLite keeps its indexes.
        """
        if not self.postgres:
            yield
            return
        made = self.execute("SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                            "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema() "
                            "AND t.relname = ANY(%s) AND NOT x.indisunique AND NOT x.indisprimary", (list(tables),))
        for name, _ in made:
            self.execute(f"DROP INDEX {name}")
        try:
            yield
        finally:
            for _, definition in made:
                self.execute(definition)

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one statement (`%s` marks work on both) and commit; its rows, if any."""
        cursor = self.connection.cursor()
        cursor.execute(sql if self.postgres else sql.replace("%s", "?"), params)
        rows = cursor.fetchall() if cursor.description else []
        cursor.close()
        self.connection.commit()
        return rows

    def settle(self, table: str = "") -> None:
        """What autovacuum does after a bulk load (visibility map, statistics), for `table` or all."""
        if self.postgres:
            self.connection.autocommit = True
            self.connection.execute(f"VACUUM ANALYZE {table}")
            self.connection.autocommit = False
        else:
            self.connection.execute(f"ANALYZE {table}")
            self.connection.commit()

    def size_mb(self, skip: tuple[str, ...] = ()) -> float:
        """Space the database's tables and indexes take, leaving out the tables in `skip`."""
        if self.postgres:
            rows = self.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
                                "AND n.nspname = current_schema() AND NOT c.relname = ANY(%s)", (list(skip),))
            return float(rows[0][0]) / 2**20
        pages = self.execute("SELECT (SELECT page_count FROM pragma_page_count()) "
                             "- (SELECT freelist_count FROM pragma_freelist_count())")[0][0]
        return pages * self.execute("PRAGMA page_size")[0][0] / 2**20

    def close(self) -> None:
        """Close the filling connection (the database stays)."""
        self.connection.close()


@contextmanager
def bench_store(postgres_url: str | None, folder: Path) -> Iterator[BenchStore]:
    """A migrated database: a fresh schema of `postgres_url`, or `folder`/bench.db without one; dropped after."""
    from sqlalchemy import text

    from pipeline.store import open_database

    if not postgres_url:
        url = f"sqlite:///{folder / 'bench.db'}"
        open_database(url).dispose()  # migrations make the schema
        store = BenchStore(url, postgres=False)
        try:
            yield store
        finally:
            store.close()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = open_database(postgres_url, migrate=False)
    with admin.engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}options=-csearch_path%3D{schema}"
        open_database(url).dispose()
        store = BenchStore(url, postgres=True)
        try:
            yield store
        finally:
            store.close()
    finally:
        with admin.engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


# -- what both data benchmarks seed: readers, an edition's sections, its ledger ---------------
EDITION = Path(__file__).resolve().parent.parent / "editions" / "2026-12-07.yaml"
LEDGER_COLUMNS = "edition_id, reader_id, audience_id, variant_id, picks, holdout, state, planned_at, sent_at"
EVENT_COLUMNS = "provider_event_id, event_type, email, reader_id, edition_id, section_id, occurred_at, received_at, raw"


def edition_sections() -> list[tuple[str, list[str], bool]]:
    """The sample edition's sections: (id, topics, pinned)."""
    import yaml

    edition = yaml.safe_load(EDITION.read_text())
    return [(s["id"], list(s.get("topics") or []), bool(s.get("pinned"))) for s in edition["sections"]]


def write_audience(store: BenchStore, readers: int, created: dt.datetime) -> None:
    """Audience 1 with `readers` subscribed readers, ids 1..readers, addresses reader<id>@example.com."""
    stamp = store.stamp(created)
    store.write("audiences", "id, name, created_at", [(1, "bench", stamp)])
    store.write("readers", "id, audience_id, public_id, email, first_name, last_name, timezone, status, tags, "
                "soft_bounces, created_at, updated_at",
                ((rid, 1, f"{rid:032x}", f"reader{rid}@example.com", "", "", "", "subscribed", "[]", 0, stamp, stamp)
                 for rid in range(1, readers + 1)))


def write_sections(store: BenchStore, edition: str, sections: list[tuple[str, list[str], bool]]) -> None:
    """The edition's sections as sent, titled by their ids."""
    store.write("edition_sections", "edition_id, section_id, position, kind, title, topics, pinned",
                [(edition, sid, i, "story", sid, dumps(topics), p) for i, (sid, topics, p) in enumerate(sections)])


class EditionEvents:
    """One edition's generated events in compact arrays (a few bytes each instead of a tuple)."""

    def __init__(self, kinds: tuple[str, ...], sections: list[str]) -> None:
        self.kinds, self.sections = kinds, sections
        self.after, self.reader, self.kind, self.section = array("q"), array("l"), array("b"), array("b")

    def add(self, rid: int, kind: str, after: int, section: str | None) -> None:
        """Keep one event: `after` seconds after the send."""
        self.after.append(after)
        self.reader.append(rid)
        self.kind.append(self.kinds.index(kind))
        self.section.append(self.sections.index(section) if section else -1)

    def __len__(self) -> int:
        return len(self.after)

    def events(self, in_time_order: bool = False, limit: int | None = None) -> Iterator[tuple[int, str, int, str | None]]:
        """(reader, kind, seconds after the send, section) as generated, or by time (ties as generated)."""
        if in_time_order:
            import numpy

            order: Iterable[int] = numpy.argsort(numpy.frombuffer(self.after, dtype=numpy.int64),
                                                 kind="stable").tolist()
        else:
            order = range(len(self.after))
        for count, i in enumerate(order):
            if limit is not None and count >= limit:
                return
            section = self.section[i]
            yield self.reader[i], self.kinds[self.kind[i]], self.after[i], self.sections[section] if section >= 0 else None
