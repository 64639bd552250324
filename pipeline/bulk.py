"""Bulk jobs (an audience import, a learning run): Python's cycle collector paused while they run.

Both allocate millions of short-lived rows, tuples and lists, and keep large tables of them in
memory; none of it forms reference cycles, so reference counting frees it all. The collector
still walked it every few hundred allocations: at 1M events it ran 20,243 times during a
learning run and took 13.4 of its 33.8 CPU seconds; at 100k readers it took 1.3 of an import's
3.5. Anything cyclic left by a job is collected once the collector is back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["cycle_collection_paused"]


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Python's cycle collector off inside, back as it was after (also when the job fails)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
