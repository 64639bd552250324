"""Opening the database: engine, sessions, and migrations that apply themselves on first use."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import ConfigurationError

__all__ = ["Database", "open_database", "upgrade_database", "alembic_config"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for `url`, with no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # A send touches rows all over the ledger: checkpoint (and fsync) every ~80 MB of WAL, not every 4 MB,
    # and keep 16 MB of hot pages per connection. Durability is unchanged: WAL + synchronous=NORMAL survives a crash.
    cursor.execute("PRAGMA wal_autocheckpoint=20000")
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.close()


def _json_text(value) -> str:
    return orjson.dumps(value).decode()


# JSON columns (a ledger entry's picks, an event's payload) are written and read for every
# reader of a send: orjson does both several times faster than the standard library.
# hide_parameters: a database error's text never carries the values bound to its statement
# (readers' addresses and names, raw events), wherever that text ends up (logs, a terminal).
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads, "hide_parameters": True}


def create_database_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder made, WAL and foreign keys."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several kinds here
        # Neither the URL nor SQLAlchemy's message is repeated: both may hold the password.
        raise ConfigurationError("READERFIRST_DATABASE_URL is not a database URL;"
                                 " use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB") from None
    if parsed.drivername.split("+")[0] == "postgres":
        # Heroku and many hosts hand out postgres:// URLs, a name SQLAlchemy 1.4 dropped.
        parsed = parsed.set(drivername="postgresql" + parsed.drivername[len("postgres"):])
    if parsed.get_backend_name() == "sqlite":
        # A `file:` URI (uri=true, e.g. mode=ro) names its file itself: no folder to make for it.
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30}, **_JSON)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        try:
            import psycopg  # noqa: F401

            parsed = parsed.set(drivername="postgresql+psycopg")
        except ImportError:
            pass
    return create_engine(parsed, pool_pre_ping=True, **_JSON)


def upgrade_database(engine: Engine, url: str) -> list[str]:
    """Apply every migration not yet applied; returns the revisions that were applied."""
    config = alembic_config(url)
    script = ScriptDirectory.from_config(config)
    heads = set(script.get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return []
    pending = [rev.revision for rev in script.iterate_revisions("heads", tuple(current) or "base")]
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return sorted(pending)


@dataclass
class Database:
    """An open database: its URL, engine and a session factory."""

    url: str
    engine: Engine

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a connection that finds the lock taken sleeps
        # (1, 2, 5, 10 ms...) before it looks again. Threads of this process that write often
        # and briefly (a send's claims and confirmations) queue on this lock instead, and the
        # next one wakes as soon as the last is done.
        self._writer = threading.Lock() if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in one transaction (committed on success): for statements run per chunk."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """Like `transaction`, for short writes made many times by several threads (per batch of a send)."""
        with self._writer, self.engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open the database at `url`, applying pending migrations unless told not to."""
    engine = create_database_engine(url)
    if migrate:
        upgrade_database(engine, url)
    return Database(url=url, engine=engine)
