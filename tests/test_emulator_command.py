"""`python -m pipeline.emulator`: its options, and a real run in a subprocess stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sendgrid

from pipeline.emulator import MessageStore, build_parser, config_from_args, main
from pipeline.errors import ConfigurationError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sendgrid" / "mail_send_personalized.json"
ROOT = Path(__file__).resolve().parent.parent


def test_options_become_a_config(tmp_path: Path) -> None:
    """Every documented option lands in the EmulatorConfig, the fault rate shared among the chosen kinds."""
    key_file = tmp_path / "key"
    key_file.write_text("SG.k\n")
    args = build_parser().parse_args([
        "--port", "4040", "--api-key-file", str(key_file), "--store", str(tmp_path / "s.db"), "--fault-rate", "0.3",
        "--fault-kinds", "429,drop", "--slow-seconds", "0.1", "--seed", "5", "--webhook-url", "http://127.0.0.1:9/hook",
        "--bounce", "a@example.com", "b@example.com", "--bounce", "c@example.com", "--signing-key", str(tmp_path / "k.pem"),
    ])
    config = config_from_args(args)
    assert (config.port, config.host, config.api_key) == (4040, "127.0.0.1", "SG.k")
    assert config.faults.rate_limited == pytest.approx(0.15) and config.faults.drop == pytest.approx(0.15)
    assert config.faults.server_error == 0 and config.faults.slow_seconds == 0.1 and config.faults.seed == 5
    assert config.bounces == ("a@example.com", "b@example.com", "c@example.com")
    assert config.webhook_url == "http://127.0.0.1:9/hook" and config.signing_key_path == tmp_path / "k.pem"


def test_unknown_fault_kind_is_a_configuration_error(tmp_path: Path, monkeypatch) -> None:
    """An unknown --fault-kinds entry is refused naming the option, and main exits with status 2."""
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.k")
    argv = ["--store", str(tmp_path / "s.db"), "--fault-kinds", "429,timeout"]
    with pytest.raises(ConfigurationError, match="--fault-kinds"):
        config_from_args(build_parser().parse_args(argv))
    assert main(argv) == 2


def test_store_is_required() -> None:
    """Running without --store is a usage error."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_api_key_never_comes_from_the_command_line(tmp_path: Path, monkeypatch) -> None:
    """The key is read from SENDGRID_API_KEY or a file, never an option that `ps` would show; none is an error."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--api-key", "SG.k", "--store", "x.db"])
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="set SENDGRID_API_KEY"):
        config_from_args(build_parser().parse_args(["--store", str(tmp_path / "s.db")]))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="the file is empty"):
        config_from_args(build_parser().parse_args(["--store", "x.db", "--api-key-file", str(empty)]))
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.from-env")
    assert config_from_args(build_parser().parse_args(["--store", "x.db"])).api_key == "SG.from-env"


def test_module_runs_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`python -m pipeline.emulator` serves on loopback, accepts the official client, and exits 0 on SIGTERM with the store kept."""
    store = tmp_path / "staging.db"
    key = tmp_path / "webhook.pem"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.emulator", "--port", "0", "--store", str(store), "--signing-key", str(key)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SENDGRID_API_KEY": "SG.staging"},
    )
    try:
        banner = process.stdout.readline()
        assert banner.startswith("SendGrid emulator on http://127.0.0.1:"), banner + process.stderr.read()
        url = banner.split()[3]
        client = sendgrid.SendGridAPIClient("SG.staging", host=url)
        client.client.timeout = 10
        response = client.client.mail.send.post(request_body=json.loads(FIXTURE.read_text()))
        assert response.status_code == 202
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert process.returncode == 0, process.stderr.read()
    assert key.exists()
    kept = MessageStore(store)
    try:
        assert [m.subject for m in kept.messages_for("ada@example.com")] == ["Ada, your Monday edition"]
    finally:
        kept.close()
