"""`readerfirst prefect-server status | start | stop`: the Prefect server flow runs reuse."""

from __future__ import annotations

import os

import typer

from pipeline.cli.console import console, err_console
from pipeline.flows.handoff import SendRunner
from pipeline.flows.prefect_server import BackgroundServer, PrefectConnection, use_prefect_server
from pipeline.settings import Settings, load_settings

__all__ = ["app", "connect_flow_runs"]

app = typer.Typer(help="The Prefect server readerfirst starts in the background and reuses.", no_args_is_help=True)


def connect_flow_runs() -> PrefectConnection:
    """Before a command's first flow run: reuse (or start once) the Prefect server its runs report to."""
    settings = load_settings()
    connection = use_prefect_server(
        settings,
        on_start=lambda: err_console.print("[dim]starting a Prefect server in the background"
                                           " (once: later commands reuse it)...[/]"))
    if connection.started:
        err_console.print(f"[dim]Prefect server running at {connection.url}; it keeps running for later commands:"
                          " `readerfirst prefect-server stop` stops it[/]")
    if connection.source == "background" and connection.url:
        # Started now, it takes the next sends (this run is already under way here); one with
        # other settings is left alone: it may be sending for whoever started it.
        SendRunner(settings.home).ensure(settings, connection.url)
    return connection


@app.command()
def status() -> None:
    """Whether the background Prefect server and its send runner run, where, and where their data and logs are."""
    settings = load_settings()
    server = BackgroundServer(settings.home)
    state = server.status()
    if state.record is None:
        console.print(f"no background Prefect server recorded in {server.state_path}")
    elif state.usable:
        record = state.record
        console.print(f"running: {record.url} (pid {record.pid}, Prefect {record.prefect_version},"
                      f" started {record.started_at})")
    elif state.running:
        console.print(f"starting or not answering: {state.record.url} (pid {state.record.pid}); see {server.log_path}")
    else:
        console.print(f"not running (pid {state.record.pid} has exited); the next flow run starts a new server")
    console.print(f"data: {server.data_dir}\nlog: {server.log_path}\nflow runs use: " + _flow_runs_use(settings))
    runner = SendRunner(settings.home)
    runner_record = runner.running()
    if runner_record is None:
        console.print(f"send runner: not running (sends run in their own command); log: {runner.log_path}")
    elif not runner_record.deployment_id:
        console.print(f"send runner: starting (pid {runner_record.pid}); log: {runner.log_path}")
    else:
        _, why_not = runner.usable(settings, state.record.url if state.record else "")
        console.print(f"send runner: running (pid {runner_record.pid}, since {runner_record.started_at}); "
                      + (f"this environment's sends run in their own command: {why_not}" if why_not
                         else "sends from this environment are handed to it") + f"; log: {runner.log_path}")


def _flow_runs_use(settings: Settings) -> str:
    if os.environ.get("PREFECT_API_URL"):
        return f"PREFECT_API_URL={os.environ['PREFECT_API_URL']}"
    if settings.prefect_server == "ephemeral":
        return "a temporary server per command (READERFIRST_PREFECT_SERVER=ephemeral)"
    return "this background server (PREFECT_API_URL unset; a Prefect profile's API URL would win)"


@app.command()
def start() -> None:
    """Start the background Prefect server and its send runner now, or say where they already run."""
    settings = load_settings()
    server = BackgroundServer(settings.home)
    record, started = server.ensure(on_start=lambda: console.print("starting the Prefect server..."))
    console.print(f"{'started' if started else 'already running'}: {record.url} (pid {record.pid});"
                  f" dashboard {record.url.removesuffix('/api')}")
    # Started (or restarted) with this environment's settings, so this environment's sends are handed to it.
    runner, runner_started = SendRunner(settings.home).ensure(settings, record.url, replace=True, wait=True)
    console.print(f"send runner {'started' if runner_started else 'already running'} (pid {runner.pid}):"
                  " `readerfirst send` hands its flow runs to it")


@app.command()
def stop() -> None:
    """Stop the send runner and the background Prefect server (flow runs start them again when needed)."""
    home = load_settings().home
    runner = SendRunner(home).stop()
    if runner is not None:
        console.print(f"stopped the send runner (pid {runner.pid})")
    server = BackgroundServer(home)
    record = server.stop()
    if record is None:
        console.print("no background Prefect server was running")
    else:
        console.print(f"stopped the Prefect server at {record.url} (pid {record.pid}); its data stays in"
                      f" {server.data_dir}")
