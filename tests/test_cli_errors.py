"""A newcomer's mistakes, walked through the installed `readerfirst` script: one plain line each, no traceback.

Every case gives the exact error line(s) on stderr and the exit code (2: the user's input, 1: something
outside their control), and checks that no traceback and no reader's address reach the output.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import EDITION, SAMPLE_AUDIENCE
from tests.test_cli import run

UNSUBSCRIBED = "jun.costa.41@example.org"  # unsubscribed in audiences/sample.csv
SENT = "kemi.moreau.0@example.com"  # marked sent for the sample edition below
SUPPRESSED = "uma.sato.95@example.org"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory) -> Path:
    """A home with the sample audience imported, one reader already sent the sample edition, one suppressed."""
    from sqlalchemy import select, update

    from pipeline.store import open_database
    from pipeline.store.models import Reader, SendLedgerEntry

    home = tmp_path_factory.mktemp("sample-home")
    run(home, "audience", "import", str(SAMPLE_AUDIENCE), "--audience", "sample")
    db = open_database(f"sqlite:///{home / 'readerfirst.db'}")
    try:
        with db.session() as session:
            sent = session.execute(select(Reader.id, Reader.audience_id).where(Reader.email == SENT)).one()
            session.add(SendLedgerEntry(edition_id="2026-12-07", reader_id=sent.id, audience_id=sent.audience_id,
                                        variant_id="v", picks=[], state="sent", message_id="m", transport="outbox",
                                        sent_at=dt.datetime(2026, 12, 7)))
            session.execute(update(Reader).where(Reader.email == SUPPRESSED).values(status="subscribed",
                                                                                   suppressed_reason="hard_bounce"))
            session.commit()
    finally:
        db.dispose()
    return home


@dataclass
class Mistake:
    """One thing a user can get wrong, and exactly what readerfirst must answer."""

    name: str
    args: Callable[[Path], list[str]]
    stderr: Callable[[Path], str]
    code: int
    env: Callable[[Path], dict[str, str]] = field(default=lambda tmp: {})
    prepare: Callable[[Path], None] = field(default=lambda tmp: None)
    sample: bool = False  # runs in the shared home holding the sample audience


def _read_only_database(tmp: Path) -> None:
    from pipeline.store import open_database

    # A migrated database that the URL below opens read-only (file modes do not stop root, SQLite's mode=ro does).
    open_database(f"sqlite:///{tmp / 'ro.db'}").dispose()
    (tmp / "one.csv").write_text("email\nann@example.com\n")


def _non_empty_folder(tmp: Path) -> None:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.txt").write_text("years of work")


PORT = closed_port()

MISTAKES = [
    Mistake("folder as audience file", lambda t: ["audience", "import", str(t), "--audience", "main"],
            lambda t: f"error: 1 problem in audience file; nothing was changed:\n  {t}: is a folder; give the audience"
                      " file (CSV or JSONL)\n", 2),
    Mistake("missing audience file", lambda t: ["audience", "import", str(t / "nope.csv"), "--audience", "main"],
            lambda t: f"error: 1 problem in audience file; nothing was changed:\n  {t / 'nope.csv'}: no such file\n", 2),
    Mistake("empty audience file", lambda t: ["audience", "import", str(t / "empty.csv"), "--audience", "main"],
            lambda t: f"error: 1 problem in audience file; nothing was changed:\n  {t / 'empty.csv'}: the file is empty;"
                      " export the audience again\n", 2, prepare=lambda t: (t / "empty.csv").write_text("")),
    Mistake("read-only database", lambda t: ["audience", "import", str(t / "one.csv"), "--audience", "main"],
            lambda t: f"error: the database {t / 'ro.db'} is read-only: give this user write access to the file and its"
                      " folder, or set READERFIRST_DATABASE_URL to another database\n", 2,
            env=lambda t: {"READERFIRST_DATABASE_URL": f"sqlite:///file:{t / 'ro.db'}?mode=ro&uri=true"},
            prepare=_read_only_database),
    Mistake("unreachable PostgreSQL", lambda t: ["audience", "list"],
            lambda t: f"error: cannot reach the database server of postgresql://reader:***@127.0.0.1:{PORT}/news: is it"
                      " running, and are the host and port in READERFIRST_DATABASE_URL right?\n", 1,
            env=lambda t: {"READERFIRST_DATABASE_URL": f"postgresql://reader:s3cret@127.0.0.1:{PORT}/news"}),
    Mistake("Heroku's postgres:// URL is taken as postgresql://", lambda t: ["audience", "list"],
            lambda t: f"error: cannot reach the database server of postgres://reader:***@127.0.0.1:{PORT}/news: is it"
                      " running, and are the host and port in READERFIRST_DATABASE_URL right?\n", 1,
            env=lambda t: {"READERFIRST_DATABASE_URL": f"postgres://reader:s3cret@127.0.0.1:{PORT}/news"}),
    Mistake("bad setting value", lambda t: ["audience", "list"],
            lambda t: "error: READERFIRST_WORKERS='many': Input should be a valid integer, unable to parse string as"
                      " an integer\n", 2, env=lambda t: {"READERFIRST_WORKERS": "many"}),
    Mistake("negative import workers", lambda t: ["audience", "import", str(SAMPLE_AUDIENCE), "--audience", "x"],
            lambda t: "error: READERFIRST_IMPORT_WORKERS='-1': Input should be greater than or equal to 0\n", 2,
            env=lambda t: {"READERFIRST_IMPORT_WORKERS": "-1"}),
    Mistake("unreachable PREFECT_API_URL", lambda t: ["engagement", "apply"],
            lambda t: f"error: cannot reach the Prefect server at PREFECT_API_URL=http://127.0.0.1:{PORT}/api: start it"
                      " (prefect server start) or unset PREFECT_API_URL to let readerfirst start a temporary one\n", 1,
            env=lambda t: {"PREFECT_API_URL": f"http://127.0.0.1:{PORT}/api"}),
    Mistake("send --to an unknown reader",
            lambda t: ["send", str(EDITION), "--audience", "sample", "--to", "who@example.com"],
            lambda t: "error: --to: no reader with that address in audience 'sample'; check the spelling, or import"
                      " them first\n", 2, sample=True),
    Mistake("send --to an unsubscribed reader",
            lambda t: ["send", str(EDITION), "--audience", "sample", "--to", UNSUBSCRIBED.upper()],
            lambda t: "error: --to: that reader is unsubscribed in audience 'sample'; readerfirst never sends to them"
                      " (only the reader can resubscribe)\n", 2, sample=True),
    Mistake("send --to a suppressed reader",
            lambda t: ["send", str(EDITION), "--audience", "sample", "--to", SUPPRESSED],
            lambda t: "error: --to: that reader is suppressed (hard_bounce) in audience 'sample'; readerfirst never"
                      " sends to them\n", 2, sample=True),
    Mistake("send --to a reader already sent",
            lambda t: ["send", str(EDITION), "--audience", "sample", "--to", SENT],
            lambda t: "error: --to: that reader was already sent edition 2026-12-07; each reader gets an edition"
                      " once\n", 2, sample=True),
    Mistake("send on Dask with SQLite", lambda t: ["send", str(EDITION), "--audience", "sample"],
            lambda t: "error: READERFIRST_TASK_RUNNER=dask needs PostgreSQL (Dask workers are separate processes writing"
                      " the ledger at once): set READERFIRST_DATABASE_URL=postgresql://USER:PASSWORD@HOST/DB, or"
                      " READERFIRST_TASK_RUNNER=threads\n", 2, env=lambda t: {"READERFIRST_TASK_RUNNER": "dask"},
            sample=True),
    Mistake("send --sandbox without a SendGrid key", lambda t: ["send", str(EDITION), "--audience", "sample", "--sandbox"],
            lambda t: "error: --sandbox has SendGrid validate without delivering: set SENDGRID_API_KEY\n", 2, sample=True),
    Mistake("preview of an address in no audience", lambda t: ["preview", str(EDITION), "--email", "who@example.com"],
            lambda t: "error: --email: no reader with that address in any audience; check the spelling, or import"
                      " them first\n", 2, sample=True),
    Mistake("replies confirm of a reply that does not exist", lambda t: ["replies", "confirm", "7", "hiring"],
            lambda t: "error: reply 7: no such reply (see `readerfirst replies`)\n", 2),
    Mistake("replies confirm for longer than the ask offers",
            lambda t: ["replies", "confirm", "7", "hiring", "--days", "90"],
            lambda t: "error: --days=90: a need lasts 30, 45 or 60 days\n", 2),
    Mistake("demo into a folder it did not make", lambda t: ["demo", "--folder", str(t / "mine")],
            lambda t: f"error: {t / 'mine'}: not empty and not made by `readerfirst demo`; choose another --folder, or"
                      " add --force to let the demo replace its own files there\n", 2, prepare=_non_empty_folder),
    Mistake("audience sample over an existing file", lambda t: ["audience", "sample", "--out", str(t / "a.csv")],
            lambda t: f"error: {t / 'a.csv'}: already exists; choose another --out, or add --force to overwrite it\n", 2,
            prepare=lambda t: (t / "a.csv").write_text("email\nmine@example.com\n")),
    Mistake("report over an existing file", lambda t: ["report", "--out", str(t / "r.html")],
            lambda t: f"error: {t / 'r.html'}: already exists; choose another --out, or add --force to overwrite it\n", 2,
            prepare=lambda t: (t / "r.html").write_text("<p>mine</p>")),
]


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_each_mistake_is_one_plain_error(mistake: Mistake, tmp_path, sample_home):
    """Each mistake exits with its code and exactly its error line(s) on stderr: no traceback, no reader data."""
    mistake.prepare(tmp_path)
    home = sample_home if mistake.sample else tmp_path / "home"
    result = run(home, *mistake.args(tmp_path), env=mistake.env(tmp_path), check=False)
    assert (result.returncode, result.stderr) == (mistake.code, mistake.stderr(tmp_path)), result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    for address in (UNSUBSCRIBED, SENT, SUPPRESSED, "kemi", "Kemi"):
        assert address not in result.stderr


def test_mistakes_keep_what_the_user_had(tmp_path, sample_home):
    """The refused demo, sample and report left the user's own files exactly as they were."""
    _non_empty_folder(tmp_path)
    (tmp_path / "a.csv").write_text("email\nmine@example.com\n")
    run(tmp_path / "home", "demo", "--folder", str(tmp_path / "mine"), check=False)
    run(tmp_path / "home", "audience", "sample", "--out", str(tmp_path / "a.csv"), check=False)
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.txt"]
    assert (tmp_path / "a.csv").read_text() == "email\nmine@example.com\n"


def test_debug_shows_the_traceback(tmp_path):
    """With --debug the same mistake shows Python's traceback, for a bug report."""
    result = run(tmp_path / "home", "--debug", "audience", "list", check=False,
                 env={"READERFIRST_DATABASE_URL": f"postgresql://reader:s3cret@127.0.0.1:{PORT}/news"})
    assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr
