"""CLI start-up benchmark: `readerfirst send` with Prefect's temporary server (cold) and with the
background server readerfirst starts once and reuses (warm).

Each figure is one `readerfirst` process, run as a user runs it, from start to exit:
`readerfirst send editions/2026-12-07.yaml --audience small --dry-run` (20 readers), and a real
send of 20 readers to the local outbox (each run to its own fresh 20-reader audience, so every
run sends). Cold runs set READERFIRST_PREFECT_SERVER=ephemeral: Prefect starts its temporary
server in every process. Warm runs use the background server, started once before them (that
one-off start is printed apart). Wall time and the process's CPU time (user + system) are
printed, with the load average, since the machines these run on are shared. Goal (issue 12): a
warm send of a small audience starts and finishes in under 3 s on a warm, quiet machine.

Run: `python benchmarks/cli_startup.py [--runs 3] [--warm-only] [--json]`. Everything happens in a temporary
READERFIRST_HOME and PREFECT_HOME; the background server is stopped at the end.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
READERS = 20
GOAL_SECONDS = 3.0


def _readerfirst(env: dict[str, str], *args: str) -> tuple[float, float]:
    """Run `readerfirst ARGS`; returns its wall and CPU seconds (exits on failure)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([shutil.which("readerfirst") or "readerfirst", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"readerfirst {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    walls = [wall for wall, _ in samples]
    return {"runs": len(samples), "median_s": round(statistics.median(walls), 2), "min_s": round(min(walls), 2),
            "max_s": round(max(walls), 2), "median_cpu_s": round(statistics.median(c for _, c in samples), 2)}


def main() -> None:
    """Time cold and warm sends, print the figures and the cold/warm ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each command in each mode")
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
    audience = work / "small.csv"
    _readerfirst(env, "audience", "sample", "--readers", str(READERS), "--out", str(audience))
    for name in ["small"] + [f"{mode}-{run}" for mode in ("cold", "warm") for run in range(options.runs)]:
        _readerfirst(env, "audience", "import", str(audience), "--audience", name)

    load_before = os.getloadavg()
    results: dict[str, object] = {"readers": READERS, "runs": options.runs}
    dry_run = ("send", str(EDITION), "--audience", "small", "--dry-run")
    try:
        if not options.warm_only:
            results["cold_dry_run"] = _summary([_readerfirst(cold, *dry_run) for _ in range(options.runs)])
            results["cold_send"] = _summary([_readerfirst(cold, "send", str(EDITION), "--audience", f"cold-{run}")
                                             for run in range(options.runs)])
        start, _ = _readerfirst(warm, "prefect-server", "start")
        results["background_server_first_start_s"] = round(start, 2)
        results["warm_dry_run"] = _summary([_readerfirst(warm, *dry_run) for _ in range(options.runs)])
        results["warm_send"] = _summary([_readerfirst(warm, "send", str(EDITION), "--audience", f"warm-{run}")
                                         for run in range(options.runs)])
    finally:
        _readerfirst(warm, "prefect-server", "stop")
    results["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    for what in ("dry_run", "send"):
        if f"cold_{what}" in results:
            results[f"ratio_{what}"] = round(results[f"cold_{what}"]["median_s"] / results[f"warm_{what}"]["median_s"], 1)
    shutil.rmtree(work, ignore_errors=True)

    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"readerfirst send, {READERS} readers, {options.runs} runs each (wall seconds; CPU = user + system)")
    print(f"{'':34}{'median':>8}{'min':>8}{'max':>8}{'CPU':>8}")
    for key, label in (("cold_dry_run", "cold (temporary server), --dry-run"), ("warm_dry_run", "warm (background), --dry-run"),
                       ("cold_send", "cold (temporary server), outbox"), ("warm_send", "warm (background), outbox")):
        if key not in results:
            continue
        row = results[key]
        print(f"{label:34}{row['median_s']:>8}{row['min_s']:>8}{row['max_s']:>8}{row['median_cpu_s']:>8}")
    print(f"background server's first start (once): {results['background_server_first_start_s']} s")
    if "ratio_send" in results:
        print(f"cold / warm: {results['ratio_dry_run']}x (dry run), {results['ratio_send']}x (outbox send)")
    warm_median = results["warm_dry_run"]["median_s"]
    print(f"warm dry run {'meets' if warm_median < GOAL_SECONDS else 'misses'} the {GOAL_SECONDS:g} s goal"
          f" ({warm_median} s); load average {results['load_average_before_after'][0]} before,"
          f" {results['load_average_before_after'][1]} after, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
