"""The background Prefect server's bookkeeping: start once, reuse, replace what is stale, stop.

The server process here is a stand-in that answers Prefect's health check (see
tests/fixtures/prefect-server/standin.py): a real `prefect server start` takes 5-60 s on these
machines, and what is checked is readerfirst's state file, lock and process handling around it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.flows.prefect_server import (BackgroundServer, PrefectServerError, ServerRecord, prefect_server_command,
                                           use_prefect_server)
from pipeline.settings import load_settings
from tests.conftest import ROOT

STANDIN = ROOT / "tests" / "fixtures" / "prefect-server" / "standin.py"


def standin_command(port: int) -> list[str]:
    """The stand-in server's command line for `port`."""
    return [sys.executable, str(STANDIN), "--port", str(port)]


def alive(pid: int) -> bool:
    """Whether `pid` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


@pytest.fixture
def servers(home, tmp_path, monkeypatch):
    """Makes BackgroundServers of the test's home that run the stand-in; stops every one it started."""
    starts = tmp_path / "starts.txt"
    monkeypatch.setenv("STANDIN_STARTS", str(starts))

    def make(**options) -> BackgroundServer:
        return BackgroundServer(home, command=standin_command, **{"startup_timeout": 30.0, **options})

    make.starts = lambda: [int(line) for line in starts.read_text().split()] if starts.exists() else []
    yield make
    make().stop(timeout=5)
    for pid in make.starts():  # only processes this test started, by their pid
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def write_state(home: Path, record: ServerRecord) -> None:
    """Write `record` as the home's state file, as an earlier command would have."""
    (home / "prefect-server.json").write_text(json.dumps(dataclasses.asdict(record)))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


def test_first_command_starts_the_server_and_later_ones_reuse_it(servers, home):
    """The first ensure starts one server and records it; the next reuses it without starting another."""
    record, started = servers().ensure()
    assert started and alive(record.pid)
    stored = json.loads((home / "prefect-server.json").read_text())
    assert stored["url"] == record.url == f"http://127.0.0.1:{record.port}/api" and stored["pid"] == record.pid
    again, started_again = servers().ensure()
    assert again == record and not started_again
    assert servers.starts() == [record.pid]
    assert servers().status().usable


def test_commands_starting_together_start_one_server(servers):
    """Four commands that find no server at the same moment end up sharing the one server the first started."""
    barrier = threading.Barrier(4)

    def command(_: int) -> ServerRecord:
        barrier.wait()
        return servers().ensure()[0]

    with ThreadPoolExecutor(4) as pool:
        records = list(pool.map(command, range(4)))
    assert len({record.pid for record in records}) == 1
    assert servers.starts() == [records[0].pid]


def test_record_of_an_exited_server_is_replaced(servers, home):
    """A state file whose process has exited (a reboot, a kill) makes the next command start a new server."""
    first, _ = servers().ensure()
    os.kill(first.pid, signal.SIGKILL)
    second, started = servers().ensure()
    assert started and second.pid != first.pid and alive(second.pid)
    assert json.loads((home / "prefect-server.json").read_text())["pid"] == second.pid


def test_record_of_a_port_another_program_answers_is_replaced(servers, home):
    """A dead server's port now held by another program (answering, but not as Prefect) is not reused."""

    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = other.server_address[1]
        stale = ServerRecord(url=f"http://127.0.0.1:{port}/api", pid=dead_pid(), port=port,
                             command=tuple(standin_command(port)), prefect_version=servers().prefect_version,
                             started_at="2026-12-01T00:00:00+00:00")
        write_state(home, stale)
        assert not servers().status().usable
        record, started = servers().ensure()
        assert started and record.port != port
    finally:
        other.shutdown()
        other.server_close()


