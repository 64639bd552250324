"""Settings, read from environment variables (and nothing else)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigurationError
from pipeline.project import packaged_defaults, project_editions, project_templates, project_topics

if TYPE_CHECKING:
    from pipeline.rendering.identity import SenderIdentity

__all__ = ["Settings", "load_settings", "is_loopback_url", "PROJECT_ROOT", "MIN_SECRET_BYTES"]

# The packaged templates/, editions/ and audiences/: the wheel's pipeline/bundled/, or an editable install's
# checkout. A team's own project (readerfirst init) is found from the working directory: see pipeline/project.py.
PROJECT_ROOT = packaged_defaults()


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
    templates_dir: Path = Field(default_factory=project_templates, alias="READERFIRST_TEMPLATES")
    topics_file: Path = Field(default_factory=project_topics, alias="READERFIRST_TOPICS")
    # Where `readerfirst web` finds an edition to show a reader's web version of it.
    editions_dir: Path = Field(default_factory=project_editions, alias="READERFIRST_EDITIONS")
    outbox_dir: Path | None = Field(default=None, alias="READERFIRST_OUTBOX")
    public_url: str = Field(default="http://127.0.0.1:8025", alias="READERFIRST_PUBLIC_URL")
    secret: SecretStr | None = Field(default=None, alias="READERFIRST_SECRET")
    from_email: str = Field(default="newsletter@readerfirst.example", alias="READERFIRST_FROM_EMAIL")
    from_name: str = Field(default="readerfirst", alias="READERFIRST_FROM_NAME")
    # The masthead and footer name the newsletter and its publisher; CAN-SPAM requires a postal
    # address in every message, so a send through SendGrid refuses without them (see sender_identity).
    newsletter_name: str | None = Field(default=None, alias="READERFIRST_NEWSLETTER_NAME")
    organization: str | None = Field(default=None, alias="READERFIRST_ORGANIZATION")
    postal_address: str | None = Field(default=None, alias="READERFIRST_POSTAL_ADDRESS")
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
    # Replies: readers' Reply-To is reply+<signed token>@this domain (routed to SendGrid's Inbound Parse);
    # unset, messages carry no per-reader Reply-To and replies go to the From address.
    reply_domain: str | None = Field(default=None, alias="READERFIRST_REPLY_DOMAIN")
    sendgrid_inbound_public_key: str | None = Field(default=None, alias="SENDGRID_INBOUND_PUBLIC_KEY")
    inbound_max_bytes: int = Field(default=30 * 1024 * 1024, ge=1024, alias="READERFIRST_INBOUND_MAX_BYTES")
    learning_half_life_days: float = Field(default=60.0, gt=0, alias="READERFIRST_HALF_LIFE_DAYS")
    soft_bounce_limit: int = Field(default=3, ge=1, alias="READERFIRST_SOFT_BOUNCE_LIMIT")
    # ASM (unsubscribe) group id -> topic, e.g. {"1201": "climate"}: a group unsubscribe opts out of that topic.
    topic_groups: dict[str, str] = Field(default_factory=dict, alias="READERFIRST_TOPIC_GROUPS")
    # Where the web service keeps reader decisions (unsubscribes, preference saves) the database
    # could not take at once; every send applies them first, so it must be reachable by senders too.
    consent_spool_dir: Path | None = Field(default=None, alias="READERFIRST_CONSENT_SPOOL")
    chunk_size: int = Field(default=5000, ge=1, alias="READERFIRST_CHUNK_SIZE")
    workers: int = Field(default=2, ge=1, le=64, alias="READERFIRST_WORKERS")
    # threads: one process, READERFIRST_WORKERS tasks at a time; dask: tasks on Dask workers (PostgreSQL only).
    task_runner: Literal["threads", "dask"] = Field(default="threads", alias="READERFIRST_TASK_RUNNER")
    dask_address: str | None = Field(default=None, alias="READERFIRST_DASK_ADDRESS")
    dask_workers: int = Field(default=2, ge=1, le=256, alias="READERFIRST_DASK_WORKERS")
    # Processes that check an audience file's rows during an import (0: by the file's size and the cores).
    import_workers: int = Field(default=0, ge=0, le=64, alias="READERFIRST_IMPORT_WORKERS")
    # background: flows use a Prefect server started once and reused; ephemeral: a temporary one per command.
    prefect_server: Literal["background", "ephemeral"] = Field(default="background", alias="READERFIRST_PREFECT_SERVER")
    # auto: readers whose needs are missing or about to run out get the ask in their copy; off: nobody does.
    ask: Literal["auto", "off"] = Field(default="auto", alias="READERFIRST_ASK")

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
    def resolved_consent_spool_dir(self) -> Path:
        """Where decisions wait for the database (see pipeline/web/consent_spool.py)."""
        return self.consent_spool_dir or self.home / "consent-spool"

    @property
    def previews_dir(self) -> Path:
        """Where `readerfirst preview` writes a reader's HTML and text."""
        return self.home / "previews"

    @property
    def sends_beyond_loopback(self) -> bool:
        """True when SendGrid is configured with an API host that is not this machine (real mail goes out)."""
        return self.sendgrid_api_key is not None and not is_loopback_url(self.sendgrid_api_host)

    def public_url_problem(self) -> str | None:
        """Why READERFIRST_PUBLIC_URL cannot go into real readers' mail, or None.

        Unsubscribe and preference links, and the one-click `List-Unsubscribe` header, point
        there: Gmail and Yahoo honour one-click only over https, and a loopback address reaches
        nobody but the sender's own machine.
        """
        url = self.public_url.strip()
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            return (f"READERFIRST_PUBLIC_URL={url!r} must be an https:// address readers can reach (its unsubscribe "
                    f"and preference links go into every message); set it to where `readerfirst web` is served")
        if is_loopback_url(url):
            return (f"READERFIRST_PUBLIC_URL={url!r} points at this machine, which readers cannot reach; set it to "
                    f"the public https:// address of `readerfirst web`")
        return None

    def identity_problem(self) -> str | None:
        """Which sender-identity setting real readers' mail lacks, or None (see `sender_identity`)."""
        for alias, value in (("READERFIRST_ORGANIZATION", self.organization),
                             ("READERFIRST_POSTAL_ADDRESS", self.postal_address)):
            if not (value or "").strip():
                return (f"{alias} is not set: every message through SendGrid must name its sender and their "
                        f"postal address (CAN-SPAM); set it to your organisation's {alias.split('_', 1)[1].lower().replace('_', ' ')}")
        return None

    def sender_identity(self) -> SenderIdentity:
        """Masthead and footer identity; sample values stand in where unset (outbox, emulator, demo)."""
        # Imported here: the rendering package imports the content package, which reads these settings.
        from pipeline.rendering.identity import SAMPLE_ORGANIZATION, SAMPLE_POSTAL_ADDRESS, SenderIdentity

        return SenderIdentity(newsletter_name=(self.newsletter_name or "").strip() or self.from_name,
                              organization=(self.organization or "").strip() or SAMPLE_ORGANIZATION,
                              postal_address=(self.postal_address or "").strip() or SAMPLE_POSTAL_ADDRESS)

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


def is_loopback_url(url: str) -> bool:
    """True for a URL whose host is this machine (localhost or a loopback address)."""
    host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
