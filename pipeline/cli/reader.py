"""`readerfirst reader ...`: one person's data, exported or forgotten (their rights over it)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipeline.cli.console import console
from pipeline.errors import ConfigurationError
from pipeline.settings import load_settings

app = typer.Typer(help="One reader's data: export everything held about them, or forget them.",
                  no_args_is_help=True)


@app.command("export")
def export(
    email: str = typer.Argument(..., help="The reader's address (any case; the domain in Unicode or IDNA form)."),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON to this new file instead of printing it."),
) -> None:
    """Everything readerfirst holds about a reader, in every audience, as JSON."""
    from pipeline.audience.privacy import export_reader
    from pipeline.flows.runtime import database

    data = json.dumps(export_reader(database(load_settings()), email), indent=2, ensure_ascii=False, default=str)
    if out is None:
        print(data)
        return
    try:
        with out.open("x", encoding="utf-8") as file:  # never overwrite: the file holds personal data
            file.write(data + "\n")
    except FileExistsError:
        raise ConfigurationError(f"{out}: already exists; choose another file") from None
    out.chmod(0o600)
    console.print(f"wrote {out}")


@app.command("forget")
def forget(
    email: str = typer.Argument(..., help="The reader's address."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: erase everything about this reader, for good."),
) -> None:
    """Erase a reader everywhere, keeping only a digest of the address so no import brings them back."""
    from pipeline.audience.privacy import forget_reader
    from pipeline.flows.runtime import database

    if not yes:
        raise ConfigurationError("forgetting a reader cannot be undone: add --yes to confirm "
                                 "(run `readerfirst reader export` first if they asked for a copy)")
    report = forget_reader(database(load_settings()), email)
    console.print(f"forgot the reader: {report.readers} profile(s), {report.events} event(s), "
                  f"{report.quarantined} quarantined event(s), {report.replies} reply(ies) erased; "
                  f"the address will not be imported again")
