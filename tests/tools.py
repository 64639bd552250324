"""Locating the external tools some tests need: the reference MJML (npm) and headless Chromium.

Locally a missing tool skips its tests; in CI (CI=true) a missing tool fails them, because
`.ci/run` installs both and a skipped check there would be a check that cannot fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["mjml_binary", "chromium_binary", "chromium_screenshot", "chromium_dom", "missing"]


def missing(what: str) -> None:
    """Skip locally, fail in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI; .ci/run should have installed it")
    pytest.skip(f"{what} not installed")


def mjml_binary() -> str:
    """Path of the reference `mjml` CLI installed by `.ci/run` under tools/mjml."""
    path = ROOT / "tools" / "mjml" / "node_modules" / ".bin" / "mjml"
    if not path.exists():
        missing("npm mjml (cd tools/mjml && npm ci)")
    return str(path)


def chromium_binary() -> str:
    """Debian's chromium."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        missing("chromium (apt-get install chromium)")
    return found


_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium_binary(), *_FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120)


def chromium_screenshot(url: str, out: Path, profile: Path, width: int = 700, height: int = 2000) -> Path:
    """Render `url` headless and save a PNG screenshot."""
    result = _chromium(url, profile, f"--window-size={width},{height}", f"--screenshot={out}")
    assert out.exists(), result.stderr[-2000:]
    return out


def chromium_dom(url: str, profile: Path) -> str:
    """The DOM of `url` after Chromium loaded it."""
    result = _chromium(url, profile, "--dump-dom", "--virtual-time-budget=2000")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
