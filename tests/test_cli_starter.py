"""`readerfirst init` and commands run inside the project it makes, as a team runs them."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import pytest

from pipeline.starter import AUDIENCE_FILE, next_monday


def run(cwd, home, *args, check=True):
    """Run `readerfirst ARGS` in `cwd` with its own home; returns the completed process."""
    environment = {**os.environ, "READERFIRST_HOME": str(home), "COLUMNS": "400",
                   "READERFIRST_SECRET": "cli-secret-of-at-least-32-bytes!!"}
    for name in ("SENDGRID_API_KEY", "READERFIRST_DATABASE_URL", "READERFIRST_TEMPLATES", "READERFIRST_TOPICS"):
        environment.pop(name, None)
    result = subprocess.run(["readerfirst", *args], cwd=cwd, capture_output=True, text=True, env=environment,
                            timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"readerfirst {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def project(tmp_path):
    """A project made by `readerfirst init`, run from outside it."""
    run(tmp_path, tmp_path / "home", "init", "news")
    return tmp_path / "news"


def test_init_then_check_in_the_project_uses_its_edition_and_templates(project, tmp_path):
    """`check` with no argument in the project validates its newest edition (next Monday's) with its own templates."""
    edition = f"{next_monday(dt.date.today()).isoformat()}.yaml"
    assert (project / "editions" / edition).is_file()
    assert f"editions/{edition}: edition" in run(project, tmp_path / "home", "check").stdout
    lead = project / "templates" / "sections" / "lead.mjml.j2"
    lead.write_text(lead.read_text() + "{% if %}\n")
    broken = run(project / "editions", tmp_path / "home", "check", check=False)
    assert broken.returncode == 2 and "lead.mjml.j2" in broken.stderr


def test_preview_in_the_project_renders_with_its_layout(project, tmp_path):
    """A change to the project's layout shows in the preview of a reader imported from the project's audience."""
    layout = project / "templates" / "layout.mjml.j2"
    layout.write_text(layout.read_text().replace("here is what we picked for you", "OUR-OWN-WORDING"))
    home = tmp_path / "home"
    run(project, home, "audience", "import", str(AUDIENCE_FILE), "--audience", "main")
    email = (project / AUDIENCE_FILE).read_text().splitlines()[1].split(",")[0]
    run(project, home, "preview", "editions/", "--email", email, "--out", str(tmp_path / "out"))
    html = next((tmp_path / "out").glob("*.html")).read_text()
    assert "OUR-OWN-WORDING" in html


def test_init_refuses_an_existing_file_by_name(project, tmp_path):
    """A second `init` into the same folder exits 2 naming the files and changes none; --force rewrites them."""
    readme = project / "README.md"
    readme.write_text("ours")
    result = run(tmp_path, tmp_path / "home", "init", "news", check=False)
    assert result.returncode == 2 and "README.md" in result.stderr and "--force" in result.stderr
    assert readme.read_text() == "ours"
    run(tmp_path, tmp_path / "home", "init", "news", "--force")
    assert readme.read_text().startswith("# news: our newsletter")


def test_audience_sample_writes_into_the_project_never_the_package(project, tmp_path):
    """`audience sample` with no --out writes the project's audiences/sample.csv, and outside a project ./sample.csv."""
    run(project / "editions", tmp_path / "home", "audience", "sample", "--readers", "3")
    assert len((project / "audiences" / "sample.csv").read_text().splitlines()) == 4
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run(outside, tmp_path / "home", "audience", "sample", "--readers", "2")
    assert len((outside / "sample.csv").read_text().splitlines()) == 3
