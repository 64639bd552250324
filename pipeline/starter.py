"""A starter project for a newsletter team: what `readerfirst init DIR` writes.

The project holds copies of the packaged templates and topics, an edition for next Monday made
from the sample edition, a small audience of fictional readers, a `.env.example` listing every
setting, and a README for the team. Commands run inside it use its templates and topics
(`pipeline.project` finds it from the working directory).

It never overwrites a file unless asked (`force`), and then only the files it writes itself;
it never writes through a symbolic link, so a link planted in the folder cannot make it write elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.audience.sample import render_sample_csv
from pipeline.errors import PipelineError
from pipeline.project import SAMPLE_EDITION_NAME, packaged_file

__all__ = ["StarterFile", "StarterConflict", "next_monday", "starter_files", "env_example", "write_starter_project",
           "STARTER_READERS", "AUDIENCE_FILE"]

STARTER_READERS = 20
AUDIENCE_FILE = Path("audiences") / "readers.csv"

# Why each setting exists, for .env.example; a setting missing here still gets a line (see `env_example`).
_COMMENTS = {
    "READERFIRST_HOME": "Folder for the default database, outbox, previews and generated secret.",
    "READERFIRST_DATABASE_URL": "Any SQLAlchemy URL, e.g. postgresql://user:pw@host/db (default: SQLite in the home folder).",
    "READERFIRST_TEMPLATES": "Template folder (default: this project's templates/, found from the working directory).",
    "READERFIRST_TOPICS": "Topics of the preference centre (default: this project's editions/topics.yaml).",
    "READERFIRST_EDITIONS": "Edition folder the web service reads readers' web versions from (default: this project's editions/).",
    "READERFIRST_OUTBOX": "Where the local outbox writes .eml files (default: <home>/outbox).",
    "READERFIRST_PUBLIC_URL": "Where readers reach the unsubscribe and preference pages; https in production.",
    "READERFIRST_SECRET": "Signs unsubscribe and preference links, at least 32 bytes (default: generated into <home>/secret.key).",
    "READERFIRST_FROM_EMAIL": "Sender address: a verified SendGrid sender identity or authenticated domain.",
    "READERFIRST_FROM_NAME": "Sender name shown in inboxes.",
    "READERFIRST_NEWSLETTER_NAME": "The newsletter's name in every message's masthead (default: READERFIRST_FROM_NAME).",
    "READERFIRST_ORGANIZATION": "Who publishes the newsletter, named in every footer; required to send through SendGrid.",
    "READERFIRST_POSTAL_ADDRESS": "The publisher's postal address in every footer (CAN-SPAM); required to send through SendGrid.",
    "SENDGRID_API_KEY": "When set, newsletters go through SendGrid instead of the local outbox (Mail Send permission).",
    "SENDGRID_API_HOST": "SendGrid API base URL (the emulator's URL for staging).",
    "SENDGRID_TIMEOUT": "Seconds per SendGrid request; keep it generous (a timed-out request may still be delivered).",
    "READERFIRST_SENDGRID_SANDBOX": "true: SendGrid validates every request and delivers nothing.",
    "SENDGRID_ASM_GROUP_ID": "Unsubscribe group id sent with every message.",
    "READERFIRST_SENDGRID_ATTEMPTS": "Tries per SendGrid request before giving up (429, 5xx, network).",
    "READERFIRST_SENDGRID_PARALLEL": "SendGrid requests in flight at once.",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "The signed Event Webhook's verification key (base64 DER or PEM); without it the webhook refuses events.",
    "READERFIRST_WEBHOOK_MAX_AGE": "Seconds a signed webhook timestamp stays valid (replay window).",
    "READERFIRST_WEBHOOK_MAX_BYTES": "Largest webhook body accepted.",
    "READERFIRST_REPLY_DOMAIN": "Domain of per-reader Reply-To addresses (reply+<token>@it), routed to SendGrid Inbound Parse; unset: no per-reader Reply-To.",
    "SENDGRID_INBOUND_PUBLIC_KEY": "Verification key of the Inbound Parse security policy (signature); without it POST /webhooks/inbound is off (404).",
    "READERFIRST_INBOUND_MAX_BYTES": "Largest Inbound Parse post accepted (bytes).",
    "READERFIRST_HALF_LIFE_DAYS": "Half-life of learned clicks and exposures.",
    "READERFIRST_SOFT_BOUNCE_LIMIT": "Soft bounces in a row before a reader is suppressed.",
    "READERFIRST_TOPIC_GROUPS": "JSON object: SendGrid unsubscribe group id -> topic, e.g. {\"1201\": \"climate\"}.",
    "READERFIRST_CONSENT_SPOOL": "Where the web service keeps unsubscribes the database could not take at once; senders apply them first (default: <home>/consent-spool).",
    "READERFIRST_RECONCILE_AFTER": "Seconds to wait for SendGrid's events about a batch whose answer was lost before sending it again (held instead unless events of the edition from just before and after show the webhook working).",
    "READERFIRST_PREFECT_SERVER": "background: start a Prefect server once and reuse it; ephemeral: a temporary one per command.",
    "READERFIRST_CHUNK_SIZE": "Readers per Prefect task (planning), and per group of batches (sending).",
    "READERFIRST_WORKERS": "Parallel tasks (thread pool).",
    "READERFIRST_TASK_RUNNER": "threads (one process) or dask (tasks on Dask workers; needs PostgreSQL and the [dask] extra).",
    "READERFIRST_DASK_ADDRESS": "Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a local cluster started per send).",
    "READERFIRST_DASK_WORKERS": "Worker processes of that local cluster (one thread each).",
    "READERFIRST_IMPORT_WORKERS": "Processes checking rows of an import: 0 chooses (files over 8 MB, cores beyond 2, up to 4), 1 none.",
    "READERFIRST_POLICY": "Selection policy: thompson, rule or editorial.",
    "READERFIRST_POLICY_SEED": "Seed of the policy's draws (same seed, same picks).",
    "READERFIRST_EXPLORATION": "Share of places given to topics a reader has never been shown.",
    "READERFIRST_HOLDOUT_SHARE": "Share of readers who get the editor's newsletter (0 turns the holdout off).",
    "READERFIRST_ASK": "auto: ask readers whose needs are missing or about to expire what they need next; off: never ask.",
}
# Defaults computed at run time, shown as the rule rather than this machine's value.
_SHOWN = {"READERFIRST_HOME": "~/.local/share/readerfirst", "READERFIRST_TEMPLATES": "templates",
          "READERFIRST_EDITIONS": "editions",
          "READERFIRST_TOPICS": "editions/topics.yaml"}

_TEAM_README = """\
# {name}: our newsletter

