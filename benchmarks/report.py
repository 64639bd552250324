"""Report benchmark: the engagement report as stored events grow to 1M or 10M, on PostgreSQL or SQLite.

A database migrated by readerfirst (a fresh schema of READERFIRST_TEST_POSTGRES_URL or `--url`;
a temporary SQLite file with `--sqlite` or without a URL) is filled directly (COPY on
PostgreSQL, executemany on SQLite): readers, 8 weekly editions with the sample edition's
sections, a sent ledger row per reader and edition (the pinned note plus four picks with
per-reader reasons, 10% of readers in the holdout), five learned topics per reader, and a
pool of events (processed, delivered, soft and hard bounces, Apple MPP machine opens, opens,
clicks, unsubscribes, spam reports, group unsubscribes, some without a reader). Seeding streams
one edition at a time into a staging table, each event with a random key, and is timed apart.
Events then move into engagement_events `--step` at a time, a random sample of every edition
each time (so each step grows the same report), and `build_report` is timed after each step,
so the time per 100k events shows how the report grows. On PostgreSQL each step is followed
by `VACUUM ANALYZE`, as autovacuum would after a bulk load (untimed).
Goals (issue 13): 1M events in at most 10 s, 10M in at most 30 s.
Run: `python benchmarks/report.py` (1M events of 100k readers; `--events 300000` for a quick
run; `--events 10000000 --readers 475000 --step 5000000` for issue 13's size; `--sqlite`, `--json`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the project, installed or not

from bench_store import (  # noqa: E402
    EVENT_COLUMNS,
    LEDGER_COLUMNS,
    BenchStore,
    EditionEvents,
    add_store_arguments,
    bench_store,
    dumps,
    edition_sections,
    peak_rss_mb,
    store_url,
    write_audience,
    write_sections,
)

FIRST_SEND = dt.datetime(2026, 10, 12, 7, 0)
GOALS = ((1_000_000, 10.0), (10_000_000, 30.0))  # (events, seconds): issue 13
KINDS = ("processed", "delivered", "soft_bounce", "hard_bounce", "machine_open", "open", "click", "unsubscribe",
         "spam_report", "group_unsubscribe")
POOL = "bench_event_pool"  # the staging table: every generated event, with a random key


def goal_seconds(events: int) -> float:
    """The report's goal at `events` stored events: that of the smallest size listed in GOALS that holds them."""
    return next((seconds for size, seconds in GOALS if events <= size), GOALS[-1][1])


def _reader_events(rng: random.Random, picks: list[str]) -> list[tuple[str, int, str | None]]:
    """One reader's events for one edition: (type, seconds after the send, section)."""
    events: list[tuple[str, int, str | None]] = []
    if rng.random() < 0.3:
        events.append(("processed", rng.randint(1, 60), None))
    roll = rng.random()
    if roll < 0.005:
        return events + [("hard_bounce", rng.randint(5, 600), None)]
    if roll < 0.025:
        events.append(("soft_bounce", rng.randint(5, 600), None))
    events.append(("delivered", rng.randint(5, 900), None))
    if rng.random() < 0.30:
        events.append(("machine_open", rng.randint(60, 3600), None))
    if rng.random() < 0.45:
        opened = rng.randint(600, 3 * 86400)
        events.append(("open", opened, None))
        for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
            # A few clicks come weeks late: they still belong to their edition.
            late = rng.randint(5, 7200) if rng.random() < 0.97 else rng.randint(8 * 86400, 30 * 86400)
            events.append(("click", opened + late, rng.choice(picks)))
    if rng.random() < 0.003:
        events.append(("unsubscribe", rng.randint(600, 86400), None))
    elif rng.random() < 0.0005:
        events.append(("spam_report", rng.randint(600, 86400), None))
    elif rng.random() < 0.002:
        events.append(("group_unsubscribe", rng.randint(600, 86400), None))
    return events


def _pool_rows(store: BenchStore, rng: random.Random, found: EditionEvents, edition: str, sent: dt.datetime,
               first: int) -> Iterator[tuple]:
    """The edition's events as staging rows numbered from `first`, each with a random key (the shuffle)."""
    for number, (rid, kind, after, section) in enumerate(found.events(), start=first):
        stamp = store.stamp(sent + dt.timedelta(seconds=after))
        reader = rid if number % 500 else None  # 0.2% unattributed: an address that did not match
        raw = dumps({"event": kind, "sg_event_id": f"ev{number:020d}", "reader_id": str(rid),
                          "edition_id": edition})
        yield (f"ev{number:020d}", kind, f"reader{rid}@example.com", reader, edition, section, stamp, stamp,
               raw, rng.random())


