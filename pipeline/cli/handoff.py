"""`readerfirst send` through the send runner: hand the flow run over, follow it, report its outcome.

Nothing here imports Prefect (about 3 s): the run is created and followed over Prefect's REST
API (pipeline/flows/handoff.py), and progress comes from the send ledger. When no runner can
take the run, `send_through_runner` returns None and the command runs the flow itself.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape

from pipeline.cli.console import err_console
from pipeline.flows.handoff import (FINAL_STATES, HandedOffRun, RunnerFailure, RunnerRecord, SendRunner, cancel_run,
                                    hand_off, run_state, server_url_of)
from pipeline.flows.prefect_server import process_runs
from pipeline.settings import Settings

__all__ = ["send_through_runner", "usable_runner"]

_TAKE_WITHIN_SECONDS = 30.0  # a runner that has not taken the run by then is stuck: run it here instead
_SUMMARY_WITHIN_SECONDS = 15.0  # after the run ends, for the runner to leave its summary


def usable_runner(settings: Settings) -> tuple[SendRunner, RunnerRecord] | None:
    """The send runner this command may hand its run to, or None (then the flow runs in this process)."""
    # PREFECT_API_URL names another server, and `ephemeral` asks for a temporary one: no runner there.
    if os.environ.get("PREFECT_API_URL") or settings.prefect_server != "background":
        return None
    server_url = server_url_of(settings.home)
    if server_url is None:
        return None
    runner = SendRunner(settings.home)
    record, why_not = runner.usable(settings, server_url)
    if why_not:
        err_console.print(f"[dim]{escape(why_not)}: sending in this process[/]")
    return (runner, record) if record is not None else None


def send_through_runner(settings: Settings, edition: Path, options: dict, *, show_progress: bool,
                        visible: bool) -> dict | None:
    """Hand the send to the runner and follow it to its end: the flow's summary, or None when no runner
    took it (nothing was sent: the caller runs the flow itself). A failed run raises its one-line error."""
    from pipeline.cli.sending import announce_plan, announce_running, ledger_progress, plan_send

    found = usable_runner(settings)
    if found is None:
        return None
    runner, record = found

    def plan(as_of: dt.datetime | None = None):
        return plan_send(settings, edition, options["audience"], limit=options["limit"], to=options["to"],
                         resend_unconfirmed=options["resend_unconfirmed"], as_of=as_of)

    if options["to"]:
        plan()  # --to's own messages (which of unknown, unsubscribed, already sent) before anything is handed over
    import httpx

    handed_at = dt.datetime.now(dt.timezone.utc)

    try:
        # The folder or file as given, made absolute: the flow picks a folder's newest edition itself.
        run = hand_off(runner, record, {"edition": str(Path(edition).resolve()), **options})
    except (httpx.HTTPError, RunnerFailure) as exc:
        err_console.print(f"[dim]the send runner could not be reached ({type(exc).__name__}): sending in this"
                          " process[/]")
        return None
    follower = _Follower(runner, record, run,
                         lambda: announce_running(run.name, f"in the send runner (pid {record.pid})"))
    # The plan (edition, readers to send) is read while the runner starts the run: it feeds the bar only,
    # and the runner reports any mistake in it (a bad edition, an unknown audience) as the flow's error.
    planned: dict = {}
    planner = threading.Thread(target=_keep, args=(lambda: plan(handed_at), planned), name="send-plan", daemon=True)
    planner.start()
    try:
        outcome = follower.wait(until=lambda: not planner.is_alive())
        if outcome is _PLANNED:
            if "value" in planned:
                announce_plan(planned["value"], options["audience"], dry_run=options["dry_run"],
                              show_progress=show_progress)
                with ledger_progress(planned["value"], dry_run=options["dry_run"], visible=visible) as tick:
                    outcome = follower.wait(tick=tick)
            else:
                outcome = follower.wait()
    except KeyboardInterrupt:
        err_console.print(f"interrupted: flow run {escape(run.name)} goes on in the send runner;"
                          f" `readerfirst status {escape(str(edition))}` shows where it stands ({run.dashboard_url})")
        raise SystemExit(130) from None
    if outcome is None:
        return None
    if "error" in outcome:
        raise RunnerFailure(str(outcome["error"]), int(outcome.get("code", 1)))
    return outcome["summary"]


def _keep(work: Callable[[], object], into: dict) -> None:
    try:
        into["value"] = work()
    except Exception as exc:  # noqa: BLE001 - the runner reports the same mistake as the run's error
        into["error"] = exc


_PLANNED: dict = {}  # wait() returned because its `until` became true


class _Follower:
    """Follows a handed-off run through the result file, the run's state and the runner's process."""

    def __init__(self, runner: SendRunner, record: RunnerRecord, run: HandedOffRun,
                 announce: Callable[[], None]) -> None:
        self.runner, self.record, self.run, self._announce = runner, record, run, announce
        self.handed_at = time.monotonic()
        self.announced = False
        self.ended_at: float | None = None
        self.next_state_check = 0.0

    def announce(self) -> None:
        if not self.announced:
            self.announced = True
            self._announce()

    def wait(self, *, tick: Callable[[], None] = lambda: None, until: Callable[[], bool] = lambda: False) -> dict | None:
        """The run's outcome; None when no runner took it (cancelled); _PLANNED as soon as `until()`."""
        import httpx

        runner, record, run = self.runner, self.record, self.run
        while True:
            outcome = runner.take_result(run.id)
            if outcome is not None:
                self.announce()
                return outcome
            now = time.monotonic()
            if now >= self.next_state_check:
                try:
                    state, _ = run_state(record, run.id)
                except httpx.HTTPError:
                    state = "UNKNOWN"  # the server is busy or restarting: the runner's process decides below
                # Quick checks until the run starts (the first progress line), then once a second.
                self.next_state_check = now + (1.0 if self.announced else 0.05)
                if state == "RUNNING" or state in FINAL_STATES:
                    self.announce()
                if state == "SCHEDULED" and now - self.handed_at > _TAKE_WITHIN_SECONDS and _cancelled(record, run):
                    return None
                if state in FINAL_STATES:
                    self.ended_at = self.ended_at or now
                    if now - self.ended_at > _SUMMARY_WITHIN_SECONDS:
                        raise RunnerFailure(f"flow run {run.name} ended {state.lower()} without a summary from the"
                                            f" send runner; see {runner.log_path}")
            if not process_runs(record.pid, record.command):
                outcome = runner.take_result(run.id)
                if outcome is not None:
                    return outcome
                if _cancelled(record, run):
                    return None
                raise RunnerFailure(f"the send runner (pid {record.pid}) stopped during flow run {run.name}; the"
                                    " ledger kept what was sent: `readerfirst status` shows it, and sending again"
                                    " sends the rest")
            if until():
                return _PLANNED
            tick()
            time.sleep(0.02 if not self.announced else 0.2)


def _cancelled(record: RunnerRecord, run: HandedOffRun) -> bool:
    """Cancel a run no runner has taken, so it cannot go out later by surprise; False once it was taken."""
    if not cancel_run(record, run.id, "not taken by the send runner: the command sent in its own process"):
        return False
    err_console.print("[dim]the send runner did not take the run: sending in this process[/]")
    return True
