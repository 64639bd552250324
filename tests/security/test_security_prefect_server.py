"""The background Prefect server's state file and process: a damaged or forged record never makes
readerfirst signal another program, and the long-lived server never holds readerfirst's secrets."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.flows.prefect_server import BackgroundServer, ServerRecord, prefect_server_command
from tests.conftest import ROOT

STANDIN = ROOT / "tests" / "fixtures" / "prefect-server" / "standin.py"


def standin_command(port: int) -> list[str]:
    """The stand-in server's command line for `port` (see tests/fixtures/prefect-server/standin.py)."""
    return [sys.executable, str(STANDIN), "--port", str(port)]


@pytest.fixture
def server(home):
    """A BackgroundServer of the test's home running the stand-in; stopped at the end."""
    background = BackgroundServer(home, command=standin_command, startup_timeout=30.0)
    yield background
    background.stop(timeout=5)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=12)
record_like = st.fixed_dictionaries({}, optional={
    "url": st.one_of(st.text(max_size=40), st.just("http://127.0.0.1:4200/api"), st.just("http://evil.example/api")),
    "pid": st.one_of(st.integers(), st.just(1), st.just(os.getpid()), st.text(max_size=5), st.booleans()),
    "port": st.one_of(st.integers(), st.just(4200)),
    "command": st.one_of(json_values, st.just(prefect_server_command(4200))),
    "prefect_version": json_values, "started_at": json_values})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                         record_like.map(lambda v: json.dumps(v).encode())))
def test_damaged_state_file_is_read_as_no_server(home, content):
    """Any bytes in the state file read as no record, or as a record that can only point at loopback."""
    background = BackgroundServer(home)
    (home / "prefect-server.json").write_bytes(content)
    record = background.read()
    if record is not None:
        assert record.url == f"http://127.0.0.1:{record.port}/api" and 1 < record.pid < 2**31
    # Never raises, and never takes a process for the server unless it runs the recorded command
    # (none does here: a pid of 1 or of this very test process stays someone else's).
    assert not background.status().running


def test_forged_record_naming_another_program_never_signals_it(server, home):
    """A record that names a live unrelated process (a reused pid) starts a new server and leaves that process alone."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        forged = ServerRecord(url="http://127.0.0.1:4200/api", pid=bystander.pid, port=4200,
                              command=tuple(standin_command(4200)), prefect_version=server.prefect_version,
                              started_at="2026-12-01T00:00:00+00:00")
        (home / "prefect-server.json").write_text(json.dumps(dataclasses.asdict(forged)))
        record, started = server.ensure()
        assert started and record.pid != bystander.pid
        assert server.stop() == record
        assert bystander.poll() is None  # never signalled: still running
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


def test_server_does_not_inherit_readerfirst_secrets(server, monkeypatch):
    """The long-lived server's environment holds no READERFIRST_* or SENDGRID_* value (API key, secret)."""
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.secret-key-that-must-not-leak")
    monkeypatch.setenv("READERFIRST_SECRET", "a-signing-secret-of-at-least-32-bytes")
    record, _ = server.ensure()
    environment = Path(f"/proc/{record.pid}/environ").read_bytes()
    assert b"SG.secret-key-that-must-not-leak" not in environment
    assert b"a-signing-secret-of-at-least-32-bytes" not in environment
    assert not [name for name in environment.split(b"\0") if name.startswith((b"READERFIRST_", b"SENDGRID_"))]


def test_state_file_is_private(server, home):
    """The state file, which names a process to signal, is readable and writable by its owner only."""
    server.ensure()
    assert stat.S_IMODE((home / "prefect-server.json").stat().st_mode) == 0o600
