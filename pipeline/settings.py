"""Settings, read from environment variables (and nothing else)."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "load_settings", "PROJECT_ROOT"]

# The checkout that holds templates/, editions/ and audiences/ (the package is installed editable).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "readerfirst"


class Settings(BaseSettings):
    """Every setting of readerfirst; each field is the environment variable of the same name."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

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
    reconcile_after: float = Field(default=3600.0, ge=0, alias="READERFIRST_RECONCILE_AFTER")
    sendgrid_webhook_public_key: str | None = Field(default=None, alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    webhook_max_age_seconds: int = Field(default=600, ge=1, alias="READERFIRST_WEBHOOK_MAX_AGE")
    webhook_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, alias="READERFIRST_WEBHOOK_MAX_BYTES")
    learning_half_life_days: float = Field(default=60.0, gt=0, alias="READERFIRST_HALF_LIFE_DAYS")
    soft_bounce_limit: int = Field(default=3, ge=1, alias="READERFIRST_SOFT_BOUNCE_LIMIT")
    # ASM (unsubscribe) group id -> topic, e.g. {"1201": "climate"}: a group unsubscribe opts out of that topic.
    topic_groups: dict[str, str] = Field(default_factory=dict, alias="READERFIRST_TOPIC_GROUPS")
    chunk_size: int = Field(default=5000, ge=1, alias="READERFIRST_CHUNK_SIZE")
    workers: int = Field(default=2, ge=1, le=64, alias="READERFIRST_WORKERS")

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
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()


def load_settings() -> Settings:
    """Read the settings from the environment now."""
    return Settings()
