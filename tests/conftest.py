"""Shared fixtures: a fresh home folder and SQLite database per test, Prefect's test harness once."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

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


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh READERFIRST_HOME (database, outbox, previews) for one test, no SendGrid key."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("READERFIRST_HOME", str(folder))
    monkeypatch.setenv("READERFIRST_SECRET", "test-secret")
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

    with prefect_test_harness(server_startup_timeout=60):
        with temporary_settings(updates={"flows.heartbeat_frequency": None}):
            from prefect.settings import PREFECT_API_URL

            yield PREFECT_API_URL.value()
