"""The send runner's hand-off: a forged record never makes a send go elsewhere or a process be signalled,
and a handed-off run carries its parameters and never a secret."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from pipeline.audience.importer import import_audience
from pipeline.cli.sending import run_send
from pipeline.flows.handoff import RunnerRecord, SendRunner, runner_command, settings_fingerprint
from pipeline.settings import load_settings
from tests.conftest import EDITION, SAMPLE_AUDIENCE
from tests.test_flows_handoff import standin_runner, write_server_record  # noqa: F401 - the fixture

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                     max_leaves=12)
_FIELDS = ("pid", "command", "server_url", "deployment_id", "fingerprint", "started_at")


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={name: _JSON for name in _FIELDS}) | _JSON)
def test_any_state_file_parses_only_into_a_loopback_runner_record(data):
    """Whatever a damaged or forged state file holds, a record read from it names the runner's own command
    and a loopback server, or there is no record."""
    record = RunnerRecord.parse(json.dumps(data))
    assert record is None or (record.command[1:] == tuple(runner_command()[1:])
                              and record.server_url.startswith("http://127.0.0.1:") and type(record.pid) is int)


def test_forged_record_of_another_process_is_neither_used_nor_stopped(home, monkeypatch):
    """A record naming a live process that is not the runner (a reused pid) is ignored, and `stop` leaves it be."""
    monkeypatch.setenv("READERFIRST_PREFECT_SERVER", "background")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        url = write_server_record(home, 9)
        runner = SendRunner(home)
        runner.write(RunnerRecord(pid=other.pid, command=tuple(runner_command()), server_url=url,
                                  deployment_id="00000000-0000-4000-8000-000000000000",
                                  fingerprint=settings_fingerprint(load_settings()), started_at="2026"))
        assert runner.running() is None and runner.usable(load_settings(), url) == (None, "")
        assert runner.stop(timeout=1) is None and other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_runner_files_are_private(home):
    """The runner's record, wake file and results are readable by this user only (mode 0600)."""
    runner = SendRunner(home)
    runner.write_result("run", {"summary": {"sent": 1}})
    runner.wake("run")
    for path in (runner.result_path("run"), runner.wake_path):
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert runner.take_result("run") == {"summary": {"sent": 1}} and runner.take_result("run") is None


def test_handed_off_run_carries_exact_parameters_and_no_secret(standin_runner, db, home, receiver, monkeypatch,
                                                                prefect_harness):
    """The flow run a send creates holds exactly the send's options, never READERFIRST_SECRET nor the
    SendGrid key; when the server does not create it, the send runs in-process and still completes."""
    import_audience(db, SAMPLE_AUDIENCE, "sample")
    key = "SG.never-in-flow-run-parameters-0123456789"
    monkeypatch.setenv("SENDGRID_API_KEY", key)
    monkeypatch.setenv("SENDGRID_API_HOST", "http://127.0.0.1:9")
    port = receiver.url.split(":")[2].split("/")[0]
    runner = SendRunner(home)
    runner.write(dataclasses.replace(standin_runner.record, server_url=write_server_record(home, int(port)),
                                     fingerprint=settings_fingerprint(load_settings())))
    summary = run_send(EDITION, "sample", dry_run=True, limit=7, show_progress=False)
    [(_, body)] = receiver.posts
    assert json.loads(body)["parameters"] == {"edition": str(EDITION.resolve()), "audience": "sample", "dry_run": True,
                                              "limit": 7, "to": None, "sandbox": False, "resend_unconfirmed": False}
    assert key.encode() not in body and b"test-secret" not in body
    assert summary["readers_selected"] == 7 and summary["dry_run"] is True
