"""Where a flow's tasks run: a thread pool in the flow's own process, or Dask workers.

READERFIRST_TASK_RUNNER=threads (the default) runs READERFIRST_WORKERS tasks at a time in the
flow's process. READERFIRST_TASK_RUNNER=dask hands them to Prefect's `DaskTaskRunner`: to the
scheduler at READERFIRST_DASK_ADDRESS, or, without one, to a local cluster of
READERFIRST_DASK_WORKERS processes of one thread each, started for the flow run and stopped
after it. Tasks travel as ranges of reader ids, and workers share nothing but the database, so
Dask needs a database that several processes can write at once: PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigurationError
from pipeline.settings import Settings

if TYPE_CHECKING:  # the CLI checks settings before Prefect (a second to import) is loaded
    from prefect import Flow
    from prefect.task_runners import TaskRunner

__all__ = ["check_task_runner", "task_runner_for", "with_task_runner", "default_task_runner", "concurrent_tasks",
           "DASK_EXTRA", "WORKER_CONFIG"]

DASK_EXTRA = "pip install 'readerfirst[dask]'"

# Dask's statistical profiler samples every worker thread's stack every 10 ms and keeps a tree
# of it for each second of the last 1,000 (distributed.admin.low-level-log-length): a worker's
# memory grew with the send's length, so with the audience, and no one reads it without the
# dashboard. Off in the local cluster's workers: the Nanny hands this config to each, whose
# dask.config.set applies the dotted key (a nested dict here replaced the whole `distributed` tree).
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}
# The local cluster's workers also get the runner's short message logs (`dask_runner.LOG_CONFIG`).


def check_task_runner(settings: Settings) -> None:
    """Raise a one-line ConfigurationError when the chosen task runner cannot run with these settings."""
    if settings.task_runner != "dask":
        return
    from sqlalchemy.engine import make_url  # here: `readerfirst send` hands off to the runner without SQLAlchemy

    try:
        backend = make_url(settings.resolved_database_url).get_backend_name()
    except Exception:  # noqa: BLE001 - a malformed URL is reported where the database is opened
        backend = ""
    if backend == "sqlite":
        # Every Dask worker process would write the same file: SQLite takes one writer at a time,
        # and a worker that waits past its busy timeout fails its task.
        raise ConfigurationError("READERFIRST_TASK_RUNNER=dask needs PostgreSQL (Dask workers are separate processes"
                                 " writing the ledger at once): set READERFIRST_DATABASE_URL=postgresql://USER:PASSWORD"
                                 "@HOST/DB, or READERFIRST_TASK_RUNNER=threads")
    try:
        import prefect_dask  # noqa: F401
    except ImportError:
        raise ConfigurationError(f"READERFIRST_TASK_RUNNER=dask needs Prefect's Dask integration: {DASK_EXTRA}") from None


def concurrent_tasks(settings: Settings) -> int:
    """How many tasks of one flow run at once: thread-pool workers, or Dask worker processes."""
    return settings.dask_workers if settings.task_runner == "dask" else settings.workers


def task_runner_for(settings: Settings) -> TaskRunner:
    """The task runner these settings choose (checked first: see `check_task_runner`)."""
    from prefect.task_runners import ThreadPoolTaskRunner

    check_task_runner(settings)
    if settings.task_runner != "dask":
        return ThreadPoolTaskRunner(max_workers=settings.workers)
    from pipeline.flows.dask_runner import LOG_CONFIG, ShortLogDaskTaskRunner

    if settings.dask_address:
        return ShortLogDaskTaskRunner(address=settings.dask_address)
    # One thread per worker process: selection and rendering hold the GIL, so a second thread
    # in a process adds no speed, only contention. No dashboard: it needs bokeh and a fixed port.
    cluster: dict[str, Any] = {"n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True,
                               "dashboard_address": None, "config": {**WORKER_CONFIG, **LOG_CONFIG}}
    return ShortLogDaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster)


def with_task_runner(flow: Flow, settings: Settings) -> Flow:
    """`flow` with the task runner of these settings, chosen when it is called, not when it was imported."""
    return flow.with_options(task_runner=task_runner_for(settings))


def default_task_runner() -> TaskRunner:
    """The task runner the environment chooses when the flow module is imported (deployments run with it).

    A choice that cannot run (Dask on SQLite, the extra missing) falls back to the thread pool
    here, and the flow's first step reports it as one line: importing the module never fails on it.
    """
    from prefect.task_runners import ThreadPoolTaskRunner

    from pipeline.settings import load_settings

    settings = load_settings()
    try:
        return task_runner_for(settings)
    except ConfigurationError:
        return ThreadPoolTaskRunner(max_workers=settings.workers)
