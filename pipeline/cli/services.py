"""`readerfirst sendgrid-emulator`: the services readerfirst runs."""

from __future__ import annotations

import sys

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the service commands to `app`."""

    @app.command(
        "sendgrid-emulator",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    def sendgrid_emulator(ctx: typer.Context) -> None:
        """A SendGrid-compatible server on loopback (see `readerfirst sendgrid-emulator --help`)."""
        from pipeline.emulator.command import main as emulator_main

        sys.exit(emulator_main(list(ctx.args)))
