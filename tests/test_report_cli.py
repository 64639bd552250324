"""`readerfirst report` through typer's runner, on a tiny app built with the command's `register`."""

from __future__ import annotations

import json
import os
import stat

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli.report import register
from tests.test_report_metrics import load_world


@pytest.fixture
def app(db) -> typer.Typer:
    """A typer app with only `report`, over the known-answer world in the test home's database."""
    load_world(db)
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """A group, so that `report` is a subcommand as in readerfirst's CLI."""

    register(app)
    return app


def run(app: typer.Typer, *args: str):
    """Invoke `report` with `args`."""
    return CliRunner().invoke(app, ["report", *args])


def test_html_report_is_written_to_the_file(app, tmp_path):
    """--format html --out writes one HTML page with every edition and says what it wrote and what is flagged."""
    out = tmp_path / "reports" / "engagement.html"
    result = run(app, "--format", "html", "--out", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!doctype html>") and 'data-metric="edition.2026-12-07.ctr"' in html
    assert 'data-metric="edition.2026-11-23.sent"' in html
    assert "wrote the html report of 3 editions" in result.stdout
    assert "2026-12-07 (spam, bounces)" in result.stdout
    assert [p.name for p in out.parent.iterdir()] == ["engagement.html"]  # no temporary file left behind


def test_json_goes_to_standard_output_with_since(app):
    """Without --out the JSON goes to standard output alone, covering editions since the date given."""
    result = run(app, "--format", "json", "--since", "2026-11-30")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [e["edition_id"] for e in data["editions"]] == ["2026-11-30", "2026-12-07"]
    assert data["since"] == "2026-11-30" and data["editions"][1]["clickers"] == 5
    assert "2 editions" in result.stderr


def test_format_follows_the_suffix_of_out(app, tmp_path):
    """With no --format, an .md file gets Markdown and a .json file JSON."""
    assert run(app, "--out", str(tmp_path / "r.md"), "--edition", "2026-11-30").exit_code == 0
    assert (tmp_path / "r.md").read_text().startswith("# Engagement report: edition 2026-11-30")
    assert run(app, "--out", str(tmp_path / "r.json")).exit_code == 0
    assert len(json.loads((tmp_path / "r.json").read_text())["editions"]) == 3


def test_bounce_threshold_option_changes_the_flag(app):
    """--bounce-threshold 0.25 leaves the 20% bounce rate of 2026-12-07 unflagged."""
    result = run(app, "--format", "json", "--bounce-threshold", "0.25")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["editions"][2]["bounce_flag"] is False


def test_unknown_edition_is_a_clear_error_and_writes_nothing(app, tmp_path):
    """An edition never sent exits 2 naming it and the editions sent, and writes no file."""
    out = tmp_path / "r.html"
    result = run(app, "--edition", "2027-01-04", "--out", str(out))
    assert result.exit_code == 2
    assert "2027-01-04" in result.stderr and "2026-12-07" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("args", [["--since", "07/12/2026"], ["--format", "pdf"], ["--bounce-threshold", "2"]])
def test_bad_options_are_refused(app, args):
    """A date not in YYYY-MM-DD, an unknown format or a threshold above 1 is a usage error."""
    result = run(app, *args)
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_existing_out_is_replaced_only_with_force_and_written_as_the_umask_says(app, tmp_path):
    """An existing --out is refused (exit 2, unchanged) unless --force; the report gets the umask's mode, not 0600."""
    out = tmp_path / "r.md"
    out.write_text("mine")
    refused = run(app, "--out", str(out))
    assert refused.exit_code == 2 and "already exists" in refused.stderr and out.read_text() == "mine"
    previous = os.umask(0o022)
    try:
        assert run(app, "--out", str(out), "--force").exit_code == 0
    finally:
        os.umask(previous)
    assert out.read_text().startswith("# Engagement report") and stat.S_IMODE(out.stat().st_mode) == 0o644
