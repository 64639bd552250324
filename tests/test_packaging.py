"""The wheel, installed in a clean virtual environment outside the checkout, is a working CLI.

Slow (it builds the sdist and wheel, makes a venv and installs the dependencies from PyPI), so it
runs only when CI or READERFIRST_TEST_WHEEL=1 is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.tools import missing

pytestmark = [
    pytest.mark.skipif(not (os.environ.get("CI") or os.environ.get("READERFIRST_TEST_WHEEL") == "1"),
                       reason="builds and installs the wheel (minutes): set READERFIRST_TEST_WHEEL=1 (CI always runs it)"),
    pytest.mark.timeout(1800),
]

# What the sdist is built from: every path MANIFEST.in and pyproject.toml name, and nothing else of the checkout.
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "pipeline", "templates", "editions", "audiences")


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `python -m build` makes from a copy of the checkout (sdist first, then the wheel from the sdist)."""
    try:
        import build  # noqa: F401
    except ImportError:
        missing("the build package (pip install -e '.[test]')")
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    _run([sys.executable, "-m", "build", "--outdir", str(base / "dist")], source, dict(os.environ))
    return next((base / "dist").glob("readerfirst-*.whl"))


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Iterator[dict[str, object]]:
    """A fresh venv without system site packages, the wheel installed in it, and an environment to run it with."""
    try:
        import ensurepip  # noqa: F401
    except ImportError:
        missing("venv with pip (apt-get install python3-venv)")
    base = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(base / "venv")], base, dict(os.environ))
    bin_dir = base / "venv" / "bin"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("READERFIRST_", "SENDGRID_", "PREFECT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(base / "venv"),
               READERFIRST_HOME=str(base / "home"), READERFIRST_SECRET="wheel-test-secret-of-32-bytes-at-least",
               PREFECT_HOME=str(base / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="300",
               # The demo's temporary Prefect server starts slowly on a busy CI machine (default: 20 s).
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], base, env)
    work = base / "work"  # the working directory: outside the checkout, in no project
    work.mkdir()
    yield {"bin": bin_dir, "env": env, "work": work}
    # The demo starts readerfirst's background Prefect server, as it would for a user: stop it,
    # so that no test leaves a process running.
    subprocess.run([str(bin_dir / "readerfirst"), "prefect-server", "stop"], cwd=work, env=env,
                   capture_output=True, text=True, timeout=120)


def test_wheel_carries_the_packaged_defaults_once(wheel):
    """The wheel holds the templates, the sample edition and topics, the sample audience and reader models."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("templates/layout.mjml.j2", "templates/sections/lead.mjml.j2", "templates/sections/lead.yaml",
                 "templates/text/sections/lead.txt.j2", "templates/text/layout.txt.j2",
                 "editions/2026-12-07.yaml", "editions/topics.yaml", "audiences/sample.csv",
                 "audiences/reader-models/focused.yaml"):
        assert f"pipeline/bundled/{path}" in names
    assert "pipeline/report/templates/report.html.j2" in names and not any(n.startswith("templates/") for n in names)


def test_installed_cli_checks_its_packaged_sample_edition(venv):
    """`readerfirst check` outside any project validates the packaged sample edition with the packaged templates."""
    code = "import pipeline; print(pipeline.__file__)"
    location = _run([str(venv["bin"] / "python"), "-c", code], venv["work"], venv["env"]).stdout
    assert str(ROOT) not in location and str(venv["bin"].parent) in location
    result = _run([str(venv["bin"] / "readerfirst"), "check"], venv["work"], venv["env"])
    assert "edition 2026-12-07 is valid" in result.stdout and "bundled" in result.stdout


def test_installed_cli_makes_a_project_and_checks_it(venv):
    """`readerfirst init` writes a project and `check` run inside it validates next Monday's edition with its templates."""
    _run([str(venv["bin"] / "readerfirst"), "init", "news"], venv["work"], venv["env"])
    project = venv["work"] / "news"
    (project / "templates" / "sections" / "lead.mjml.j2").write_text("{% if %}\n")
    broken = subprocess.run([str(venv["bin"] / "readerfirst"), "check"], cwd=project, env=venv["env"],
                            capture_output=True, text=True, timeout=300)
    assert broken.returncode == 2 and "lead.mjml.j2" in broken.stderr  # the project's template, not the packaged one
    _run([str(venv["bin"] / "readerfirst"), "init", "news", "--force"], venv["work"], venv["env"])
    result = _run([str(venv["bin"] / "readerfirst"), "check"], project, venv["env"])
    assert str(project / "editions") in result.stdout.replace("\n", "") and "is valid" in result.stdout


def test_installed_cli_runs_the_demo(venv):
    """`readerfirst demo --folder DIR` from outside the checkout sends, previews and reports with the packaged files."""
    folder = venv["work"] / "demo"
    result = _run([str(venv["bin"] / "readerfirst"), "demo", "--folder", str(folder)], venv["work"], venv["env"],
                  timeout=1200)
    assert "open the previews: file://" in result.stdout
    assert (folder / "previews" / "2026-12-07" / "index.html").is_file() and (folder / "report.html").is_file()
