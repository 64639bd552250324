"""CLI start-up benchmark: `readerfirst send` of the sample audience, cold, warm in-process, and warm
handed to the send runner: time to the first progress line and to the end.

Each figure is one `readerfirst send editions/2026-12-07.yaml --audience NAME` process, run as a
user runs it, sending the sample audience (400 readers, each run to its own fresh copy, so every
run sends) to the local outbox. Three ways:

- cold: `READERFIRST_PREFECT_SERVER=ephemeral`, Prefect's temporary server in every process;
- warm, in-process: the background server, with the flow run in the `send` process itself
  (PREFECT_API_URL names the background server, so nothing is handed over): how sends ran before;
- warm, handed off: the background server and its send runner (`readerfirst prefect-server start`,
  then one send before the timed ones): the `send` process creates the flow run over REST and follows it.

For each run: seconds from the command's start to its first progress line (`flow run NAME
running ...`, printed once the flow run is running) and to its exit, and the process's CPU time.
The load average is printed too, since the machines these run on are shared. Goal (issue 12): a
warm send of a small audience starts (first progress) in under 3 s on a warm machine.

Run: `python benchmarks/cli_startup.py [--runs 3] [--warm-only] [--json]`. Everything happens in a temporary
READERFIRST_HOME and PREFECT_HOME; the background server and runner are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
SAMPLE = ROOT / "audiences" / "sample.csv"
GOAL_SECONDS = 3.0
FIRST_PROGRESS = "flow run "  # the line `readerfirst send` prints once its flow run is running


def _readerfirst(env: dict[str, str], *args: str) -> dict[str, float]:
    """Run `readerfirst ARGS`: seconds to the first progress line (when printed) and to exit, and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen([shutil.which("readerfirst") or "readerfirst", *args], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first: list[float] = []
    lines: list[str] = []

    def watch() -> None:
        for line in process.stderr:
            lines.append(line)
            if not first and line.startswith(FIRST_PROGRESS) and " running " in line:
                first.append(time.perf_counter() - started)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout = process.stdout.read()
    process.wait()
    watcher.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        sys.exit(f"readerfirst {' '.join(args)} exited {process.returncode}:\n{stdout}\n{''.join(lines)}")
    return {"first_s": first[0] if first else float("nan"), "total_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "handed_off": float(any("in the send runner" in line for line in lines))}


def _summary(samples: list[dict[str, float]]) -> dict[str, float]:
    row: dict[str, float] = {}
    for key in ("first_s", "total_s"):
        values = [sample[key] for sample in samples]
        row.update({f"{key}_median": round(statistics.median(values), 2), f"{key}_min": round(min(values), 2),
                    f"{key}_max": round(max(values), 2)})
    row["cpu_s_median"] = round(statistics.median(sample["cpu_s"] for sample in samples), 2)
    row["handed_off_runs"] = int(sum(sample["handed_off"] for sample in samples))
    return row


def main() -> None:
    """Time cold, warm in-process and warm handed-off sends; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each way")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold runs (minutes each on a loaded machine)")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="readerfirst-cli-startup-"))
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("READERFIRST_", "SENDGRID_", "PREFECT_"))}
    env.update(READERFIRST_HOME=str(work / "home"), READERFIRST_SECRET="benchmark-secret-of-at-least-32-bytes",
               PREFECT_HOME=str(work / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               # Prefect's default 20 s is too short for its temporary server on a loaded machine:
               # a cold run would fail instead of giving a figure.
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300", COLUMNS="120")
    cold = env | {"READERFIRST_PREFECT_SERVER": "ephemeral"}
    warm = env | {"READERFIRST_PREFECT_SERVER": "background"}
    ways = (["cold"] if not options.warm_only else []) + ["in-process", "handed-off"]
    for name in ["warm-up"] + [f"{way}-{run}" for way in ways for run in range(options.runs)]:
        _readerfirst(env, "audience", "import", str(SAMPLE), "--audience", name)

    def send(environment: dict[str, str], audience: str) -> dict[str, float]:
        return _readerfirst(environment, "send", str(EDITION), "--audience", audience)

    load_before = os.getloadavg()
    results: dict[str, object] = {"readers": 400, "runs": options.runs}
    try:
        if not options.warm_only:
            results["cold"] = _summary([send(cold, f"cold-{run}") for run in range(options.runs)])
        start = time.perf_counter()
        _readerfirst(warm, "prefect-server", "start")
        results["background_server_and_runner_first_start_s"] = round(time.perf_counter() - start, 2)
        send(warm, "warm-up")  # readerfirst has run once: the machine's caches are warm
        server_url = json.loads((work / "home" / "prefect-server.json").read_text())["url"]
        in_process = warm | {"PREFECT_API_URL": server_url}
        results["in-process"] = _summary([send(in_process, f"in-process-{run}") for run in range(options.runs)])
        results["handed-off"] = _summary([send(warm, f"handed-off-{run}") for run in range(options.runs)])
    finally:
        _readerfirst(warm, "prefect-server", "stop")
    results["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    shutil.rmtree(work, ignore_errors=True)

    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"readerfirst send of the sample audience (400 readers, outbox), {options.runs} runs each;"
          " wall seconds to the first progress line and to exit (median, min-max); CPU = user + system")
    print(f"{'':34}{'first progress':>22}{'total':>22}{'CPU':>7}")
    for key, label in (("cold", "cold (temporary server)"), ("in-process", "warm, flow run in the command"),
                       ("handed-off", "warm, handed to the send runner")):
        if key not in results:
            continue
        row = results[key]
        first = f"{row['first_s_median']} ({row['first_s_min']}-{row['first_s_max']})"
        total = f"{row['total_s_median']} ({row['total_s_min']}-{row['total_s_max']})"
        print(f"{label:34}{first:>22}{total:>22}{row['cpu_s_median']:>7}")
    print(f"background server and send runner, first start (once): "
          f"{results['background_server_and_runner_first_start_s']} s")
    handed = results["handed-off"]
    print(f"handed to the runner in {handed['handed_off_runs']} of {options.runs} runs; warm first progress"
          f" {'meets' if handed['first_s_median'] < GOAL_SECONDS else 'misses'} the {GOAL_SECONDS:g} s goal"
          f" ({handed['first_s_median']} s); load average {results['load_average_before_after'][0]} before,"
          f" {results['load_average_before_after'][1]} after, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
