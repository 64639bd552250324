"""The Prefect server readerfirst starts once in the background, and every later flow run reuses.

Without `PREFECT_API_URL`, each flow run would start Prefect's temporary server and stop it at
exit: 9-15 s per command on a quiet machine, for a send to nobody as for a send to everyone.
Instead, the first command that runs a flow starts `prefect server start` (Prefect's own server,
unchanged) as a detached process on a free loopback port, with its SQLite database and log in
`<home>/prefect/`, and records its URL, pid and command in `<home>/prefect-server.json`. Later
commands reuse it after a health check that costs milliseconds. A record whose process is gone,
whose process is another program (a reused pid), whose port does not answer as Prefect, or that
was written by another Prefect version, is replaced by a new server. A lock file serialises the
check and the start, so two commands starting together start one server.

`READERFIRST_PREFECT_SERVER=ephemeral` keeps Prefect's temporary server (nothing left running);
`PREFECT_API_URL` (environment or Prefect profile) always wins over both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.settings import Settings

__all__ = ["STATE_FILE", "LOCK_FILE", "DATA_DIR", "ServerRecord", "ServerStatus", "PrefectServerError",
           "BackgroundServer", "PrefectConnection", "prefect_server_command", "use_prefect_server", "exclusive",
           "spawn_detached", "stop_process_group", "process_alive", "process_runs", "log_tail"]

STATE_FILE = "prefect-server.json"
LOCK_FILE = "prefect-server.lock"
DATA_DIR = "prefect"  # the server's PREFECT_HOME: prefect.db and server.log
LOG_FILE = "server.log"

# Variables the server must not inherit: our secrets (a long-lived process keeps its environment
# readable in /proc), and Prefect settings that would point it at another profile or server.
_NOT_INHERITED = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE", "PREFECT_HOME")
_NOT_INHERITED_PREFIXES = ("READERFIRST_", "SENDGRID_")

# Popen objects of servers this process started, kept so they are reaped when stopped here.
_children: dict[int, subprocess.Popen[bytes]] = {}


class PrefectServerError(PipelineError, RuntimeError):
    """The background Prefect server could not be started or stopped; the message names its log."""


def prefect_server_command(port: int) -> list[str]:
    """Prefect's own server on loopback at `port`, run by this Python."""
    return [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]


@dataclass(frozen=True)
class ServerRecord:
    """What the state file keeps about the server it started."""

    url: str
    pid: int
    port: int
    command: tuple[str, ...]
    prefect_version: str
    started_at: str

    @classmethod
    def parse(cls, text: str) -> ServerRecord | None:
        """The record in a state file's text, or None when it is not one (truncated, edited, foreign)."""
        try:
            data = json.loads(text)
            record = cls(url=data["url"], pid=data["pid"], port=data["port"], command=tuple(data["command"]),
                         prefect_version=data["prefect_version"], started_at=data["started_at"])
        except (ValueError, TypeError, KeyError):
            return None
        valid = (type(record.pid) is int and 1 < record.pid < 2**31 and type(record.port) is int and 0 < record.port < 65536
                 and record.url == f"http://127.0.0.1:{record.port}/api"
                 and all(isinstance(part, str) for part in record.command)
                 and isinstance(record.prefect_version, str) and isinstance(record.started_at, str))
        return record if valid else None

    def age_seconds(self) -> float:
        """Seconds since the server was started (0 when the time is unreadable or in the future)."""
        try:
            started = datetime.fromisoformat(self.started_at)
        except ValueError:
            return 0.0
        if started.tzinfo is None:
            return 0.0
        return max(0.0, (datetime.now(timezone.utc) - started).total_seconds())


@dataclass(frozen=True)
class ServerStatus:
    """The background server as `readerfirst prefect-server status` reports it."""

    record: ServerRecord | None
    running: bool  # the recorded process is alive and is the command we started
    healthy: bool  # its API answers as Prefect does

    @property
    def usable(self) -> bool:
        """True when a flow run would use this server as it is."""
        return self.running and self.healthy


@dataclass(frozen=True)
class PrefectConnection:
    """Which Prefect API this process's flow runs use, and whether this call started a server."""

    url: str | None  # None: Prefect's temporary server
    source: str  # "PREFECT_API_URL", "background" or "ephemeral"
    started: bool = False


