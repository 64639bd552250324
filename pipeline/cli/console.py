"""Shared console output for the CLI.

Rich never interprets what users wrote: no emoji codes (`interests=ai:abc` must not print
`ai🔤`), no highlighting, and markup only in our own literal strings, where every user value
goes through `escape` or is printed as a `Text`. When output is not a terminal, lines are never wrapped, so scripts can
read `FILE:LINE: ...` lines whole.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

__all__ = ["console", "err_console", "fail", "labelled", "make_console", "print_json", "progress_bar", "working"]


def make_console(*, stderr: bool = False) -> Console:
    """A console that prints user text as it is, and wraps only on a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=not stream.isatty())


console = make_console()
err_console = make_console(stderr=True)


def labelled(label: str, style: str, text: str) -> Text:
    """`label text` with only the label styled: `text` is never read as markup (escape() would double a
    trailing backslash)."""
    return Text.assemble((label, style), " ", text)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` as an error on stderr and exit with `code` (2: bad input, 1: a failure outside)."""
    err_console.print(labelled("error:", "bold red", message))
    sys.exit(code)


def print_json(data: Any) -> None:
    """Write `data` as one JSON document on standard output, nothing else (for --json)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def working(what: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while a step runs, shown only on a terminal and after a second.

    Never in --json output or in a pipe: scripts read the output, and a quick step needs no spinner.
    """
    if not enabled or not err_console.is_terminal:
        yield
        return
    status = err_console.status(what)
    timer = threading.Timer(1.0, status.start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()  # a start already under way finishes before the stop
        status.stop()


@contextmanager
def progress_bar(what: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr fed with (bytes done, bytes in all), shown only on a terminal and after a second.

    Like `working`: a pipe or a quick step gets nothing, so scripts and small files see no bar.
    """
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    started = time.monotonic()
    bar = Progress(TextColumn(what), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=err_console,
                   transient=True)
    task: list = []

    def update(done: int, total: int) -> None:
        if not task:
            if time.monotonic() - started < 1.0:
                return
            bar.start()
            task.append(bar.add_task(what, total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            bar.stop()
