"""Lists of ids cut into pieces that each fit one `IN (...)`, on every database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["IDS_PER_STATEMENT", "id_chunks"]

IDS_PER_STATEMENT = 900  # under SQLite's bound-parameter limit on every version

T = TypeVar("T")


def id_chunks(items: Sequence[T], size: int = IDS_PER_STATEMENT) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
