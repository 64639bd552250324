"""`readerfirst evaluate`: run personalisation against simulated readers and print the figures as JSON.

stdout carries only the JSON (`{"editions": [...]}`), so it can be piped; progress and the
goals go to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from pipeline.cli.console import console, err_console

__all__ = ["evaluate", "register"]


def _print_goals(goals: list[dict]) -> None:
    for goal in goals:
        mark = {True: "[green]met[/]", False: "[red]missed[/]", None: "[yellow]not judged[/]"}[goal["met"]]
        note = f" ({goal['note']})" if goal.get("note") else ""
        err_console.print(f"  {mark}  {escape(goal['goal'])}: {escape(json.dumps(goal['value']))}"
                          f" (target {escape(goal['target'])}){escape(note)}")


def evaluate(
    reader_model: Path = typer.Option(..., "--reader-model", exists=True, dir_okay=False,
                                      help="Reader model YAML (see audiences/reader-models/README.md)."),
    editions: int = typer.Option(8, "--editions", min=1, help="Editions to send, a week apart in simulated time."),
    readers: int = typer.Option(5000, "--readers", min=1, help="Simulated readers to generate and import."),
    seed: int = typer.Option(1, "--seed", help="Seed of the readers, the editions and the policy."),
    transport: str = typer.Option("record", "--transport",
                                  help="record (fast, no files) | outbox (.eml files, ~3 ms a reader) | emulator"
                                       " (SendGrid emulator with simulated readers and the signed webhook)."),
    policy: str = typer.Option("thompson", "--policy", help="Personalised policy: thompson | rule | editorial."),
    holdout: float = typer.Option(0.1, "--holdout", min=0.0, max=1.0, help="Share of readers in the editorial holdout."),
    exploration: float = typer.Option(0.1, "--exploration", min=0.0, max=1.0,
                                      help="Share of places the Thompson policy gives to topics never shown."),
    half_life: float | None = typer.Option(None, "--half-life", help="Learning half-life in days (default: the setting)."),
    json_out: Path | None = typer.Option(None, "--json-out", dir_okay=False, help="Also write the JSON to this file."),
    details_out: Path | None = typer.Option(None, "--details-out", dir_okay=False,
                                            help="Write every figure (live arms, drifted readers, goals) to this file."),
    keep: Path | None = typer.Option(None, "--keep", file_okay=False,
                                     help="Keep the run's database, audience, editions here (default: a temporary folder)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 1 when a goal is missed."),
) -> None:
    """Run the whole loop (import, plan, send, engage, learn) against a simulated audience; print JSON."""
    from pipeline.settings import load_settings
    from pipeline.simulation.evaluate import run_evaluation
    from pipeline.simulation.measures import EditionMeasure

    def progress(measure: EditionMeasure) -> None:
        err_console.print(f"edition {measure.edition}: CTR personalised {measure.ctr_personalised:.4f},"
                          f" editorial {measure.ctr_editorial:.4f}, oracle {measure.ctr_oracle:.4f},"
                          f" lift {measure.lift:+.1%} ({measure.readers} personalised readers)")

    result = run_evaluation(reader_model, editions=editions, readers=readers, seed=seed, transport=transport,
                            policy=policy, holdout_share=holdout, exploration=exploration,
                            half_life_days=half_life if half_life is not None else load_settings().learning_half_life_days,
                            folder=keep.resolve() if keep else None, on_edition=progress)
    text = json.dumps(result.as_json(), indent=2)
    console.print_json(text) if console.is_terminal else print(text)
    if json_out is not None:
        json_out.write_text(text + "\n", encoding="utf-8")
    if details_out is not None:
        details_out.write_text(json.dumps(result.details(), indent=2) + "\n", encoding="utf-8")
    err_console.print(f"goals ({result.model.name}, {readers} readers, {editions} editions, seed {seed},"
                      f" {result.seconds:.1f} s):")
    _print_goals(result.goals)
    if strict and any(goal["met"] is False for goal in result.goals):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `evaluate` to `app`."""
    app.command("evaluate")(evaluate)
