"""Send benchmark: the send-edition flow delivering to the SendGrid-compatible emulator.

For each audience size, a fresh child process imports generated readers into a new SQLite
database, starts the emulator as its own process on loopback, and runs the `send-edition`
flow (Prefect's test harness as the API server) through the official `sendgrid` client.
It prints readers/s end to end (planning + rendering + sending + ledger, as the flow
reports it, Prefect start-up excluded), requests and distinct variants per 1,000 readers
(requests must equal the minimum: for each variant, its readers / 1,000 rounded up), and
the sending process's peak RSS, so that flat memory is visible. Goal: >= 5,000 readers/s.

Run: `python benchmarks/send_sendgrid.py [--readers 25000 50000 100000] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
GOAL_READERS_PER_SECOND = 5000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def import_readers(home: Path, readers: int) -> None:
    """Generate `readers` readers (seed 3) and import them into `home`'s database."""
    os.environ.update(READERFIRST_HOME=str(home), READERFIRST_SECRET="benchmark-secret-of-at-least-32-bytes")
    from pipeline.audience.importer import import_audience
    from pipeline.audience.sample import write_sample_csv
    from pipeline.store import open_database

    db = open_database(f"sqlite:///{home / 'readerfirst.db'}")
    import_audience(db, write_sample_csv(home / "readers.csv", readers, seed=3), "bench")
    db.dispose()


def child(readers: int, parallel: int) -> dict:
    """One measured send of `readers` generated readers (runs in its own process)."""
    home = Path(tempfile.mkdtemp(prefix=f"rf-send-{readers}-"))
    port = _free_port()
    os.environ.update(READERFIRST_HOME=str(home), READERFIRST_SECRET="benchmark-secret-of-at-least-32-bytes", PREFECT_HOME=str(home / "prefect"),
                      PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING",
                      PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED="false",
                      SENDGRID_API_KEY="SG.benchmark", SENDGRID_API_HOST=f"http://127.0.0.1:{port}",
                      READERFIRST_SENDGRID_PARALLEL=str(parallel))
    # The import runs in a process of its own: its peak memory (it checks every row before it
    # stores any) must not be counted as the send's.
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--import-into", str(home), "--child", str(readers)], check=True)
    import_seconds = time.perf_counter() - started
    from sqlalchemy import func, select

    from pipeline.store import open_database
    from pipeline.store.models import SendLedgerEntry

    db = open_database(f"sqlite:///{home / 'readerfirst.db'}")
    emulator = subprocess.Popen([sys.executable, "-m", "pipeline.emulator", "--port", str(port), "--api-key",
                                 "SG.benchmark", "--store", str(home / "emulator.db")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=60):
            from pipeline.flows.send_edition import send_edition

            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            summary = send_edition(edition=str(EDITION), audience="bench")
            rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        emulator.terminate()
        emulator.wait(10)
    with db.session() as session:
        per_variant = session.execute(select(SendLedgerEntry.variant_id, func.count())
                                      .group_by(SendLedgerEntry.variant_id)).all()
    minimum = sum(math.ceil(count / 1000) for _, count in per_variant)
    return {
        "readers": readers, "sent": summary["sent"], "seconds": summary["seconds"],
        "plan_seconds": summary["plan_seconds"], "send_seconds": summary["send_seconds"],
        "readers_per_second": summary["sent"] / summary["seconds"],
        "requests": summary["requests"], "retries": summary["retries"], "minimum_requests": minimum,
        "requests_per_1000": 1000 * summary["requests"] / summary["sent"],
        "variants": summary["variants"], "variants_per_1000": 1000 * summary["variants"] / summary["sent"],
        "import_seconds": import_seconds, "rss_before_mb": rss_before, "peak_rss_mb": rss_peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--parallel", type=int, default=4, help="parallel requests (READERFIRST_SENDGRID_PARALLEL)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--import-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.import_into:
        import_readers(args.import_into, args.child)
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.parallel)))
        return 0
    results = []
    for readers in args.readers:
        out = subprocess.run([sys.executable, __file__, "--child", str(readers), "--parallel", str(args.parallel)],
                             capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"send-edition -> SendGrid emulator (loopback), {args.parallel} parallel requests")
        print(f"{'readers':>8} {'readers/s':>10} {'seconds':>8} {'requests':>9} {'minimum':>8} {'req/1k':>7}"
              f" {'variants/1k':>11} {'retries':>7} {'peak RSS':>9} {'plan s':>7} {'send s':>7}")
        for r in results:
            print(f"{r['readers']:>8,} {r['readers_per_second']:>10,.0f} {r['seconds']:>8.1f} {r['requests']:>9,}"
                  f" {r['minimum_requests']:>8,} {r['requests_per_1000']:>7.2f} {r['variants_per_1000']:>11.2f}"
                  f" {r['retries']:>7} {r['peak_rss_mb']:>7.0f}MB {r['plan_seconds']:>7.1f} {r['send_seconds']:>7.1f}")
        for r in results:
            verdict = "PASS" if r["readers_per_second"] >= GOAL_READERS_PER_SECOND else "FAIL"
            at_minimum = "at the minimum" if r["requests"] == r["minimum_requests"] else "ABOVE the minimum"
            print(f"{r['readers']:,} readers: {r['readers_per_second']:,.0f} readers/s (goal >= {GOAL_READERS_PER_SECOND:,}):"
                  f" {verdict}; requests {at_minimum}")
        growth = results[-1]["peak_rss_mb"] - results[0]["peak_rss_mb"]
        print(f"peak RSS grew {growth:+.0f} MB from {results[0]['readers']:,} to {results[-1]['readers']:,} readers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