A [readerfirst](https://pypi.org/project/readerfirst/) project: each reader gets the sections
of the week's edition that serve them, each with the reason it is there. Run every command
below from this folder: it uses this folder's templates and topics.

| path | what it is |
|---|---|
| `editions/` | one YAML file per edition, named by date; `topics.yaml` lists the topics (format: `editions/README.md`) |
| `templates/` | the MJML layout; per section kind `sections/<kind>.mjml.j2` and its fields in `sections/<kind>.yaml`; the plain-text part |
| `{audience}` | {readers} fictional readers to try things with; replace it with your list or a Mailchimp export |
| `.env.example` | every setting with its default; copy it to `.env` (keep that out of git) and uncomment what you change |

```sh
set -a; . ./.env; set +a                                # the settings (environment variables)
readerfirst audience import {audience} --audience main
readerfirst check editions/                             # the newest edition and the templates
readerfirst preview editions/ --email {email}
readerfirst send editions/ --audience main --dry-run    # selects and renders for everyone, sends nothing
readerfirst send editions/ --audience main              # through SendGrid once SENDGRID_API_KEY is set
```

A new edition each week: copy the latest file in `editions/`, rename it to the Monday it goes
out, and edit its sections. `readerfirst check` reports every problem at once as
`FILE:LINE: field=value: reason`.
"""


@dataclass(frozen=True)
class StarterFile:
    """One file of the starter project: its path inside the project and its text."""

    path: Path
    text: str


class StarterConflict(PipelineError, FileExistsError):
    """`readerfirst init` would overwrite files (or write through links) it was not allowed to; it wrote nothing."""

    def __init__(self, paths: list[Path], reason: str):
        self.paths = list(paths)
        super().__init__(f"{', '.join(str(p) for p in self.paths)}: {reason}; nothing was written")


def next_monday(today: dt.date) -> dt.date:
    """The Monday after `today` (a week later when `today` is a Monday): the next edition's date."""
    return today + dt.timedelta(days=(7 - today.weekday()) or 7)


def _edition_for(monday: dt.date) -> str:
    """The sample edition moved to `monday`: its id, the dates in it and the date in its subject."""
    text = packaged_file("editions", SAMPLE_EDITION_NAME).read_text(encoding="utf-8")
    sample = dt.date.fromisoformat(Path(SAMPLE_EDITION_NAME).stem)
    shift = monday - sample

    def moved(match: re.Match[str]) -> str:
        try:
            return (dt.date.fromisoformat(match.group(0)) + shift).isoformat()
        except ValueError:  # looks like a date but is not one: leave it as written
            return match.group(0)

    text = re.sub(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)", moved, text)
    return text.replace(f"{sample.day} {sample:%B}", f"{monday.day} {monday:%B}")


def _shown(default: object) -> str:
    """A default as its environment variable would be written; unset (None) is empty."""
    if default is None:
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, (dict, list)):
        return json.dumps(default)
    return str(default)


