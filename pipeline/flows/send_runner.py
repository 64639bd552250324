"""The send runner: runs `send-edition` flow runs in its own process, with Prefect already loaded.

Started beside the background Prefect server (`python -m pipeline.flows.send_runner`, by
pipeline/flows/handoff.py) with the environment of the command that started it. It registers
the deployment `send-edition/send-runner`, records itself in `<home>/send-runner.json`, and then
takes the deployment's scheduled flow runs: each is claimed (Pending, so two runners never run
one), run in a thread of this process with Prefect's own flow engine, and its summary or its
one-line error left in `<home>/send-runner-results/<run id>.json` for the command that waits.

Prefect's own runner (`flow.serve`) would start a fresh interpreter for every run, importing
Prefect and readerfirst again (3-5 s): the time this runner exists to save. The runner watches
a wake file that `readerfirst send` writes after creating a run, and asks the API for scheduled
runs every few seconds otherwise (runs created from the dashboard). SIGTERM stops it: runs in
flight stop between batches (the send ledger keeps what was sent), then the process exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from datetime import datetime, timezone
from types import FrameType

from pipeline.flows.handoff import DEPLOYMENT_NAME, RunnerRecord, SendRunner, runner_command, settings_fingerprint
from pipeline.settings import load_settings

__all__ = ["serve_sends", "main"]

_IDLE_POLL_SECONDS = 5.0  # runs created without a wake-up (the dashboard) wait at most this long
_WAKE_CHECK_SECONDS = 0.05
_STALE_SECONDS = 600.0
_SERVER_GONE_SECONDS = 60.0  # the server has not answered for this long: it was stopped, and so is the runner
_STALE_MESSAGE = "not taken within 10 minutes of its creation (the send runner was down): run the send again"


def _run_one(runner: SendRunner, flow_run) -> None:
    """Run one claimed flow run to its end and leave its outcome for the command that waits."""
    from prefect.flow_engine import run_flow

    from pipeline.cli.failures import explain
    from pipeline.flows.send_edition import send_edition

    try:
        summary = run_flow(send_edition, flow_run=flow_run)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported to the waiting command
        # The same one line (and exit code) the command prints when it runs the flow itself.
        failure = explain(exc)
        runner.write_result(str(flow_run.id), {"error": failure.message, "code": failure.code})
    else:
        runner.write_result(str(flow_run.id), {"summary": summary})


def _claim(client, flow_run) -> bool:
    """Move a scheduled run to Pending; False when another runner (or a cancel) got there first."""
    from prefect.client.schemas.objects import StateType
    from prefect.states import Pending

    result = client.set_flow_run_state(flow_run.id, Pending())
    return result.state is not None and result.state.type == StateType.PENDING and result.status.value == "ACCEPT"


def serve_sends(stop: threading.Event) -> None:
    """Register the deployment, record this runner, and run its flow runs until `stop` is set."""
    settings = load_settings()
    runner = SendRunner(settings.home)
    fingerprint = settings_fingerprint(settings)  # before Prefect: the settings this process sends with

    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
    from prefect.client.schemas.filters import FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    from pipeline.flows.send_edition import send_edition

    deployment_id = send_edition.to_deployment(name=DEPLOYMENT_NAME, description=(
        "Runs `readerfirst send` in the send runner beside the background Prefect server")).apply()
    runner.record_ready(RunnerRecord(pid=os.getpid(), command=tuple(runner_command()),
                                     server_url=os.environ["PREFECT_API_URL"], deployment_id=str(deployment_id),
                                     fingerprint=fingerprint,
                                     started_at=datetime.now(timezone.utc).isoformat(timespec="seconds")))
    _forget_old_results(runner)
    scheduled = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))
    only_ours = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    threads: dict[str, threading.Thread] = {}
    woken_at = _wake_mark(runner)
    failing_since: float | None = None
    with get_client(sync_client=True) as client:
        while not stop.is_set():
            try:
                _take_waiting_runs(client, runner, scheduled, only_ours, threads)
            except Exception:  # noqa: BLE001 - a busy server answers again; a stopped one never does
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > _SERVER_GONE_SECONDS:
                    raise
                stop.wait(1.0)
                continue
            failing_since = None
            threads = {run_id: t for run_id, t in threads.items() if t.is_alive()}
            waited = 0.0
            while not stop.is_set() and waited < _IDLE_POLL_SECONDS:
                stop.wait(_WAKE_CHECK_SECONDS)
                waited += _WAKE_CHECK_SECONDS
                mark = _wake_mark(runner)
                if mark != woken_at:
                    woken_at = mark
                    break
    _halt_all(threads)


def _take_waiting_runs(client, runner: SendRunner, scheduled, only_ours, threads: dict[str, threading.Thread]) -> None:
    """Claim each scheduled run of the deployment and start it in a thread of its own."""
    from prefect.states import Cancelled

    for flow_run in client.read_flow_runs(flow_run_filter=scheduled, deployment_filter=only_ours, limit=20):
        if _stale(flow_run):
            # Its command is long gone (killed before it could cancel it): a send nobody waits for
            # must not go out by surprise.
            client.set_flow_run_state(flow_run.id, Cancelled(message=_STALE_MESSAGE), force=True)
        elif _claim(client, flow_run):
            thread = threading.Thread(target=_run_one, args=(runner, client.read_flow_run(flow_run.id)),
                                      name=f"send-{flow_run.name}")
            threads[str(flow_run.id)] = thread
            thread.start()


def _forget_old_results(runner: SendRunner) -> None:
    """Outcomes nobody came for (the command was interrupted) are kept a day, then removed."""
    for path in runner.results_dir.glob("*.json"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > 86400:
                path.unlink()


def _stale(flow_run) -> bool:
    """Created more than _STALE_SECONDS ago and never taken (the runner was down)."""
    created = flow_run.created or datetime.now(timezone.utc)
    return (datetime.now(timezone.utc) - created).total_seconds() > _STALE_SECONDS


def _wake_mark(runner: SendRunner) -> int:
    try:
        return runner.wake_path.stat().st_mtime_ns
    except OSError:
        return 0


def _halt_all(threads: dict[str, threading.Thread]) -> None:
    """Stop every send in flight between two batches, and give them a moment to record it."""
    from pipeline.flows.runtime import halt_every_send

    halt_every_send()
    for thread in threads.values():
        thread.join(timeout=15)


def main() -> None:
    """Entry point of `python -m pipeline.flows.send_runner`: serve until SIGTERM or SIGINT."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner = SendRunner(load_settings().home)
    try:
        serve_sends(stop)
    finally:
        record = runner.read()
        if record is not None and record.pid == os.getpid():
            runner.state_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
