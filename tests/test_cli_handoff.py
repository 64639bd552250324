"""`readerfirst send` handed to the send runner beside a real background Prefect server, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline.emulator import running_emulator
from tests.conftest import EDITION, ROOT, SAMPLE_AUDIENCE

# Runs `readerfirst ARGS` in this interpreter and says afterwards whether Prefect was ever imported.
_REPORTS_PREFECT = ("import atexit, sys\n"
                    "atexit.register(lambda: print('prefect imported:', 'prefect' in sys.modules, file=sys.stderr))\n"
                    "from pipeline.cli import main\n"
                    "sys.argv = ['readerfirst', *sys.argv[1:]]\n"
                    "main()\n")


def readerfirst(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI (in a fresh interpreter, as the console script does) with exactly `env`."""
    result = subprocess.run([sys.executable, "-c", _REPORTS_PREFECT, *args], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"readerfirst {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def background(tmp_path):
    """The environment of a user with a background Prefect server and send runner (stopped at the end)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("READERFIRST_", "SENDGRID_")) and name != "PREFECT_API_URL"}
    env.update(READERFIRST_HOME=str(tmp_path / "home"), READERFIRST_SECRET="handoff-secret-of-at-least-32-bytes!",
               READERFIRST_PREFECT_SERVER="background", PYTHONPATH=str(ROOT))
    try:
        yield env
    finally:
        readerfirst(env, "prefect-server", "stop", check=False)


def test_send_handed_to_the_runner_reaches_each_reader_once_then_an_in_process_send_sends_the_rest(background):
    """A send handed to the runner goes to the emulator with no Prefect import in the command; a send the
    runner cannot take (other settings) runs in-process and sends only the readers not yet sent."""
    with running_emulator() as emulator:
        env = background | {"SENDGRID_API_KEY": emulator.api_key, "SENDGRID_API_HOST": emulator.url}
        readerfirst(env, "audience", "import", str(SAMPLE_AUDIENCE), "--audience", "sample")
        started = readerfirst(env, "prefect-server", "start").stdout
        assert "send runner started (pid " in started
        assert "sends from this environment are handed to it" in readerfirst(env, "prefect-server", "status").stdout

        handed = readerfirst(env, "send", str(EDITION), "--audience", "sample", "--limit", "30", "--json")
        summary = json.loads(handed.stdout)
        assert (summary["sent"], summary["sent_total"], summary["transport"]) == (30, 30, "sendgrid")
        assert "running in the send runner (pid " in handed.stderr
        assert "prefect imported: False" in handed.stderr
        first = emulator.store.count_by_recipient()
        assert len(first) == 30 and set(first.values()) == {1}

        # Another setting: the runner would not send as this command asks, so the command sends itself.
        rest = readerfirst(env | {"READERFIRST_WORKERS": "1"}, "send", str(EDITION), "--audience", "sample", "--json")
        assert "started with other settings" in rest.stderr and "running in this process" in rest.stderr
        subscribed = json.loads(readerfirst(env, "audience", "list", "--json").stdout)[0]["subscribed"]
        assert json.loads(rest.stdout)["sent_total"] == subscribed
        everyone = emulator.store.count_by_recipient()
        assert len(everyone) == subscribed and set(everyone.values()) == {1}

    stopped = readerfirst(env, "prefect-server", "stop").stdout
    assert "stopped the send runner" in stopped and "stopped the Prefect server" in stopped


def test_cli_loads_no_prefect_database_or_rendering_until_a_command_needs_them():
    """Importing the CLI (what `--help` and every command pay first) loads neither Prefect, SQLAlchemy,
    Alembic, the templates' engines, SendGrid nor an HTTP client."""
    code = ("import sys, pipeline.cli\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'sqlalchemy', 'alembic', 'jinja2',"
            " 'mjml', 'sendgrid', 'httpx', 'starlette', 'yaml'}))")
    loaded = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_import_help_lists_every_reader_status():
    """`audience import --help` names every status an audience file may give (written out in the CLI)."""
    from pipeline.audience.records import STATUSES

    result = readerfirst(dict(os.environ) | {"PYTHONPATH": str(ROOT)}, "audience", "import", "--help")
    assert f"({', '.join(STATUSES)})" in " ".join(result.stdout.split())  # as one line, however it is wrapped
