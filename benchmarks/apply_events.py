"""Learning benchmark: apply 1M stored engagement events to 100k readers' profiles with SQLite.

A temporary database (migrated by readerfirst) is filled directly with sqlite3 bulk inserts:
readers, a few editions with the sample edition's sections, a ledger row per reader and
edition (the pinned note plus four picks), and events in arrival order (delivered, soft and
hard bounces, Apple MPP machine opens, opens, clicks, unsubscribes, spam reports, group
unsubscribes), each with a SendGrid-like raw payload. Generation is timed on its own.

A fresh child process then times `apply_events` (so peak RSS is the applier's alone), and a
second `apply_events` that finds nothing new. Goal: 1M events in at most 60 s.
Run: `python benchmarks/apply_events.py` (`--events 200000` for a quick run, `--json`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
FIRST_SEND = dt.datetime(2026, 11, 2, 7, 0)
GOAL_SECONDS = 60.0
GROUPS = {"1201": "climate", "1202": "ai"}
_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite


def _sections() -> list[tuple[str, list[str], bool]]:
    edition = yaml.safe_load(EDITION.read_text())
    return [(s["id"], list(s.get("topics") or []), bool(s.get("pinned"))) for s in edition["sections"]]


def _reader_events(rng: random.Random, sent: dt.datetime,
                   picks: list[str]) -> list[tuple[str, dt.datetime, str | None]]:
    """One reader's events for one edition: (type, time, section) in any order."""
    roll = rng.random()
    if roll < 0.005:
        return [("hard_bounce", sent + dt.timedelta(seconds=rng.randint(5, 600)), None)]
    if roll < 0.025:
        return [("soft_bounce", sent + dt.timedelta(seconds=rng.randint(5, 600)), None)]
    events = [("delivered", sent + dt.timedelta(seconds=rng.randint(5, 900)), None)]
    if rng.random() < 0.30:
        events.append(("machine_open", sent + dt.timedelta(seconds=rng.randint(60, 3600)), None))
    if rng.random() < 0.45:
        opened = sent + dt.timedelta(seconds=rng.randint(600, 3 * 86400))
        events.append(("open", opened, None))
        for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
            events.append(("click", opened + dt.timedelta(seconds=rng.randint(5, 7200)), rng.choice(picks)))
    if rng.random() < 0.003:
        events.append(("unsubscribe", sent + dt.timedelta(seconds=rng.randint(600, 86400)), None))
    elif rng.random() < 0.0005:
        events.append(("spam_report", sent + dt.timedelta(seconds=rng.randint(600, 86400)), None))
    elif rng.random() < 0.002:
        events.append(("group_unsubscribe", sent + dt.timedelta(seconds=rng.randint(600, 86400)), None))
    return events


