"""Handing `readerfirst send` to the send runner, a process that already has Prefect loaded.

A send that runs its flow in the command's own process pays for importing Prefect and
starting a flow engine (5 s or more) before the first reader is planned. Beside the background
Prefect server, readerfirst keeps a send runner (pipeline/flows/send_runner.py): it has
registered the deployment `send-edition/send-runner` and waits. `readerfirst send` then creates a
flow run of that deployment through Prefect's REST API with plain httpx (this module never
imports Prefect), wakes the runner through a file, follows progress from the send ledger and
the run's state, and reads the run's summary, or its one-line error, from a result file.

The runner runs with the environment of the command that started it. A run is handed over only
when the caller's settings fingerprint (every READERFIRST_* and SENDGRID_* setting, resolved,
and the code that runs) equals the runner's; otherwise the command runs its flow itself, as it
does with no runner at all. Secrets never go into flow-run parameters: the runner has its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pipeline.errors import PipelineError
from pipeline.flows.prefect_server import (DATA_DIR, BackgroundServer, exclusive, log_tail, process_runs,
                                           spawn_detached, stop_process_group)
from pipeline.settings import Settings

__all__ = ["DEPLOYMENT_NAME", "RunnerRecord", "HandedOffRun", "RunnerFailure", "SendRunner", "settings_fingerprint",
           "runner_command", "hand_off", "run_state", "cancel_run", "server_url_of",
           "FINAL_STATES"]

DEPLOYMENT_NAME = "send-runner"  # the deployment is `send-edition/send-runner`
STATE_FILE = "send-runner.json"
LOCK_FILE = "send-runner.lock"
WAKE_FILE = "send-runner.wake"
RESULTS_DIR = "send-runner-results"
LOG_FILE = "send-runner.log"  # beside the server's log, in <home>/prefect/
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


class RunnerFailure(PipelineError, RuntimeError):
    """A handed-off run failed, or the runner could not take it; `exit_code` is the CLI's exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def runner_command() -> list[str]:
    """The send runner's command line, run by this Python."""
    return [sys.executable, "-m", "pipeline.flows.send_runner"]


def settings_fingerprint(settings: Settings) -> str:
    """A digest of everything a send depends on: every setting (secrets included, only hashed), resolved
    paths, and the code that runs. Equal fingerprints: the runner sends as this command would."""
    import pipeline

    values: dict[str, str] = {}
    for name, value in settings:
        values[name] = value.get_secret_value() if isinstance(value, SecretStr) else json.dumps(value, default=str)
    values.update(database=settings.resolved_database_url, outbox=str(settings.resolved_outbox_dir),
                  spool=str(settings.resolved_consent_spool_dir), code=str(Path(pipeline.__file__).resolve().parent),
                  python=sys.executable)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RunnerRecord:
    """What the state file keeps about the runner: written when it is started (no deployment id yet),
    then by the runner once its deployment is registered and it takes runs."""

    pid: int
    command: tuple[str, ...]
    server_url: str
    deployment_id: str
    fingerprint: str
    started_at: str

    @classmethod
    def parse(cls, text: str) -> RunnerRecord | None:
        """The record in a state file's text, or None when it is not one (truncated, edited, foreign)."""
        try:
            data = json.loads(text)
            record = cls(pid=data["pid"], command=tuple(data["command"]), server_url=data["server_url"],
                         deployment_id=data["deployment_id"], fingerprint=data["fingerprint"],
                         started_at=data["started_at"])
        except (ValueError, TypeError, KeyError):
            return None
        valid = (type(record.pid) is int and 1 < record.pid < 2**31
                 and all(isinstance(part, str) for part in record.command)
                 and tuple(record.command[1:]) == tuple(runner_command()[1:])
                 and isinstance(record.server_url, str) and record.server_url.startswith("http://127.0.0.1:")
                 and isinstance(record.deployment_id, str) and len(record.deployment_id) in (0, 36)
                 and isinstance(record.fingerprint, str) and isinstance(record.started_at, str))
        return record if valid else None


@dataclass(frozen=True)
class HandedOffRun:
    """A flow run created for the runner: its id, its Prefect name and where to watch it."""

    id: str
    name: str
    dashboard_url: str