def env_example() -> str:
    """`.env.example`: every setting, commented out at its default, with what it is for."""
    from pipeline.delivery.planning import ENV_EXPLORATION, ENV_HOLDOUT_SHARE, ENV_POLICY, ENV_SEED, PlanSettings
    from pipeline.settings import Settings

    lines = ["# Every readerfirst setting, at its default. Copy to .env (keep .env out of git), uncomment",
             "# what you change, and load it before running readerfirst: set -a; . ./.env; set +a", ""]
    entries: list[tuple[str, object]] = [
        (field.alias, None if field.alias in _SHOWN else field.get_default(call_default_factory=True))
        for field in Settings.model_fields.values() if field.alias]
    plan = PlanSettings()
    entries += [(ENV_POLICY, plan.policy), (ENV_SEED, plan.seed), (ENV_EXPLORATION, plan.exploration),
                (ENV_HOLDOUT_SHARE, plan.holdout_share)]
    for name, default in entries:
        lines += [f"# {_COMMENTS.get(name, 'See the settings table of the readerfirst README.')}",
                  f"# {name}={_SHOWN.get(name, _shown(default))}", ""]
    return "\n".join(lines)


def starter_files(today: dt.date, name: str = "newsletter") -> list[StarterFile]:
    """Every file of the starter project `name` whose next edition goes out the Monday after `today`."""
    templates = packaged_file("templates")
    files = [StarterFile(Path("templates") / p.relative_to(templates), p.read_text(encoding="utf-8"))
             for p in sorted([*templates.rglob("*.j2"), *templates.glob("sections/*.yaml")]) if p.is_file()]
    monday = next_monday(today)
    files += [StarterFile(Path("editions") / name, packaged_file("editions", name).read_text(encoding="utf-8"))
              for name in ("topics.yaml", "README.md")]
    files.append(StarterFile(Path("editions") / f"{monday.isoformat()}.yaml", _edition_for(monday)))
    audience = render_sample_csv(STARTER_READERS)
    files.append(StarterFile(AUDIENCE_FILE, audience))
    first_email = audience.splitlines()[1].split(",", 1)[0]
    files.append(StarterFile(Path(".env.example"), env_example()))
    files.append(StarterFile(Path("README.md"), _TEAM_README.format(name=name, audience=AUDIENCE_FILE.as_posix(),
                                                                     readers=STARTER_READERS, email=first_email)))
    return files


def _unsafe(folder: Path, target: Path) -> bool:
    """True when a folder between `folder` and `target`, or `target` itself, is a link or not what it should be."""
    current = folder
    for part in target.relative_to(folder).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            return True
    return target.is_symlink() or (target.exists() and not target.is_file())


def write_starter_project(folder: Path, *, today: dt.date, force: bool = False) -> list[Path]:
    """Write the starter project into `folder`; returns the files written.

    Refuses, writing nothing, when a file it would write exists (unless `force`: then it
    replaces exactly those files) or when any of its paths is a link or not a regular file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StarterConflict([folder], "exists and is not a folder")
    files = starter_files(today, folder.resolve().name or "newsletter")
    targets = [(folder / f.path, f) for f in files]
    unsafe = [path for path, _ in targets if _unsafe(folder, path)]
    if unsafe:
        raise StarterConflict(unsafe, "is a link or not a regular file; init never writes through one")
    existing = [path for path, _ in targets if path.exists()]
    if existing and not force:
        raise StarterConflict(existing, "exists; init never overwrites a file (--force overwrites only the files "
                                        "init writes)")
    for path, file in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = file.text.encode("utf-8")
        if force:
            # Written beside it, then renamed over it: a reader of the file never sees half of it.
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        else:
            # O_EXCL: a file that appeared since the check above is still never overwritten.
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
    return [path for path, _ in targets]
