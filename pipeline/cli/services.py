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

    @app.command()
    def web(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8025, "--port", help="Port to listen on."),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    ) -> None:
        """The web service: SendGrid event webhook, one-click unsubscribe, preference centre."""
        from pipeline.web import serve

        serve(host, port, workers=workers)
