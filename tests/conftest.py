"""Shared fixtures: a fresh home folder and SQLite database per test, Prefect's test harness once."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
TEMPLATES = ROOT / "templates"
SAMPLE_AUDIENCE = ROOT / "audiences" / "sample.csv"

# Prefect must never touch ~/.prefect nor call home during tests.
_PREFECT_HOME = tempfile.mkdtemp(prefix="readerfirst-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Tests run flows against the harness (or a temporary server): never leave a background server running.
os.environ.setdefault("READERFIRST_PREFECT_SERVER", "ephemeral")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh READERFIRST_HOME (database, outbox, previews) for one test, no SendGrid key."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("READERFIRST_HOME", str(folder))
    monkeypatch.setenv("READERFIRST_SECRET", "test-secret-of-at-least-32-bytes!")
    monkeypatch.delenv("READERFIRST_DATABASE_URL", raising=False)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    return folder


@pytest.fixture
def db(home):
    """A migrated SQLite database in the test's home folder."""
    from pipeline.store import open_database

    database = open_database(f"sqlite:///{home / 'readerfirst.db'}")
    yield database
    database.dispose()


@pytest.fixture
def edition_path() -> Path:
    """The sample edition shipped in editions/."""
    return EDITION


@pytest.fixture
def edition_dir(tmp_path) -> Path:
    """A writable copy of editions/ for tests that write broken editions beside the taxonomy."""
    folder = tmp_path / "editions"
    shutil.copytree(ROOT / "editions", folder)
    return folder


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's own test harness (a temporary server), started once per test session."""
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        with temporary_settings(updates={"flows.heartbeat_frequency": None}):
            from prefect.settings import PREFECT_API_URL

            yield PREFECT_API_URL.value()


@dataclass
class Receiver:
    """A local webhook endpoint that keeps each POST's headers and raw body."""

    url: str
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give first; 200 afterwards

    def events(self) -> list[dict[str, Any]]:
        """Every event received, in arrival order."""
        return [event for _, body in self.posts for event in json.loads(body)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A stdlib HTTP server on loopback standing in for the readerfirst webhook endpoint."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                status = state.statuses.pop(0) if state.statuses else 200
                if status == 200:
                    state.posts.append((dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/webhooks/sendgrid")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
