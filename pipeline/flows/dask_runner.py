"""Prefect's DaskTaskRunner with Dask's message logs kept short in the flow's process.

Every Dask comm that batches messages (the client's to the scheduler, the scheduler's to each
worker) keeps the last `distributed.admin.low-level-log-length` batches it wrote, 1,000 by
default, for debugging. Those batches hold the submitted tasks themselves: each Prefect task
with its parameters (a planned batch of readers), so the flow process, which runs the client
and, with the local cluster, the scheduler, grew by about 150 KB a task until the logs filled:
with the number of chunks, so with the audience (issue 13: peak RSS flat from 100k to 1M).
The runner keeps LOG_LENGTH batches instead, set while it runs, so the client, scheduler and
local workers it starts read it.
"""

from __future__ import annotations

from typing import Any

import dask
from prefect_dask import DaskTaskRunner

__all__ = ["LOG_LENGTH", "LOG_CONFIG", "ShortLogDaskTaskRunner"]

LOG_LENGTH = 20  # enough for a story of the last few messages; a task's payload each
LOG_CONFIG = {"distributed.admin.low-level-log-length": LOG_LENGTH}


class ShortLogDaskTaskRunner(DaskTaskRunner):
    """A DaskTaskRunner whose client, and scheduler when it starts one, keep LOG_LENGTH message batches."""

    def __enter__(self) -> Any:
        runner = super().__enter__()
        # The client and the local cluster are made on first use, inside this context: they
        # read the setting when their comms start. Restored when the runner's exit stack closes.
        self._exit_stack.enter_context(dask.config.set(LOG_CONFIG))
        return runner
