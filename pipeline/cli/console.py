"""Shared console output for the CLI."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "err_console", "fail"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` as an error on stderr and exit with `code`."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(code)
