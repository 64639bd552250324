"""An audience file's rows checked in batches, here or in worker processes while this one reads and stages.

Reading a CSV has to happen in one place (a quoted cell may span lines, and line numbers
count from the top), but checking a row needs nothing from any other row: addresses,
names, time zones, topics and dates are all checked on their own. A big import therefore
reads here and sends batches to `workers` processes, which check them while this process
stages the batches already checked; batches come back in file order, so problems, line
numbers and which of two equal addresses comes first are the same as when checking here.
At most two batches per worker are in flight: memory stays flat however long the file.

A worker that dies takes the import with it (the executor raises, the transaction rolls
back): nothing of the file is imported, as with any other failure.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pipeline.audience.records import AudienceScan, ScannedRow
from pipeline.errors import ImportInterrupted

__all__ = ["AUTO_WORKERS_FROM_BYTES", "checked_batches", "checking_workers"]

# Below this size (about 50k readers) starting processes costs more than checking in this one.
AUTO_WORKERS_FROM_BYTES = 8 << 20
_IN_FLIGHT_PER_WORKER = 2
_BUSY_CORES = 2  # the importer's own process, and the database's

T = TypeVar("T")
RawRow = tuple[int, dict[str, Any] | str, str]


def checking_workers(setting: int, file_size: int) -> int:
    """How many processes check rows: `setting` when given (1: this process only), else by size and cores."""
    if setting > 0:
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # The importing process and the database each keep a core busy: checkers only help on the others
    # (measured on 2 cores: two checking processes made a 100k import half as fast).
    spare = cores - _BUSY_CORES
    return min(spare, 4) if spare > 1 and file_size >= AUTO_WORKERS_FROM_BYTES else 1


def checked_batches(scan: AudienceScan, batch_size: int, workers: int) -> Iterator[list[ScannedRow]]:
    """The file's rows, checked, `batch_size` at a time, in file order."""
    batches = _batches(scan.raw_rows(), batch_size)
    if workers <= 1:
        for batch in batches:
            yield scan.checker.check_all(batch)
        return
    # spawn, not fork: the CLI's progress bar and a flow's threads must not be copied mid-lock.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque[Future[list[ScannedRow]]] = deque()
    try:
        for batch in batches:
            # The checker travels with each batch: it is only known once the header has been read.
            pending.append(pool.submit(scan.checker.check_all, batch))
            while len(pending) > _IN_FLIGHT_PER_WORKER * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise ImportInterrupted(f"{scan.file}: a process checking its rows stopped (killed, or out of memory);"
                                " nothing was imported; run the import again") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _batches(rows: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