def generate(store: BenchStore, readers: int, editions: int, seed: int = 7) -> int:
    """Fill the migrated database with readers, editions, ledger and interests, and the staging pool; its size."""
    rng = random.Random(seed)
    sections = edition_sections()
    topics_of = {sid: topics for sid, topics, _ in sections}
    choosable = [sid for sid, topics, pinned in sections if topics and not pinned]
    pinned = [sid for sid, _, p in sections if p]
    all_topics = sorted({t for _, topics, _ in sections for t in topics})
    write_audience(store, readers, FIRST_SEND)
    created = store.stamp(FIRST_SEND)
    store.write("reader_interests", "reader_id, topic, declared_weight, learned_clicks, learned_exposures, "
                "learned_at, opted_out",
                ((rid, topic, rng.choice((None, 0.5, 1.0)), clicks, exposures, created, False)
                 for rid in range(1, readers + 1) for topic in rng.sample(all_topics, 5)
                 for exposures in [rng.randint(0, 8) * 0.9] for clicks in [min(exposures, rng.randint(0, 2) * 0.8)]))
    holdout = {rid for rid in range(1, readers + 1) if rng.random() < 0.10}
    store.execute(f"CREATE TABLE {POOL} AS SELECT {EVENT_COLUMNS} FROM engagement_events WHERE 1 = 0")
    store.execute(f"ALTER TABLE {POOL} ADD COLUMN shuffle DOUBLE PRECISION")
    pool = 0
    for number in range(editions):
        edition, sent = f"bench-{number + 1}", FIRST_SEND + dt.timedelta(days=7 * number)
        write_sections(store, edition, sections)
        found = EditionEvents(KINDS, [sid for sid, _, _ in sections])
        stamp = store.stamp(sent)

        def ledger(edition: str = edition, stamp: object = stamp, found: EditionEvents = found) -> Iterator[tuple]:
            for rid in range(1, readers + 1):
                picks = pinned + (choosable[:4] if rid in holdout else rng.sample(choosable, 4))
                variant = hashlib.blake2b("\x1f".join(picks).encode(), digest_size=8).hexdigest()
                reasons = [[sid, "pinned" if sid in pinned else f"you follow {topics_of[sid][0]}"] for sid in picks]
                yield (edition, rid, 1, variant, dumps(reasons), rid in holdout, "sent", stamp, stamp)
                for kind, after, section in _reader_events(rng, picks[len(pinned):]):
                    found.add(rid, kind, after, section)

        store.write("send_ledger", LEDGER_COLUMNS, ledger())
        pool += store.write(POOL, f"{EVENT_COLUMNS}, shuffle", _pool_rows(store, rng, found, edition, sent, pool + 1))
    store.settle()
    return pool


def add_events(store: BenchStore, low: float, high: float, rebuild: bool) -> None:
    """Move the pool's events with a shuffle key in [low, high) into engagement_events, as the ingest would store them.

    `rebuild`: drop the plain indexes first and build them after (when the step at least doubles the table).
    """
    with store.indexes_rebuilt(*(["engagement_events"] if rebuild else [])):
        store.execute(f"INSERT INTO engagement_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM {POOL} "
                      "WHERE shuffle >= %s AND shuffle < %s ORDER BY shuffle", (low, high))
    if store.postgres:
        store.settle("engagement_events")


def main() -> int:
    """Seed, time the report after each step, print the figures; exit 1 over the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--editions", type=int, default=8)
    parser.add_argument("--no-index", action="store_true", help="time the report without ix_engagement_events_report")
    add_store_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from pipeline.report import build_report
    from pipeline.store import open_database

    with tempfile.TemporaryDirectory(prefix="readerfirst-bench-") as folder, \
            bench_store(store_url(args), Path(folder)) as store:
        started = time.perf_counter()
        pool = generate(store, args.readers, args.editions)
        if pool < args.events:
            raise SystemExit(f"only {pool:,} events generated for {args.events:,}: use more readers or editions")
        if args.no_index:
            store.execute("DROP INDEX ix_engagement_events_report")
        generation = time.perf_counter() - started
        seeding_rss = peak_rss_mb()
        if not args.json:
            load = os.getloadavg()
            print(f"{store.name}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
            print(f"seeded {args.readers:,} readers x {args.editions} editions ({args.readers * args.editions:,}"
                  f" ledger rows) and a pool of {pool:,} events in {generation:.1f}s (seeding peak RSS"
                  f" {seeding_rss:.0f} MB); index: {'none' if args.no_index else 'ix_engagement_events_report'}")
        steps = []
        db = open_database(store.url)
        for start in range(0, args.events, args.step):
            add_events(store, start / pool, min(start + args.step, args.events) / pool, rebuild=args.step >= start)
            stored = store.execute("SELECT count(*) FROM engagement_events")[0][0]
            began = time.perf_counter()
            report = build_report(db)
            seconds = time.perf_counter() - began
            steps.append({"events": stored, "seconds": seconds, "per_100k": seconds / stored * 100_000,
                          "editions": len(report.editions), "clickers": sum(e.clickers for e in report.editions)})
            if not args.json:
                print(f"{stored:>10,} events: report in {seconds:5.2f}s = {seconds / stored * 100_000:.3f}s per 100k"
                      f" events ({len(report.editions)} editions, {steps[-1]['clickers']:,} reader-edition clickers)")
        db.dispose()
        store.execute(f"DROP TABLE {POOL}")
        database_mb = store.size_mb()
        database = store.name
    final, stored = steps[-1]["seconds"], steps[-1]["events"]
    goal = goal_seconds(stored)
    passed = final <= goal
    result = {"database": database, "steps": steps, "generation_seconds": generation, "pool": pool,
              "database_mb": database_mb, "index": not args.no_index, "goal_seconds": goal, "passed": passed,
              "ratio_to_goal": final / goal, "seeding_peak_rss_mb": seeding_rss, "peak_rss_mb": peak_rss_mb(),
              "load": os.getloadavg()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"database {database_mb:,.0f} MB, peak RSS {result['peak_rss_mb']:.0f} MB (seeding included)")
        print(f"goal: {stored:,} events in <= {goal:.0f}s: {final:.2f}s, {final / goal:.2f} of it,"
              f" {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
