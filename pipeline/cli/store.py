"""`readerfirst db ...`: the database."""

from __future__ import annotations

import typer

from pipeline.cli.console import console
from pipeline.settings import load_settings

app = typer.Typer(help="The database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply pending migrations (they also apply themselves on first use)."""
    from pipeline.store.database import create_database_engine, upgrade_database

    url = load_settings().resolved_database_url
    engine = create_database_engine(url)
    applied = upgrade_database(engine, url)
    engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    console.print(f"applied {', '.join(applied)} to {where}" if applied else f"{where} is up to date")
