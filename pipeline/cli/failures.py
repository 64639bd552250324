"""What the CLI says when a command fails: one plain line naming the problem and the fix.

Library exceptions are translated by their class and their error code, never by printing
them: SQLAlchemy's hold the SQL and its parameters (readers' addresses and names), httpx's
and Prefect's hold URLs and stack details a user cannot act on.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError, TransportError

__all__ = ["Failure", "BAD_INPUT", "OUTSIDE", "explain", "debug_requested"]

BAD_INPUT = 2  # the user can fix it: a file, an option, a setting
OUTSIDE = 1  # something the user does not control failed: a server, the network, the disk


@dataclass(frozen=True)
class Failure:
    """An explained failure: the line(s) to print and the exit code."""

    message: str
    code: int


def debug_requested(argv: list[str]) -> bool:
    """True when `--debug` is among `argv` (removed from it) or READERFIRST_DEBUG is set to a true value."""
    found = "--debug" in argv
    while "--debug" in argv:
        argv.remove("--debug")
    return found or os.environ.get("READERFIRST_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def explain(exc: BaseException) -> Failure:
    """The failure a user should read for `exc` (an unknown error says how to see its traceback)."""
    if isinstance(exc, PipelineError):
        # Our own messages name the file, line, field and value, and were written to be shown.
        # A run the send runner reported carries the exit code the runner's own explanation chose.
        code = getattr(exc, "exit_code", None)
        return Failure(str(exc), code if code in (BAD_INPUT, OUTSIDE) else
                       OUTSIDE if isinstance(exc, TransportError) else BAD_INPUT)
    for translate in (_database_failure, _connection_failure, _file_failure):
        failure = translate(exc)
        if failure is not None:
            return failure
    return Failure(f"unexpected {type(exc).__name__}: this is a bug in readerfirst;"
                   " run again with --debug (or READERFIRST_DEBUG=1) for the traceback", OUTSIDE)


def _database_where() -> str:
    """The configured database URL without its password, or a description when settings fail."""
    try:
        from sqlalchemy.engine import make_url

        from pipeline.settings import load_settings

        url = make_url(load_settings().resolved_database_url)
        if url.get_backend_name() == "sqlite" and url.database:
            return url.database.removeprefix("file:")  # the file, as the user knows it
        return url.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - the message must not fail while explaining a failure
        return "the database (READERFIRST_DATABASE_URL)"


def _database_failure(exc: BaseException) -> Failure | None:
    try:
        from sqlalchemy import exc as sa
    except ImportError:  # pragma: no cover - a dependency
        return None
    if isinstance(exc, sa.NoSuchModuleError):
        return Failure("READERFIRST_DATABASE_URL names a database SQLAlchemy has no driver for;"
                       " use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB", BAD_INPUT)
    if isinstance(exc, sa.ArgumentError):
        return Failure("READERFIRST_DATABASE_URL is not a database URL;"
                       " use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB", BAD_INPUT)
    if not isinstance(exc, (sa.OperationalError, sa.InterfaceError)):
        return None
    # The driver's own message (never the statement or its parameters) says which case this is.
    reason = str(getattr(exc, "orig", "") or "").lower()
    where = _database_where()
    if "readonly" in reason or "read-only" in reason:
        return Failure(f"the database {where} is read-only: give this user write access to the file and its"
                       " folder, or set READERFIRST_DATABASE_URL to another database", BAD_INPUT)
    if "unable to open" in reason:
        return Failure(f"cannot open the database {where}: check that its folder exists and is writable,"
                       " or set READERFIRST_HOME / READERFIRST_DATABASE_URL", BAD_INPUT)
    if "locked" in reason:
        return Failure(f"the database {where} is locked by another readerfirst process; try again when it"
                       " has finished", OUTSIDE)
    if "password authentication" in reason or "authentication failed" in reason:
        return Failure(f"the database {where} refused the user name or password in READERFIRST_DATABASE_URL",
                       BAD_INPUT)
    if "does not exist" in reason and "database" in reason:
        return Failure(f"the database in {where} does not exist: create it (createdb) or fix"
                       " READERFIRST_DATABASE_URL", BAD_INPUT)
    if any(word in reason for word in ("connection refused", "could not connect", "connection failed",
                                       "timeout", "timed out", "translate host name", "name or service")):
        return Failure(f"cannot reach the database server of {where}: is it running, and are the host and port"
                       " in READERFIRST_DATABASE_URL right?", OUTSIDE)
    return Failure(f"the database {where} failed ({type(exc).__name__}); run again with --debug for details",
                   OUTSIDE)


def _prefect_where() -> str:
    url = os.environ.get("PREFECT_API_URL", "").strip()
    return f"the Prefect server at PREFECT_API_URL={url}" if url else "Prefect's temporary server"


def _connection_failure(exc: BaseException) -> Failure | None:
    try:
        import httpx
    except ImportError:  # pragma: no cover - a dependency
        return None
    chain = _chain(exc)
    if any(isinstance(e, RuntimeError) and "ephemeral Prefect API server" in str(e) for e in chain):
        return Failure("Prefect's temporary server did not start in time (a busy machine?): run again, raise"
                       " PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL", OUTSIDE)
    if any(isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout)) for e in chain) or any(
            type(e).__name__ == "PrefectHTTPStatusError" or "Prefect API" in type(e).__name__ for e in chain):
        return Failure(f"cannot reach {_prefect_where()}: start it (prefect server start) or unset"
                       " PREFECT_API_URL to let readerfirst start a temporary one", OUTSIDE)
    if any(isinstance(e, httpx.TransportError) for e in chain):
        return Failure(f"the connection to {_prefect_where()} failed ({type(exc).__name__});"
                       " try again, or run with --debug for details", OUTSIDE)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or during, innermost last."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _shown_path(filename: object) -> str:
    """A path fit to print: a file named after a reader (outbox, previews) shows as its folder."""
    path = Path(os.fsdecode(filename)) if isinstance(filename, (str, bytes, os.PathLike)) else None
    if path is None:
        return "a file"
    return f"{path.parent}{os.sep}..." if "@" in path.name else str(path)


_FILE_FIXES = {
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder; give a file",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EACCES: "permission denied; choose a place this user can write, or fix the permissions",
    errno.EPERM: "operation not permitted; choose another place",
    errno.EROFS: "read-only file system; choose another place",
    errno.ENOSPC: "the disk is full; free some space and run again",
    errno.EEXIST: "already exists; remove it or choose another name",
}


def _file_failure(exc: BaseException) -> Failure | None:
    if not isinstance(exc, OSError) or exc.errno not in _FILE_FIXES:
        return None
    code = OUTSIDE if exc.errno == errno.ENOSPC else BAD_INPUT
    where = _shown_path(exc.filename) if exc.filename is not None else "a file readerfirst needed"
    return Failure(f"{where}: {_FILE_FIXES[exc.errno]}", code)
