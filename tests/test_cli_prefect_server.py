"""`readerfirst prefect-server status | stop`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_cli import run


def test_status_and_stop_with_no_server_say_so(tmp_path):
    """With no server recorded, `status` says so and names the data and log folders; `stop` stops nothing."""
    status = run(tmp_path, "prefect-server", "status").stdout
    assert "no background Prefect server recorded" in status and str(tmp_path / "prefect") in status
    assert "no background Prefect server was running" in run(tmp_path, "prefect-server", "stop").stdout


def test_status_reports_a_server_that_has_exited(tmp_path):
    """A record whose process has exited is shown as not running, and `stop` forgets it."""
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout)
    (tmp_path / "prefect-server.json").write_text(json.dumps({
        "url": "http://127.0.0.1:4999/api", "pid": pid, "port": 4999, "prefect_version": "3.9.1",
        "started_at": "2026-12-01T00:00:00+00:00",
        "command": [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", "4999"]}))
    assert f"not running (pid {pid} has exited)" in run(tmp_path, "prefect-server", "status").stdout
    assert "no background Prefect server was running" in run(tmp_path, "prefect-server", "stop").stdout
    assert not (tmp_path / "prefect-server.json").exists()