class SendRunner:
    """The send runner of one readerfirst home: its state file, wake file, results and log."""

    def __init__(self, home: Path, *, startup_timeout: float = 180.0) -> None:
        self.home = Path(home)
        self.state_path = self.home / STATE_FILE
        self.lock_path = self.home / LOCK_FILE
        self.wake_path = self.home / WAKE_FILE
        self.results_dir = self.home / RESULTS_DIR
        self.log_path = self.home / DATA_DIR / LOG_FILE
        # Importing Prefect and registering the deployment: 5 s on a quiet machine, a minute on a loaded one.
        self.startup_timeout = startup_timeout

    def read(self) -> RunnerRecord | None:
        """The recorded runner, or None when there is no readable record."""
        try:
            return RunnerRecord.parse(self.state_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None

    def running(self) -> RunnerRecord | None:
        """The recorded runner when its process runs (whatever server or settings it has)."""
        record = self.read()
        return record if record is not None and process_runs(record.pid, record.command) else None

    def usable(self, settings: Settings, server_url: str) -> tuple[RunnerRecord | None, str]:
        """The runner a send of these settings can hand its run to, or None and why not ("" when
        there is simply no runner)."""
        record = self.running()
        if record is None or not record.deployment_id:  # none, or still starting
            return None, ""
        if record.server_url != server_url:
            return None, "the send runner reports to another Prefect server"
        if record.fingerprint != settings_fingerprint(settings):
            return None, ("the send runner was started with other settings (READERFIRST_*, SENDGRID_* or the"
                          " working folder); `readerfirst prefect-server start` restarts it with these")
        return record, ""

    def ensure(self, settings: Settings, server_url: str, *, replace: bool = False,
               wait: bool = False) -> tuple[RunnerRecord | None, bool]:
        """Start the runner for `server_url` with this process's environment unless one runs for it.

        A runner for another server is replaced; one with other settings only with `replace` (it
        may be sending for whoever started it). With `wait`, returns once the runner takes runs.
        Returns the record (None while it starts) and whether this call started it.
        """
        with self._locked():
            current = self.running()
            fingerprint = settings_fingerprint(settings)
            started = not (current is not None and current.server_url == server_url
                           and (not replace or current.fingerprint == fingerprint))
            if not started:
                if not wait or current.deployment_id:
                    return (current if current.deployment_id else None), False
                starting = current  # started by another command: waited for like our own
            else:
                if current is not None:
                    stop_process_group(current.pid, 20.0)
                self.state_path.unlink(missing_ok=True)
                # Recorded before it is ready (under the lock the runner takes to record itself ready):
                # `stop`, or the next command, finds a runner that is still starting.
                starting = RunnerRecord(pid=self._spawn(server_url).pid, command=tuple(runner_command()),
                                        server_url=server_url, deployment_id="", fingerprint=fingerprint,
                                        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                self.write(starting)
        if not wait:
            return None, started
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            record = self.read()
            if record is not None and record.pid == starting.pid and record.deployment_id:
                return record, started
            if not process_runs(starting.pid, starting.command):
                raise RunnerFailure(f"{self.log_path}: the send runner exited before it took runs;"
                                    f" last lines: {log_tail(self.log_path)!r}")
            time.sleep(0.2)
        stop_process_group(starting.pid, 5.0)
        raise RunnerFailure(f"{self.log_path}: the send runner did not start within {self.startup_timeout:.0f} s;"
                            f" last lines: {log_tail(self.log_path)!r}")

    def _spawn(self, server_url: str) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The runner sends as this command would: it keeps this environment (settings and secrets
        # included, like any process the user starts), pointed at the background server.
        environment = {**os.environ, "PREFECT_API_URL": server_url}
        environment.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        environment.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        return spawn_detached(runner_command(), environment, self.log_path)

    def stop(self, *, timeout: float = 20.0) -> RunnerRecord | None:
        """Stop the recorded runner (runs in flight stop between batches) and forget it."""
        with self._locked():
            record = self.running()
            if record is not None:
                stop_process_group(record.pid, timeout)
            self.state_path.unlink(missing_ok=True)
            return record

    def write(self, record: RunnerRecord) -> None:
        """Record `record` as this home's runner (readable only by this user)."""
        _write_private(self.state_path, asdict(record))

    def record_ready(self, record: RunnerRecord) -> None:
        """The runner's own record, once it takes runs (after the starting record its starter wrote)."""
        with self._locked():
            self.write(record)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self.lock_path, self.startup_timeout + 30,
                         f"{self.lock_path}: another readerfirst command has held the send runner's lock for too"
                         f" long; see {self.log_path}")

    def wake(self, run_id: str) -> None:
        """Tell the runner a run waits for it (it watches this file rather than polling the API)."""
        _write_private(self.wake_path, {"flow_run_id": run_id, "at": time.time()})

    def result_path(self, run_id: str) -> Path:
        """Where the runner leaves the outcome of flow run `run_id`."""
        return self.results_dir / f"{run_id}.json"

    def write_result(self, run_id: str, outcome: dict[str, Any]) -> None:
        """Leave a run's outcome ({"summary": ...} or {"error": ..., "code": ...}) for the command that waits."""
        _write_private(self.result_path(run_id), outcome)

    def take_result(self, run_id: str) -> dict[str, Any] | None:
        """The outcome of flow run `run_id`, removed once read, or None while there is none."""
        path = self.result_path(run_id)
        try:
            outcome = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        path.unlink(missing_ok=True)
        return outcome


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to `path` atomically, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as file:
        json.dump(data, file, default=str)
    os.replace(temporary, path)


def _client(server_url: str, timeout: float):
    import httpx

    # No proxy and no environment: the server is on loopback, whatever HTTP_PROXY says.
    return httpx.Client(base_url=server_url.rstrip("/") + "/", timeout=timeout, trust_env=False)


def hand_off(runner: SendRunner, record: RunnerRecord, parameters: dict[str, Any], *,
             timeout: float = 10.0) -> HandedOffRun:
    """Create a flow run of the runner's deployment with `parameters` and wake the runner."""
    now = datetime.now(timezone.utc).isoformat()
    with _client(record.server_url, timeout) as client:
        response = client.post(f"deployments/{record.deployment_id}/create_flow_run", json={
            "parameters": parameters,
            "state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": now}}})
    try:
        run = response.json() if response.status_code < 300 else None
        run = {"id": str(run["id"]), "name": str(run["name"])} if isinstance(run, dict) else None
    except (ValueError, KeyError):
        run = None
    if run is None:
        # The parameters are not repeated: they may name a reader (--to).
        raise RunnerFailure(f"the Prefect server at {record.server_url} did not create the send's flow run"
                            f" (HTTP {response.status_code})")
    runner.wake(run["id"])
    return HandedOffRun(id=run["id"], name=run["name"],
                        dashboard_url=f"{record.server_url.removesuffix('/api')}/runs/flow-run/{run['id']}")


