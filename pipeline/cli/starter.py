"""`readerfirst init DIR`: a starter project a newsletter team edits and keeps in its own repository."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.markup import escape

from pipeline.cli.console import console

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `init` to `app`."""

    @app.command()
    def init(
        folder: Path = typer.Argument(..., help="Folder for the project (created if missing)."),
        force: bool = typer.Option(False, "--force", help="Overwrite the files init writes (never any other file)."),
    ) -> None:
        """Write a starter project: templates, next Monday's edition, topics, an audience, .env.example, README."""
        from pipeline.starter import AUDIENCE_FILE, write_starter_project

        written = write_starter_project(folder, today=dt.date.today(), force=force)
        for path in written:
            console.print(f"wrote {escape(str(path))}")
        edition = next(p for p in written if p.parent.name == "editions" and p.stem[:1].isdigit())
        console.print(f"\nnext: cd {escape(str(folder))} and\n"
                      f"  readerfirst audience import {AUDIENCE_FILE.as_posix()} --audience main\n"
                      f"  readerfirst check editions/{edition.name}\n"
                      f"(see {escape(str(folder / 'README.md'))})")
