"""Insert-or-update of many rows at once, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["upsert_rows", "insert_ignore_rows"]

_BATCH = 500


def _insert(connection: Connection, table: Table):
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"upsert is not implemented for {dialect}")


def upsert_rows(connection: Connection, table: Table, rows: Sequence[dict], keys: Sequence[str],
                update: Sequence[str], where=None) -> None:
    """Insert `rows`; where `keys` already exist, overwrite only the `update` columns.

    With `where`, an existing row is overwritten only if it matches that condition.
    """
    if not rows:
        return
    for start in range(0, len(rows), _BATCH):
        statement = _insert(connection, table)
        statement = statement.on_conflict_do_update(index_elements=list(keys),
                                                    set_={c: statement.excluded[c] for c in update},
                                                    where=where)
        connection.execute(statement, list(rows[start:start + _BATCH]))


def insert_ignore_rows(connection: Connection, table: Table, rows: Sequence[dict], keys: Sequence[str]) -> None:
    """Insert `rows`, skipping any whose `keys` already exist."""
    if not rows:
        return
    for start in range(0, len(rows), _BATCH):
        statement = _insert(connection, table).on_conflict_do_nothing(index_elements=list(keys))
        connection.execute(statement, list(rows[start:start + _BATCH]))
