"""Webhook ingest on PostgreSQL: 1 and N web workers, on an empty events table and on one holding millions.

The same signed, SendGrid-sized batches as `webhook_ingest.py` (its builders are reused) go to
`--workers` web service processes over one fresh PostgreSQL schema (READERFIRST_TEST_POSTGRES_URL
or `--url`); posters spread over the processes as a proxy would. Each worker count is measured
twice: on an empty events table, then after `--stored` events were added with COPY (that
seeding is timed apart and printed). Every run posts batches never seen before, plus a share
resent, so dedupe is exercised and no run finds another's events.

Prints events/s and batch latency per run, the rate with N workers over the rate with 1, and
the rate at `--stored` events over the empty-table rate. Goals: >= 20,000 events/s with
signature checks and dedupe, and at 10M stored events within 90% of the empty-table rate.
Run: `python benchmarks/webhook_ingest_postgres.py --workers 1 2 --stored 10000000` (the seeding
takes minutes); `--stored 1000000` for a quicker look.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from webhook_ingest import READERS, _free_port, _post_all, _seed_readers, _signed, _start_service  # noqa: E402

GOAL = 20_000
KEEP_RATE = 0.90


def seed_events(db, count: int) -> float:
    """Add `count` applied events with COPY; returns the seconds it took (indexes kept up to date)."""
    started = time.perf_counter()
    stamp = dt.datetime(2026, 11, 2, 7, 0)
    raw = json.dumps({"event": "delivered"})
    kinds = ("processed", "delivered", "open", "click", "delivered")
    with db.engine.begin() as connection:
        cursor = connection.connection.driver_connection.cursor()
        columns = "provider_event_id, event_type, email, reader_id, edition_id, occurred_at, received_at, raw"
        with cursor, cursor.copy(f"COPY engagement_events ({columns}) FROM STDIN") as copy:
            for n in range(count):
                reader = n % READERS + 1
                copy.write_row((f"seed-{n:09d}", kinds[n % 5], f"reader{reader}@example.com", reader,
                                f"2026-{n % 12 + 1:02d}-07", stamp, stamp, raw))
    with db.engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE unapplied_events")  # applied long ago: the queue holds none of them
        connection.exec_driver_sql("ANALYZE engagement_events")
    return time.perf_counter() - started


def measure(db, workers: int, batches: int, events: int, concurrency: int, resend: float, seed: int) -> dict:
    """Start `workers` services over `db`, post fresh batches (seed `seed`), stop them; the figures."""
    public, signed = _signed(batches, events, resend, seed=seed)
    env = {**os.environ, "READERFIRST_HOME": os.environ.get("TMPDIR", "/tmp"), "READERFIRST_DATABASE_URL": db.url,
           "READERFIRST_SECRET": "benchmark-secret-of-at-least-32-bytes", "SENDGRID_WEBHOOK_PUBLIC_KEY": public}
    ports = [_free_port() for _ in range(workers)]
    services = [_start_service(env, port, "FULL") for port in ports]
    try:
        return {"workers": workers, **_post_all(signed, ports, concurrency)}
    finally:
        for service in services:
            service.terminate()
            service.wait(30)


def main() -> int:
    """Run the benchmark and print its figures; exit 1 below a goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("READERFIRST_TEST_POSTGRES_URL"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stored", type=int, default=10_000_000, help="events in the table for the second runs")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--resend", type=float, default=0.25)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set READERFIRST_TEST_POSTGRES_URL")
    os.environ["READERFIRST_TEST_POSTGRES_URL"] = args.url
    from tests.tools import postgres_database

    results: dict = {"runs": []}
    with postgres_database() as db:
        _seed_readers(db.url)
        seed = 100
        for workers in args.workers:
            seed += 1
            results["runs"].append({"stored_before": 0, **measure(db, workers, args.batches, args.events,
                                                                   args.concurrency, args.resend, seed)})
        results["seed_seconds"] = seed_events(db, args.stored)
        for workers in args.workers:
            seed += 1
            results["runs"].append({"stored_before": args.stored, **measure(db, workers, args.batches, args.events,
                                                                            args.concurrency, args.resend, seed)})
    results["load"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
    runs = results["runs"]
    rate = {(r["stored_before"], r["workers"]): r["events_per_second"] for r in runs}
    failed = any(r["failures"] for r in runs)
    if not args.json:
        load = results["load"]
        print(f"PostgreSQL; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores;"
              f" {args.batches} batches of {args.events} (+{args.resend:.0%} resent), {args.concurrency} in flight")
        print(f"seeded {args.stored:,} events with COPY in {results['seed_seconds']:.0f} s (not timed below)")
        for r in runs:
            print(f"{r['stored_before']:>11,} stored, {r['workers']} worker(s): {r['events_per_second']:9,.0f} events/s"
                  f"  p50 {r['p50_ms']:.0f} ms p99 {r['p99_ms']:.0f} ms  stored {r['stored']:,} dup {r['duplicates']:,}"
                  f"  rate/goal {r['events_per_second'] / GOAL:.2f}")
        first, most = args.workers[0], args.workers[-1]
        for stored in (0, args.stored):
            print(f"{most} workers / {first} at {stored:,} stored: {rate[(stored, most)] / rate[(stored, first)]:.2f}")
        for workers in args.workers:
            kept = rate[(args.stored, workers)] / rate[(0, workers)]
            print(f"{workers} worker(s): rate at {args.stored:,} stored / empty table: {kept:.2f}"
                  f" ({'PASS' if kept >= KEEP_RATE else 'FAIL'}: goal >= {KEEP_RATE})")
            failed |= kept < KEEP_RATE
    failed |= max(rate.values()) < GOAL
    for r in runs:
        for failure in r["failures"][:3]:
            print(f"failed batch: {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
