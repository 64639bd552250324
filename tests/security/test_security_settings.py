"""Settings and secrets: only readerfirst's own variables are read, and no weak signing key is ever used."""

from __future__ import annotations

import stat

import pytest

from pipeline.audience.tokens import make_token, read_token
from pipeline.errors import ConfigurationError
from pipeline.settings import MIN_SECRET_BYTES, Settings, load_settings

TRAPS = {
    "HOME": "/trap/home", "home": "/trap/home-lower", "DATABASE_URL": "postgresql://trap/other-app",
    "database_url": "sqlite:////trap/other.db", "SECRET": "abc", "secret": "abc", "WORKERS": "63",
    "workers": "63", "PUBLIC_URL": "https://trap.example", "readerfirst_home": "/trap/lower-prefix",
    "sendgrid_api_key": "SG.trap", "OUTBOX_DIR": "/trap/outbox", "TEMPLATES_DIR": "/trap/templates",
}


@pytest.fixture
def trapped_env(monkeypatch, tmp_path):
    """The environment of a machine where other programs set generic variable names."""
    for name in [name for name in list(__import__("os").environ) if name.startswith(("READERFIRST_", "SENDGRID_"))]:
        monkeypatch.delenv(name)
    for name, value in TRAPS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    return tmp_path


def test_generic_variable_names_are_never_settings(trapped_env):
    """HOME, DATABASE_URL, SECRET, WORKERS and lower-case look-alikes leave every setting at its default."""
    settings = load_settings()
    assert settings.home == trapped_env / "user-home" / ".local" / "share" / "readerfirst"
    assert settings.database_url is None
    assert settings.resolved_database_url.startswith(f"sqlite:///{trapped_env / 'user-home'}")
    assert settings.secret is None
    assert settings.workers == 2
    assert settings.public_url == "http://127.0.0.1:8025"
    assert settings.sendgrid_api_key is None
    assert settings.outbox_dir is None


def test_readerfirst_variables_are_read(trapped_env, monkeypatch):
    """The documented names are read exactly as written."""
    monkeypatch.setenv("READERFIRST_HOME", str(trapped_env / "rf"))
    monkeypatch.setenv("READERFIRST_WORKERS", "3")
    monkeypatch.setenv("READERFIRST_DATABASE_URL", "sqlite:///x.db")
    settings = load_settings()
    assert (settings.home, settings.workers, settings.resolved_database_url) == (trapped_env / "rf", 3, "sqlite:///x.db")


def test_field_names_are_refused_in_code():
    """Constructing settings by field name fails loudly instead of being silently ignored."""
    with pytest.raises(ValueError):
        Settings(home="/tmp/x")


@pytest.mark.parametrize("secret", ["", " ", "abc", "x" * (MIN_SECRET_BYTES - 1), "é" * 15])
def test_short_secret_is_refused_naming_the_variable(monkeypatch, secret):
    """An empty or short READERFIRST_SECRET is a configuration error that names it and never shows it."""
    monkeypatch.setenv("READERFIRST_SECRET", secret)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("READERFIRST_SECRET: must be at least 32 bytes")
    assert "\n" not in message
    if secret.strip():
        assert secret not in message


def test_secret_of_32_bytes_is_used(monkeypatch):
    """A long enough secret becomes the signing key as given."""
    monkeypatch.setenv("READERFIRST_SECRET", "k" * MIN_SECRET_BYTES)
    assert load_settings().signing_secret == b"k" * MIN_SECRET_BYTES


def test_generated_secret_is_private_strong_and_kept(monkeypatch, tmp_path):
    """Without READERFIRST_SECRET a key is generated once, mode 0600, and reused by the next process."""
    monkeypatch.delenv("READERFIRST_SECRET", raising=False)
    monkeypatch.setenv("READERFIRST_HOME", str(tmp_path / "home"))
    first = load_settings().signing_secret
    path = tmp_path / "home" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= MIN_SECRET_BYTES
    assert load_settings().signing_secret == first


def test_weak_key_file_is_refused(monkeypatch, tmp_path):
    """A secret.key someone shortened by hand is refused instead of signing links."""
    monkeypatch.delenv("READERFIRST_SECRET", raising=False)
    monkeypatch.setenv("READERFIRST_HOME", str(tmp_path))
    (tmp_path / "secret.key").write_text("short")
    with pytest.raises(ConfigurationError, match="secret.key holds a signing key shorter than 32 bytes"):
        _ = load_settings().signing_secret


def test_token_made_with_an_empty_key_is_not_genuine():
    """A token an attacker computes with the empty key (the public id is in every link) is refused."""
    real = b"r" * MIN_SECRET_BYTES
    forged = make_token(b"", "abc123", "u")
    assert read_token(real, forged, "u") is None
    assert read_token(real, make_token(real, "abc123", "u"), "u") == "abc123"