def test_server_that_runs_but_never_answers_is_replaced(servers, home, monkeypatch):
    """A hung server (alive, ours, silent past its grace) is stopped and a new one started."""
    monkeypatch.setenv("STANDIN_SILENT", "1")
    with pytest.raises(PrefectServerError, match=r"server\.log: the background Prefect server .* did not answer"):
        servers(startup_timeout=1.0).ensure()
    assert not any(alive(pid) for pid in servers.starts())  # a failed start leaves nothing running

    hung = subprocess.Popen(standin_command(free_port := _port()), start_new_session=True)
    try:
        record = ServerRecord(url=f"http://127.0.0.1:{free_port}/api", pid=hung.pid, port=free_port,
                              command=tuple(standin_command(free_port)), prefect_version=servers().prefect_version,
                              started_at="2026-12-01T00:00:00+00:00")
        write_state(home, record)
        monkeypatch.setenv("STANDIN_SILENT", "0")
        replacement, started = servers(health_timeout=0.5).ensure()
        assert started and replacement.pid != hung.pid
        assert hung.wait(timeout=10) is not None  # stopped, by the group signal readerfirst sent
    finally:
        if hung.poll() is None:
            hung.kill()
            hung.wait()


def test_server_of_another_prefect_version_is_restarted(servers, home):
    """After Prefect is upgraded, the server the old version started is replaced by one of the new version."""
    old, _ = servers().ensure()
    stored = json.loads((home / "prefect-server.json").read_text())
    (home / "prefect-server.json").write_text(json.dumps(stored | {"prefect_version": "3.0.0"}))
    new, started = servers().ensure()
    assert started and new.pid != old.pid and not alive(old.pid)


def test_stop_stops_the_server_and_forgets_it(servers, home):
    """`stop` ends the server's process and removes the state file; stopping again finds nothing."""
    record, _ = servers().ensure()
    stopped = servers().stop()
    assert stopped == record and not alive(record.pid)
    assert not (home / "prefect-server.json").exists()
    assert servers().stop() is None and servers().status().record is None


def test_server_keeps_its_data_in_the_home_folder(servers, home):
    """The server runs with PREFECT_HOME in <home>/prefect, where its log is written."""
    record, _ = servers().ensure()
    environment = dict(line.split("=", 1) for line in
                       Path(f"/proc/{record.pid}/environ").read_text().split("\0") if "=" in line)
    assert environment["PREFECT_HOME"] == str(home / "prefect")
    assert (home / "prefect" / "server.log").exists()


def test_prefect_command_is_prefects_own_server_on_loopback():
    """The command started is `prefect server start` bound to 127.0.0.1 on the chosen port."""
    command = prefect_server_command(4321)
    assert command[1:] == ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", "4321"]


def test_prefect_api_url_wins_over_the_background_server(prefect_harness, home):
    """With an API URL configured (here the harness's), flow runs use it and no server is started."""
    connection = use_prefect_server(load_settings())
    assert connection.url == prefect_harness and connection.source == "PREFECT_API_URL"
    assert not (home / "prefect-server.json").exists()


def test_ephemeral_setting_keeps_prefects_temporary_server(home, monkeypatch):
    """READERFIRST_PREFECT_SERVER=ephemeral starts nothing: Prefect's temporary server runs per command."""
    from prefect.settings import temporary_settings

    monkeypatch.setenv("READERFIRST_PREFECT_SERVER", "ephemeral")
    with temporary_settings(updates={"api.url": None}):
        connection = use_prefect_server(load_settings())
    assert connection.url is None and connection.source == "ephemeral"
    assert not (home / "prefect-server.json").exists()


def test_background_server_becomes_prefects_api_url(servers, home, monkeypatch):
    """Without an API URL, the background server's URL becomes Prefect's API URL for this process's runs."""
    import prefect.context
    from prefect.settings import temporary_settings

    monkeypatch.setenv("READERFIRST_PREFECT_SERVER", "background")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    try:
        with temporary_settings(updates={"api.url": None}):
            connection = use_prefect_server(load_settings(), server=servers())
        assert connection.source == "background" and connection.started
        assert connection.url == json.loads((home / "prefect-server.json").read_text())["url"]
        assert os.environ["PREFECT_API_URL"] == connection.url
        # Prefect's process-wide settings (what threads without a settings context see) now say so too.
        assert prefect.context.GLOBAL_SETTINGS_CONTEXT.settings.api.url == connection.url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        prefect.context.refresh_global_settings_context()


def _port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
