"""The send runner's bookkeeping: which runner a send may use, and the fallback when none can take it.

The runner's process here is a stand-in with the real runner's command line (see
tests/fixtures/send-runner/README.md); tests/test_cli_handoff.py runs the real one beside a real server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli.handoff import send_through_runner, usable_runner
from pipeline.flows.handoff import RunnerRecord, SendRunner, runner_command, settings_fingerprint
from pipeline.flows.prefect_server import ServerRecord
from pipeline.settings import load_settings
from tests.conftest import ROOT

STANDIN = ROOT / "tests" / "fixtures" / "send-runner"


@dataclasses.dataclass
class Runner:
    """A stand-in runner process and the records a started runner would have written."""

    process: subprocess.Popen[bytes]
    record: RunnerRecord
    server_url: str


def write_server_record(home: Path, port: int) -> str:
    """Record a background server at `port` in `home` (as `prefect-server start` would); returns its URL."""
    url = f"http://127.0.0.1:{port}/api"
    record = ServerRecord(url=url, pid=os.getpid(), port=port, command=("python",), prefect_version="3",
                          started_at="2026-12-01T00:00:00+00:00")
    (home / "prefect-server.json").write_text(json.dumps(dataclasses.asdict(record)))
    return url


@pytest.fixture
def standin_runner(home, monkeypatch) -> Iterator[Runner]:
    """A live process with the runner's command line, recorded as this home's runner for these settings."""
    monkeypatch.setenv("READERFIRST_PREFECT_SERVER", "background")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    process = subprocess.Popen(runner_command(), env={**os.environ, "PYTHONPATH": str(STANDIN)})
    url = write_server_record(home, 9)  # port 9 (discard): nothing answers there
    record = RunnerRecord(pid=process.pid, command=tuple(runner_command()), server_url=url,
                          deployment_id="00000000-0000-4000-8000-000000000000",
                          fingerprint=settings_fingerprint(load_settings()), started_at="2026-12-01T00:00:00+00:00")
    SendRunner(home).write(record)
    yield Runner(process, record, url)
    process.kill()
    process.wait()


def test_fingerprint_follows_every_setting_and_hides_the_secret(home, monkeypatch):
    """Equal settings give equal fingerprints; another setting or secret gives another; the secret never shows."""
    first = settings_fingerprint(load_settings())
    assert settings_fingerprint(load_settings()) == first
    assert "test-secret" not in first and len(first) == 64
    monkeypatch.setenv("READERFIRST_WORKERS", "3")
    assert settings_fingerprint(load_settings()) != first
    monkeypatch.delenv("READERFIRST_WORKERS")
    monkeypatch.setenv("READERFIRST_SECRET", "another-secret-of-at-least-32-bytes!")
    assert settings_fingerprint(load_settings()) != first


def test_a_runner_with_the_same_settings_is_used(standin_runner):
    """A running runner for the recorded server, started with these settings, takes the send."""
    runner, record = usable_runner(load_settings())
    assert record == standin_runner.record and runner.state_path.exists()


def test_no_runner_when_ephemeral_or_prefect_api_url_is_set(standin_runner, monkeypatch):
    """READERFIRST_PREFECT_SERVER=ephemeral or PREFECT_API_URL (another server) keeps the send in-process."""
    monkeypatch.setenv("READERFIRST_PREFECT_SERVER", "ephemeral")
    assert usable_runner(load_settings()) is None
    monkeypatch.setenv("READERFIRST_PREFECT_SERVER", "background")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert usable_runner(load_settings()) is None


def test_no_runner_with_other_settings_says_why(standin_runner, monkeypatch, capsys):
    """A runner started with other settings is not used, and the command says why in one line."""
    monkeypatch.setenv("READERFIRST_FROM_NAME", "Another Letter")
    assert usable_runner(load_settings()) is None
    assert "started with other settings" in capsys.readouterr().err


def test_no_runner_when_its_process_has_exited_or_the_server_changed(standin_runner, home):
    """A runner whose process has exited, or that reports to a server no longer recorded, is not used."""
    write_server_record(home, 10)
    assert usable_runner(load_settings()) is None
    write_server_record(home, 9)
    standin_runner.process.kill()
    standin_runner.process.wait()
    assert usable_runner(load_settings()) is None


def test_send_falls_back_when_the_runner_cannot_be_reached(standin_runner, capsys, edition_path):
    """When the recorded server does not answer, nothing is handed over and the command sends itself."""
    options = {"audience": "sample", "dry_run": False, "limit": None, "to": None, "sandbox": False,
               "resend_unconfirmed": False}
    assert send_through_runner(load_settings(), edition_path, options, show_progress=False, visible=False) is None
    assert "could not be reached" in capsys.readouterr().err


def test_start_waits_for_the_runner_and_reports_its_exit(home, monkeypatch):
    """`ensure(wait=True)` with no server to register with: the runner exits, and the error names its log."""
    from pipeline.flows.handoff import RunnerFailure

    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
    runner = SendRunner(home, startup_timeout=120)
    with pytest.raises(RunnerFailure, match="send-runner.log: the send runner exited before it took runs"):
        runner.ensure(load_settings(), "http://127.0.0.1:9/api", wait=True)
    assert runner.read() is None
