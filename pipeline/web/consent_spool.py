"""Reader decisions the database could not take at once, kept on disk until it can.

A reader who clicks "unsubscribe" is told they are unsubscribed; mailbox providers do not
promise to retry a one-click POST, so that answer is a promise we must keep even when the
database is locked or unreachable. The web service then writes the decision to this spool,
one small file each, fsynced (file and folder) before it answers; it is applied to the
database by the web service as soon as the database answers again, and by every send before
it plans or claims readers, so a later send never mails the reader.

Decisions are applied in the order they were made (file names sort by time), each in its own
transaction, and the file is removed only after its transaction committed. Applying one twice
changes nothing: an unsubscribe is idempotent, and a preference save states the whole choice.
One process drains at a time (an exclusive lock on the folder's lock file).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy.exc import SQLAlchemyError

from pipeline.store.database import Database
from pipeline.web.ask_answers import record_answer
from pipeline.web.reader_choices import find_reader, save_preferences, unsubscribe_reader

__all__ = ["ConsentSpool", "DrainReport", "UNSUBSCRIBE", "PREFERENCES", "ASK"]

UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
ASK = "ask"  # an answer to the ask (pipeline/web/ask.py): a need, and the answer counted for its edition
_KINDS = (UNSUBSCRIBE, PREFERENCES, ASK)
_SUFFIX = ".json"
_LOCK = ".lock"

log = logging.getLogger(__name__)


def _fsync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _durable_folder(folder: Path) -> None:
    """Make `folder` and its missing parents, each one's entry fsynced in its parent.

    A decision's own fsyncs (file and folder) keep it only if the folder itself survives a
    power loss: the first decision ever kept creates the folder, and its entry in the parent
    was never flushed.
    """
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        _fsync_folder(path.parent)


@dataclass
class DrainReport:
    """What one drain did: decisions applied, and those left for later (the database refused)."""

    applied: int = 0
    left: int = 0
    unreadable: int = 0


class ConsentSpool:
    """A folder of reader decisions waiting for the database (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def keep(self, kind: str, public_id: str, **details: object) -> Path:
        """Write one decision durably (fsync of the file and the folder) and return its file.

        Raises OSError when it cannot be kept; the caller must then not promise anything.
        """
        _durable_folder(self.folder)
        record = {"kind": kind, "public_id": public_id, "at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
                  **details}
        # Nanoseconds first, so names sort in the order decisions were made; a random tail keeps
        # two decisions of the same nanosecond (two processes) apart.
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        temporary = self.folder / f".{name}.tmp"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(handle, orjson.dumps(record))
            os.fsync(handle)
        finally:
            os.close(handle)
        final = self.folder / f"{name}{_SUFFIX}"
        os.rename(temporary, final)  # a reader of the folder sees the whole file or none
        _fsync_folder(self.folder)
        return final

    def pending(self) -> list[Path]:
        """Decisions not yet applied, oldest first."""
        try:
            with os.scandir(self.folder) as entries:
                return sorted(Path(entry.path) for entry in entries
                              if entry.name.endswith(_SUFFIX) and not entry.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):  # nothing was ever kept there
            return []

    @contextmanager
    def _draining(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / _LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def drain(self, db: Database, *, strict: bool = False) -> DrainReport:
        """Apply every pending decision in order; stop at the first the database refuses.

        The rest stay, and `left` says how many; with `strict` (a send about to plan or claim
        readers) the database's error is raised instead, so nothing is sent meanwhile. A file that is not a decision (hand-edited, truncated) is set aside with a
        `.unreadable` suffix and logged, never applied and never deleted.
        """
        report = DrainReport()
        if not self.pending():  # the common case, checked without taking the lock
            return report
        with self._draining():
            waiting = self.pending()
            for position, path in enumerate(waiting):
                try:
                    apply = _decision(orjson.loads(path.read_bytes()))
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    log.error("set aside an unreadable consent spool file %s", path.name)
                    path.rename(path.with_name(path.name + ".unreadable"))
                    report.unreadable += 1
                    continue
                # Only a file that is not a decision is set aside: any error in applying one
                # leaves it where it is (the database's stops here; anything else is raised).
                try:
                    apply(db)
                except SQLAlchemyError as exc:
                    if strict:
                        raise
                    report.left = len(waiting) - position
                    log.warning("the database cannot take %d waiting reader decisions yet (%s); they are kept",
                                report.left, type(exc).__name__)
                    return report
                path.unlink()
                report.applied += 1
            if report.applied:
                _fsync_folder(self.folder)
        return report


def _decision(record: dict) -> Callable[[Database], None]:
    """The decision a spool file holds, read and checked whole before anything is applied.

    KeyError, TypeError, ValueError or AttributeError when the record is not one.
    """
    kind, public_id = record["kind"], record["public_id"]
    if kind not in _KINDS or not isinstance(public_id, str):
        raise ValueError(f"not a reader decision: {kind!r}")
    at = dt.datetime.fromisoformat(record["at"])
    if kind == UNSUBSCRIBE:
        via = str(record.get("via", "unsubscribe page"))

        def unsubscribe(db: Database) -> None:
            unsubscribe_reader(db, public_id, via=via, now=at)
        return unsubscribe
    if kind == ASK:
        edition_id, topic = str(record["edition_id"]), str(record["topic"])
        until, words = dt.date.fromisoformat(record["until"]), record.get("words")
        words = str(words) if words is not None else None

        def answer(db: Database) -> None:
            reader = find_reader(db, public_id)
            if reader is not None:  # a reader forgotten since has nothing left to record
                record_answer(db, reader.id, edition_id, topic, until, words, now=at)
        return answer
    needs = [(str(topic), dt.date.fromisoformat(until)) for topic, until in record["needs"]]
    offered, checked = [str(t) for t in record["offered"]], [str(t) for t in record["checked"]]
    shown_needs = [str(t) for t in record.get("shown_needs", [])]

    def save(db: Database) -> None:
        reader = find_reader(db, public_id)
        if reader is not None:  # a reader forgotten since has nothing left to save
            save_preferences(db, reader.id, offered=offered, checked=checked, needs=needs, shown_needs=shown_needs,
                             now=at)
    return save
