"""Settings, read from environment variables (and nothing else)."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigurationError

__all__ = ["Settings", "load_settings", "PROJECT_ROOT", "MIN_SECRET_BYTES"]

# The checkout that holds templates/, editions/ and audiences/ (the package is installed editable).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "readerfirst"


# An HMAC key shorter than this can be guessed or brute-forced; every token would then unsubscribe anyone.
MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    """Every setting of readerfirst; each field is read from the environment variable named by its alias.

    Only those names are read, exactly as written (`READERFIRST_*`, `SENDGRID_*`): never a field's
    own name, so another program's `HOME`, `DATABASE_URL` or `SECRET` can never become a setting.
    In code, construct it with the same names: `Settings(READERFIRST_HOME=...)`.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="forbid", populate_by_name=False, case_sensitive=True)

    home: Path = Field(default_factory=_default_home, alias="READERFIRST_HOME")
    database_url: str | None = Field(default=None, alias="READERFIRST_DATABASE_URL")
    templates_dir: Path = Field(default=PROJECT_ROOT / "templates", alias="READERFIRST_TEMPLATES")
    outbox_dir: Path | None = Field(default=None, alias="READERFIRST_OUTBOX")
    public_url: str = Field(default="http://127.0.0.1:8025", alias="READERFIRST_PUBLIC_URL")
    secret: SecretStr | None = Field(default=None, alias="READERFIRST_SECRET")
    from_email: str = Field(default="newsletter@readerfirst.example", alias="READERFIRST_FROM_EMAIL")
    from_name: str = Field(default="readerfirst", alias="READERFIRST_FROM_NAME")
    sendgrid_api_key: SecretStr | None = Field(default=None, alias="SENDGRID_API_KEY")
    sendgrid_api_host: str = Field(default="https://api.sendgrid.com", alias="SENDGRID_API_HOST")
    sendgrid_timeout: float = Field(default=30.0, gt=0, alias="SENDGRID_TIMEOUT")
    sendgrid_sandbox: bool = Field(default=False, alias="READERFIRST_SENDGRID_SANDBOX")
    sendgrid_asm_group_id: int | None = Field(default=None, alias="SENDGRID_ASM_GROUP_ID")
    sendgrid_attempts: int = Field(default=8, ge=1, le=50, alias="READERFIRST_SENDGRID_ATTEMPTS")
    sendgrid_parallel: int = Field(default=4, ge=1, le=32, alias="READERFIRST_SENDGRID_PARALLEL")
    sendgrid_webhook_public_key: str | None = Field(default=None, alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    webhook_max_age_seconds: int = Field(default=600, ge=1, alias="READERFIRST_WEBHOOK_MAX_AGE")
    webhook_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, alias="READERFIRST_WEBHOOK_MAX_BYTES")
    learning_half_life_days: float = Field(default=60.0, gt=0, alias="READERFIRST_HALF_LIFE_DAYS")
    soft_bounce_limit: int = Field(default=3, ge=1, alias="READERFIRST_SOFT_BOUNCE_LIMIT")
    # ASM (unsubscribe) group id -> topic, e.g. {"1201": "climate"}: a group unsubscribe opts out of that topic.
    topic_groups: dict[str, str] = Field(default_factory=dict, alias="READERFIRST_TOPIC_GROUPS")
    chunk_size: int = Field(default=5000, ge=1, alias="READERFIRST_CHUNK_SIZE")
    workers: int = Field(default=2, ge=1, le=64, alias="READERFIRST_WORKERS")
    # background: flows use a Prefect server started once and reused; ephemeral: a temporary one per command.
    prefect_server: Literal["background", "ephemeral"] = Field(default="background", alias="READERFIRST_PREFECT_SERVER")

    @field_validator("secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (it signs every unsubscribe and preference "
                             f"link); make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL: the setting, or a SQLite file in the home folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'readerfirst.db'}"

    @property
    def resolved_outbox_dir(self) -> Path:
        """Where the local outbox writes messages."""
        return self.outbox_dir or self.home / "outbox"

    @property
    def previews_dir(self) -> Path:
        """Where `readerfirst preview` writes a reader's HTML and text."""
        return self.home / "previews"

    @cached_property
    def signing_secret(self) -> bytes:
        """The key that signs unsubscribe and preference tokens.

        Without READERFIRST_SECRET a random key is made once and kept in the home folder,
        so links in sent mail keep working across runs of the same installation.
        """
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        path = self.home / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                # Created private (never readable by others, not even for a moment) and only once:
                # two processes starting together keep the first one's key.
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(handle, "w") as file:
                    file.write(secrets.token_urlsafe(32))
                    file.flush()
                    os.fsync(file.fileno())
        key = path.read_text().strip().encode()
        if len(key) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"{path} holds a signing key shorter than {MIN_SECRET_BYTES} bytes; delete it "
                                     f"to have a new one made, or set READERFIRST_SECRET")
        return key


def _problem(error: dict) -> str:
    name = ".".join(str(part) for part in error.get("loc", ())) or "settings"
    value = error.get("input")
    # A secret's value is never repeated in a message.
    shown = "" if "SECRET" in name or "KEY" in name or isinstance(value, dict) else f"={value!r}"
    return f"{name}{shown}: {error.get('msg', 'invalid').removeprefix('Value error, ')}"


def load_settings() -> Settings:
    """Read the settings from the environment now; a wrong value is a ConfigurationError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError("; ".join(_problem(error) for error in exc.errors())) from None
