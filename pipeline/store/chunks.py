"""Lists of ids cut into pieces that each fit one `IN (...)`, on every database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["IDS_PER_STATEMENT", "ANY_OF_LINES", "id_chunks", "as_lines"]

IDS_PER_STATEMENT = 900  # under SQLite's bound-parameter limit on every version

T = TypeVar("T")

# PostgreSQL: `column = ANY_OF_LINES` with `as_lines(values)` as the one %s parameter. The server
# splits the text itself: psycopg's Python array dumper cost more than the queries it fed.
ANY_OF_LINES = "ANY(string_to_array(%s, E'\\n'))"


def as_lines(values: Sequence[str]) -> str:
    """`values` (addresses, digests: never a line break) as the one parameter of ANY_OF_LINES."""
    return "\n".join(values)


def id_chunks(items: Sequence[T], size: int = IDS_PER_STATEMENT) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