class BackgroundServer:
    """The background Prefect server of one readerfirst home: its state file, lock, data and log."""

    def __init__(self, home: Path, *, command: Callable[[int], Sequence[str]] = prefect_server_command,
                 startup_timeout: float = 180.0, health_timeout: float = 5.0) -> None:
        self.home = Path(home)
        self.state_path = self.home / STATE_FILE
        self.lock_path = self.home / LOCK_FILE
        self.data_dir = self.home / DATA_DIR
        self.log_path = self.data_dir / LOG_FILE
        self._command = command
        # A first start migrates a new database: 5 s on a quiet machine, 50 s on a loaded one.
        self.startup_timeout = startup_timeout
        self.health_timeout = health_timeout
        self.prefect_version = package_version("prefect")

    def read(self) -> ServerRecord | None:
        """The recorded server, or None when there is no readable record."""
        try:
            return ServerRecord.parse(self.state_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None

    def status(self) -> ServerStatus:
        """Whether the recorded server runs and answers (never starts or stops anything)."""
        record = self.read()
        running = record is not None and self._is_ours(record)
        return ServerStatus(record, running, running and record is not None and self._answers(record))

    def ensure(self, *, on_start: Callable[[], None] | None = None) -> tuple[ServerRecord, bool]:
        """The running server, started now if there is none usable; True when this call started it."""
        with self._locked():
            record = self.read()
            if record is not None:
                if record.prefect_version == self.prefect_version and self._is_ours(record):
                    # A server another command is still starting gets the rest of its start-up time.
                    grace = max(self.health_timeout, self.startup_timeout - record.age_seconds())
                    if self._wait_until_healthy(record, grace):
                        return record, False
                self._terminate(record)
                self.state_path.unlink(missing_ok=True)
            if on_start is not None:
                on_start()
            return self._start(), True

    def stop(self, *, timeout: float = 20.0) -> ServerRecord | None:
        """Stop the recorded server and forget it; returns what was stopped (None: nothing ran)."""
        with self._locked():
            record = self.read()
            stopped = record if record is not None and self._terminate(record, timeout=timeout) else None
            self.state_path.unlink(missing_ok=True)
            return stopped

    # -- starting -----------------------------------------------------------------------------

    def _start(self) -> ServerRecord:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        problem = ""
        # The free port we probed can be taken before the server binds it: then once more, elsewhere.
        for _ in range(2):
            port = _free_loopback_port()
            command = tuple(self._command(port))
            process = spawn_detached(command, self._environment(), self.log_path, cwd=self.data_dir, append=False)
            record = ServerRecord(url=f"http://127.0.0.1:{port}/api", pid=process.pid, port=port, command=command,
                                  prefect_version=self.prefect_version,
                                  started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            # Recorded before it is healthy: if this command is interrupted, the next one finds it.
            self._write(record)
            if self._wait_until_healthy(record, self.startup_timeout, process=process):
                return record
            exit_code = process.poll()
            self._terminate(record)
            self.state_path.unlink(missing_ok=True)
            problem = (f"exited with status {exit_code}" if exit_code is not None
                       else f"did not answer within {self.startup_timeout:.0f} s")
            if exit_code is None:
                break
        raise PrefectServerError(f"{self.log_path}: the background Prefect server ({' '.join(command)}) {problem}; "
                                 f"last lines: {log_tail(self.log_path)!r}. Set PREFECT_API_URL to a running server, "
                                 f"or READERFIRST_PREFECT_SERVER=ephemeral")

    def _environment(self) -> dict[str, str]:
        environment = {name: value for name, value in os.environ.items()
                       if name not in _NOT_INHERITED and not name.startswith(_NOT_INHERITED_PREFIXES)}
        environment["PREFECT_HOME"] = str(self.data_dir)
        environment["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        return environment

    def _write(self, record: ServerRecord) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_name(f".{STATE_FILE}.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(asdict(record), file, indent=1)
        os.replace(temporary, self.state_path)

    # -- checking -----------------------------------------------------------------------------

    def _is_ours(self, record: ServerRecord) -> bool:
        """The recorded pid runs the recorded command, which is the one we start for the recorded port
        (never a reused pid, never whatever a damaged state file names)."""
        # The interpreter may be named differently by another entry point (python, python3.11, a venv).
        if record.command[1:] != tuple(self._command(record.port))[1:]:
            return False
        return process_runs(record.pid, record.command)

    def _answers(self, record: ServerRecord) -> bool:
        """Prefect's health endpoint answers `true` at the recorded URL (another program's port does not)."""
        # No proxy: the server is on loopback, whatever HTTP_PROXY says.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{record.url}/health", timeout=self.health_timeout) as response:
                return response.status == 200 and response.read(64).strip() == b"true"
        except (OSError, ValueError):
            return False

    def _wait_until_healthy(self, record: ServerRecord, seconds: float,
                            process: subprocess.Popen[bytes] | None = None) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if process is not None and process.poll() is not None:
                return False
            if process is None and not self._is_ours(record):
                return False
            if self._answers(record):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def _terminate(self, record: ServerRecord, *, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL, the recorded server's process group, only if it is ours; True if it ran."""
        if not self._is_ours(record):
            _children.pop(record.pid, None)
            return False
        stop_process_group(record.pid, timeout)
        return True

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self.lock_path, self.startup_timeout + 30,
                         f"{self.lock_path}: another readerfirst command has been starting the Prefect server for"
                         f" too long; see {self.log_path}")


@contextlib.contextmanager
def exclusive(lock_path: Path, seconds: float, too_long: str) -> Iterator[None]:
    """Hold the lock file `lock_path` (waiting up to `seconds`, then PrefectServerError(too_long))."""
    # flock, not a lock file's existence: the kernel releases it when its holder dies, so a
    # command killed while starting a process never leaves the next ones waiting.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PrefectServerError(too_long) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def spawn_detached(command: Sequence[str], environment: dict[str, str], log_path: Path, *, cwd: Path | None = None,
                   append: bool = True) -> subprocess.Popen[bytes]:
    """Start `command` in its own session (a Ctrl-C in the terminal does not reach it), output to `log_path`."""
    with open(log_path, "ab" if append else "wb") as log:
        process = subprocess.Popen(list(command), cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    _children[process.pid] = process  # reaped when stopped from this process
    return process


def stop_process_group(pid: int, timeout: float) -> None:
    """SIGTERM, then after `timeout` seconds SIGKILL, the process group led by `pid`, and wait for it."""
    # start_new_session made the process a group leader: the group is it and its children.
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while process_alive(pid):
            time.sleep(0.05)
    _children.pop(pid, None)


def process_runs(pid: int, command: Sequence[str]) -> bool:
    """The process `pid` is alive and runs exactly `command` (never a reused pid running something else)."""
    if not process_alive(pid):
        return False
    if not Path("/proc/self").is_dir():
        return True  # no /proc on this system: the live pid is all we can check
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return tuple(part.decode(errors="replace") for part in cmdline.split(b"\0")[:-1]) == tuple(command)


def process_alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie is dead; our own exited children are reaped)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/PID/stat: "pid (name) S ...": the state follows the last parenthesis.
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def use_prefect_server(settings: Settings, *, on_start: Callable[[], None] | None = None,
                       server: BackgroundServer | None = None) -> PrefectConnection:
    """Point this process's flow runs at a Prefect API, before any runs: `PREFECT_API_URL` when set
    (environment or Prefect profile), else the background server of `settings.home` (or `server`;
    started now if none runs), else, with `READERFIRST_PREFECT_SERVER=ephemeral`, Prefect's temporary
    server."""
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if configured:
        return PrefectConnection(str(configured), "PREFECT_API_URL")
    if settings.prefect_server == "ephemeral":
        return PrefectConnection(None, "ephemeral")
    record, started = (server or BackgroundServer(settings.home)).ensure(on_start=on_start)
    os.environ["PREFECT_API_URL"] = record.url
    _reload_prefect_settings()
    return PrefectConnection(record.url, "background", started)


def _reload_prefect_settings() -> None:
    # Prefect reads its settings once, at import; importing it was needed to see a profile's API URL.
    import prefect.context

    refresh = getattr(prefect.context, "refresh_global_settings_context", None)
    if refresh is not None:
        refresh()
    else:  # Prefect before 3.6: what refresh_global_settings_context does
        prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.root_settings_context()
