"""Locating the external tools some tests need: the reference MJML (npm) and headless Chromium.

Locally a missing tool skips its tests; in CI (CI=true) a missing tool fails them, because
`.ci/run` installs both and a skipped check there would be a check that cannot fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["mjml_binary", "chromium_binary", "chromium_screenshot", "chromium_dom", "missing", "png_is_blank",
           "postgres_database"]


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


def png_rows(path: Path) -> list[bytes]:
    """The scanlines of an 8-bit RGB(A) PNG as stored (filter byte first): equal rows show equal pixels
    wherever the row above is equal too, which is enough to count how much of an image changed."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    chunks, offset, width, height, colour = [], 8, 0, 0, 0
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height, _, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * (4 if colour == 6 else 3) + 1
    return [raw[r * stride:(r + 1) * stride] for r in range(height)]


def png_rows_changed(one: Path, other: Path) -> float:
    """The share of scanlines that differ between two PNGs of the same size."""
    a, b = png_rows(one), png_rows(other)
    assert len(a) == len(b) and a, f"{one} and {other} differ in height"
    return sum(x != y for x, y in zip(a, b)) / len(a)


def png_is_blank(path: Path) -> bool:
    """True when sampled rows of an 8-bit RGB(A) PNG are all alike (nothing drawn)."""
    rows = png_rows(path)
    return len({row[1:] for row in rows[::max(1, len(rows) // 50)]}) <= 1


@contextmanager
def postgres_database():
    """A migrated database in a fresh schema of the test PostgreSQL (READERFIRST_TEST_POSTGRES_URL)."""
    import uuid

    from sqlalchemy import text

    from pipeline.store.database import open_database

    url = os.environ.get("READERFIRST_TEST_POSTGRES_URL")
    if not url:
        missing("PostgreSQL (READERFIRST_TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = open_database(url, migrate=False)
    with admin.engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    db = open_database(f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