def run_state(record: RunnerRecord, run_id: str, *, timeout: float = 10.0) -> tuple[str, str]:
    """The flow run's state type (SCHEDULED, PENDING, RUNNING, COMPLETED, ...) and name, over REST."""
    with _client(record.server_url, timeout) as client:
        response = client.get(f"flow_runs/{run_id}")
    response.raise_for_status()
    state = response.json().get("state") or {}
    return str(state.get("type") or "SCHEDULED"), str(state.get("name") or "")


def server_url_of(home: Path) -> str | None:
    """The URL of the background server recorded in `home`, if any (not checked: a hand-off fails fast)."""
    record = BackgroundServer(home).read()
    return record.url if record is not None else None


def cancel_run(record: RunnerRecord, run_id: str, message: str, *, timeout: float = 10.0) -> bool:
    """Cancel the flow run if no runner has taken it yet; True when it is now cancelled (never taken)."""
    import httpx

    try:
        with _client(record.server_url, timeout) as client:
            # Not forced: Prefect refuses to cancel a run a runner has already claimed (Pending or later).
            response = client.post(f"flow_runs/{run_id}/set_state", json={
                "state": {"type": "CANCELLED", "name": "Cancelled", "message": message}, "force": False})
            state, _ = run_state(record, run_id)
    except httpx.HTTPError:
        return False
    return response.status_code < 300 and state == "CANCELLED"