def generate(path: Path, events: int, readers: int, editions: int, seed: int = 7) -> dict:
    """Fill a migrated database at `path` with readers, editions, ledger and `events` events."""
    from pipeline.store import open_database

    open_database(f"sqlite:///{path}").dispose()  # migrations make the schema
    rng = random.Random(seed)
    sections = _sections()
    choosable = [sid for sid, topics, pinned in sections if topics and not pinned]
    pinned = [sid for sid, _, p in sections if p]
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    created = FIRST_SEND.strftime(_STAMP)
    connection.execute("INSERT INTO audiences (id, name, created_at) VALUES (1, 'bench', ?)", (created,))
    connection.executemany(
        "INSERT INTO readers (id, audience_id, public_id, email, first_name, last_name, timezone, status, tags, "
        "soft_bounces, created_at, updated_at) VALUES (?, 1, ?, ?, '', '', '', 'subscribed', '[]', 0, ?, ?)",
        ((rid, f"{rid:032x}", f"reader{rid}@example.com", created, created) for rid in range(1, readers + 1)))
    topics_of = {sid: topics for sid, topics, _ in sections}
    rows: list[tuple] = []
    for number in range(editions):
        edition, sent = f"bench-{number + 1}", FIRST_SEND + dt.timedelta(days=7 * number)
        connection.executemany(
            "INSERT INTO edition_sections (edition_id, section_id, position, kind, title, topics, pinned) "
            "VALUES (?, ?, ?, 'story', ?, ?, ?)",
            [(edition, sid, i, sid, json.dumps(topics), int(p)) for i, (sid, topics, p) in enumerate(sections)])
        ledger = []
        for rid in range(1, readers + 1):
            picks = pinned + rng.sample(choosable, 4)
            ledger.append((edition, rid, json.dumps([[sid, "benchmark"] for sid in picks]),
                           sent.strftime(_STAMP)))
            for kind, at, section in _reader_events(rng, sent, [p for p in picks if topics_of[p]]):
                rows.append((at, kind, rid, edition, section))
        connection.executemany(
            "INSERT INTO send_ledger (edition_id, reader_id, audience_id, variant_id, picks, holdout, state, "
            "planned_at, sent_at) VALUES (?, ?, 1, 'v', ?, 0, 'sent', ?, ?)", ((*row, row[3]) for row in ledger))
    rows.sort(key=lambda row: row[0])  # arrival order: the ingest stores events as they come
    rows = rows[:events]
    group_ids = list(GROUPS)

    def event_rows():
        for number, (at, kind, rid, edition, section) in enumerate(rows, start=1):
            stamp = at.strftime(_STAMP)
            raw = {"email": f"reader{rid}@example.com", "timestamp": int(at.timestamp()), "event": kind,
                   "sg_event_id": f"ev{number:020d}", "sg_message_id": f"msg{rid}.{edition}",
                   "reader_id": str(rid), "edition_id": edition}
            if section:
                raw["url"] = f"https://brief.example.com/{edition}/{section}"
            if kind == "group_unsubscribe":
                raw["asm_group_id"] = int(rng.choice(group_ids))
            yield (f"ev{number:020d}", kind, raw["email"], rid, edition, section, stamp, stamp, json.dumps(raw))

    connection.executemany(
        "INSERT INTO engagement_events (provider_event_id, event_type, email, reader_id, edition_id, section_id, "
        "occurred_at, received_at, applied, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)", event_rows())
    connection.commit()
    counts = dict(connection.execute("SELECT event_type, count(*) FROM engagement_events GROUP BY event_type"))
    connection.close()
    return counts


def apply_in_this_process(path: Path, batch_size: int) -> dict:
    """Time apply_events on `path` twice (the second finds nothing new); figures as a dict."""
    from pipeline.engagement.learning import apply_events
    from pipeline.store import open_database

    db = open_database(f"sqlite:///{path}")
    options = dict(half_life_days=60.0, soft_bounce_limit=3, topic_groups=GROUPS, batch_size=batch_size)
    started = time.perf_counter()
    report = apply_events(db, **options)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = apply_events(db, **options)
    second = time.perf_counter() - started
    db.dispose()
    return {"events": report.events, "seconds": seconds, "second_apply_seconds": second,
            "second_apply_events": again.events,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "report": report.summary()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--editions", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--apply", type=Path, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    from pipeline.engagement.learning import DEFAULT_BATCH

    batch_size = args.batch_size or DEFAULT_BATCH
    if args.apply:
        print(json.dumps(apply_in_this_process(args.apply, batch_size)))
        return 0
    with tempfile.TemporaryDirectory(prefix="readerfirst-bench-") as folder:
        path = Path(folder) / "bench.db"
        started = time.perf_counter()
        counts = generate(path, args.events, args.readers, args.editions)
        generation = time.perf_counter() - started
        child = subprocess.run([sys.executable, __file__, "--apply", str(path), "--batch-size", str(batch_size)],
                               check=True, capture_output=True, text=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        database_mb = path.stat().st_size / 2**20
    result |= {"generation_seconds": generation, "event_mix": counts, "database_mb": database_mb,
               "batch_size": batch_size, "readers": args.readers, "editions": args.editions}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        events, seconds = result["events"], result["seconds"]
        print(f"generated {sum(counts.values()):,} events for {args.readers:,} readers x {args.editions} editions "
              f"in {generation:.1f}s ({database_mb:.0f} MB): "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
        print(f"apply_events (batch {batch_size:,}): {events:,} events in {seconds:.1f}s = "
              f"{events / seconds:,.0f} events/s, {seconds / events * 100_000:.2f}s per 100k events, "
              f"peak RSS {result['peak_rss_mb']:.0f} MB")
        print(f"second apply (nothing new): {result['second_apply_seconds']:.2f}s "
              f"({result['second_apply_events']} events)")
        report = result["report"]
        print("applied: " + ", ".join(f"{k} {report[k]:,}" for k in (
            "exposures", "clicks", "repeat_clicks", "machine_opens", "suppressed", "opt_outs", "topic_updates",
            "batches")))
        print(f"goal <= {GOAL_SECONDS:.0f}s: {'PASS' if seconds <= GOAL_SECONDS else 'FAIL'}")
    return 0 if result["seconds"] <= GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
