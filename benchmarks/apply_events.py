"""Learning benchmark: apply stored engagement events to readers' profiles, on PostgreSQL or SQLite.

A database migrated by readerfirst (a fresh schema of READERFIRST_TEST_POSTGRES_URL or `--url`;
a temporary SQLite file with `--sqlite` or without a URL) is filled directly (COPY on
PostgreSQL, executemany on SQLite): readers, a few editions with the sample edition's
sections, a ledger row per reader and edition (the pinned note plus four picks), and events
in arrival order (delivered, soft and hard bounces, Apple MPP machine opens, opens, clicks,
unsubscribes, spam reports, group unsubscribes), each with a SendGrid-like raw payload.
Seeding streams one edition at a time and is timed on its own.

A fresh child process then times `apply_events` (so peak RSS is the applier's alone), and a
second `apply_events` that finds nothing new. Goal (issue 13): 60 s per million events, so
1M events in at most 60 s and 10M in at most 10 minutes.
Run: `python benchmarks/apply_events.py` (1M events of 100k readers; `--events 200000` for a
quick run; `--events 10000000 --readers 900000` for issue 13's size; `--sqlite`, `--json`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
    server_settings,
    store_url,
    write_audience,
    write_sections,
)

FIRST_SEND = dt.datetime(2026, 11, 2, 7, 0)
GOAL_SECONDS_PER_MILLION = 60.0
PROGRESS_SECONDS = 60.0


GROUPS = {"1201": "climate", "1202": "ai"}
KINDS = ("delivered", "soft_bounce", "hard_bounce", "machine_open", "open", "click", "unsubscribe", "spam_report",
         "group_unsubscribe")


def _reader_events(rng: random.Random, picks: list[str]) -> list[tuple[str, int, str | None]]:
    """One reader's events for one edition: (type, seconds after the send, section) in any order."""
    roll = rng.random()
    if roll < 0.005:
        return [("hard_bounce", rng.randint(5, 600), None)]
    if roll < 0.025:
        return [("soft_bounce", rng.randint(5, 600), None)]
    events: list[tuple[str, int, str | None]] = [("delivered", rng.randint(5, 900), None)]
    if rng.random() < 0.30:
        events.append(("machine_open", rng.randint(60, 3600), None))
    if rng.random() < 0.45:
        opened = rng.randint(600, 3 * 86400)
        events.append(("open", opened, None))
        for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
            events.append(("click", opened + rng.randint(5, 7200), rng.choice(picks)))
    if rng.random() < 0.003:
        events.append(("unsubscribe", rng.randint(600, 86400), None))
    elif rng.random() < 0.0005:
        events.append(("spam_report", rng.randint(600, 86400), None))
    elif rng.random() < 0.002:
        events.append(("group_unsubscribe", rng.randint(600, 86400), None))
    return events


def _event_rows(store: BenchStore, rng: random.Random, found: EditionEvents, edition: str, sent: dt.datetime,
                first: int, limit: int, counts: Counter[str]) -> Iterator[tuple]:
    """The edition's event rows in arrival order, numbered from `first`, at most `limit` of them.

    Arrival order: the ingest stores events as they come. An edition's events all arrive
    before the next edition is sent, so sorting each edition sorts them all.
    """
    group_ids = list(GROUPS)
    for number, (rid, kind, after, section) in enumerate(found.events(in_time_order=True, limit=max(0, limit)),
                                                         start=first):
        moment = sent + dt.timedelta(seconds=after)
        raw = {"email": f"reader{rid}@example.com", "timestamp": int(moment.timestamp()), "event": kind,
               "sg_event_id": f"ev{number:020d}", "sg_message_id": f"msg{rid}.{edition}",
               "reader_id": str(rid), "edition_id": edition}
        if section:
            raw["url"] = f"https://brief.example.com/{edition}/{section}"
        if kind == "group_unsubscribe":
            raw["asm_group_id"] = int(rng.choice(group_ids))
        counts[kind] += 1
        stamp = store.stamp(moment)
        yield (f"ev{number:020d}", kind, raw["email"], rid, edition, section, stamp, stamp, dumps(raw))


def generate(store: BenchStore, events: int, readers: int, editions: int, seed: int = 7) -> dict[str, int]:
    """Fill the migrated database with readers, editions, ledger and up to `events` events; the event mix."""
    rng = random.Random(seed)
    write_audience(store, readers, FIRST_SEND)
    counts: Counter[str] = Counter()
    with store.indexes_rebuilt("send_ledger", "engagement_events"):
        _write_editions(store, rng, events, readers, editions, counts)
    store.settle()
    return dict(counts)


def _write_editions(store: BenchStore, rng: random.Random, events: int, readers: int, editions: int,
                    counts: Counter[str]) -> None:
    """Each edition's sections, ledger and events (until `events` events are written)."""
    sections = edition_sections()
    choosable = [sid for sid, topics, pinned in sections if topics and not pinned]
    pinned = [sid for sid, _, p in sections if p]
    topics_of = {sid: topics for sid, topics, _ in sections}
    for number in range(editions):
        edition, sent = f"bench-{number + 1}", FIRST_SEND + dt.timedelta(days=7 * number)
        write_sections(store, edition, sections)
        found = EditionEvents(KINDS, [sid for sid, _, _ in sections])
        stamp = store.stamp(sent)

        def ledger(edition: str = edition, stamp: object = stamp, found: EditionEvents = found) -> Iterator[tuple]:
            for rid in range(1, readers + 1):
                picks = pinned + rng.sample(choosable, 4)
                yield (edition, rid, 1, "v", dumps([[sid, "benchmark"] for sid in picks]), False, "sent",
                       stamp, stamp)
                for kind, after, section in _reader_events(rng, [p for p in picks if topics_of[p]]):
                    found.add(rid, kind, after, section)

        store.write("send_ledger", LEDGER_COLUMNS, ledger())
        written = sum(counts.values())
        store.write("engagement_events", EVENT_COLUMNS,
                    _event_rows(store, rng, found, edition, sent, written + 1, events - written, counts))


def apply_in_this_process(url: str, batch_size: int) -> dict:
    """Time apply_events on the database at `url` twice (the second finds nothing new); figures as a dict."""
    from pipeline.engagement.learning import apply_events
    from pipeline.store import open_database

    db = open_database(url)
    options = dict(half_life_days=60.0, soft_bounce_limit=3, topic_groups=GROUPS, batch_size=batch_size)
    started = time.perf_counter()
    report = apply_events(db, **options)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = apply_events(db, **options)
    second = time.perf_counter() - started
    db.dispose()
    return {"events": report.events, "seconds": seconds, "second_apply_seconds": second,
            "second_apply_events": again.events, "peak_rss_mb": peak_rss_mb(), "report": report.summary()}


def _applied(store: BenchStore, events: int) -> int:
    """Events applied so far: those no longer in the queue of unapplied events."""
    return events - store.execute("SELECT count(*) FROM unapplied_events")[0][0]


def _apply_in_a_child(store: BenchStore, batch_size: int, events: int, progress: bool,
                      stop_after: float | None) -> dict:
    """Run `apply_in_this_process` in a fresh process, printing how far it got once a minute.

    Past `stop_after` seconds the child is stopped: the figures are then those of the events
    applied by that time (`finished` false), which is all a goal in seconds needs.
    """
    child = subprocess.Popen([sys.executable, __file__, "--apply", store.url, "--batch-size", str(batch_size)],
                             stdout=subprocess.PIPE, text=True)
    started = time.perf_counter()
    while True:
        seconds = time.perf_counter() - started
        wait = PROGRESS_SECONDS if stop_after is None else max(0.1, min(PROGRESS_SECONDS, stop_after - seconds))
        try:
            out, _ = child.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            seconds = time.perf_counter() - started
            if stop_after is not None and seconds >= stop_after:
                child.kill()
                child.wait()
                done = _applied(store, events)
                return {"events": done, "seconds": seconds, "finished": False, "peak_rss_mb": None,
                        "second_apply_seconds": None, "second_apply_events": None, "report": None}
            if progress:
                done = _applied(store, events)
                print(f"  ... {done:,} of {events:,} events applied after {seconds:.0f}s"
                      f" ({done / seconds:,.0f} events/s)", flush=True)
    if child.returncode:
        raise SystemExit(f"the applying process failed (exit {child.returncode})")
    return {"finished": True, **json.loads(out.strip().splitlines()[-1])}


def main() -> int:
    """Seed, apply in a child process, print the figures; exit 1 over the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--editions", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--stop-after", type=float, default=None,
                        help="stop applying after this many seconds and report what was applied by then")
    add_store_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--apply", help=argparse.SUPPRESS)  # the child process's job: the database URL
    args = parser.parse_args()
    from pipeline.engagement.learning import DEFAULT_BATCH

    batch_size = args.batch_size or DEFAULT_BATCH
    if args.apply:
        print(json.dumps(apply_in_this_process(args.apply, batch_size)))
        return 0
    import os

    with tempfile.TemporaryDirectory(prefix="readerfirst-bench-") as folder, \
            bench_store(store_url(args), Path(folder)) as store:
        started = time.perf_counter()
        counts = generate(store, args.events, args.readers, args.editions)
        generation = time.perf_counter() - started
        seeding_rss = peak_rss_mb()
        database_mb = store.size_mb()
        stored = sum(counts.values())
        if not args.json:
            load = os.getloadavg()
            print(f"{store.name}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
            print(server_settings(store_url(args)))
            print(f"seeded {stored:,} events for {args.readers:,} readers x {args.editions} editions in"
                  f" {generation:.1f}s ({database_mb:,.0f} MB, seeding peak RSS {seeding_rss:.0f} MB): "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])), flush=True)
        result = _apply_in_a_child(store, batch_size, stored, not args.json, args.stop_after)
        database = store.name
    goal = GOAL_SECONDS_PER_MILLION * max(1.0, stored / 1e6)
    events, seconds = result["events"], result["seconds"]
    passed = result["finished"] and seconds <= goal
    result |= {"database": database, "generation_seconds": generation, "seeding_peak_rss_mb": seeding_rss,
               "event_mix": counts, "database_mb": database_mb, "batch_size": batch_size, "readers": args.readers,
               "editions": args.editions, "goal_seconds": goal, "ratio_to_goal": seconds / goal * stored / events
               if events else None, "load": os.getloadavg()}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if passed else 1
    load = result["load"]
    rate = f"{events / seconds:,.0f} events/s, {seconds / events * 100_000:.2f}s per 100k events" if events else ""
    if not result["finished"]:
        print(f"apply_events (batch {batch_size:,}) stopped after {seconds:.0f}s: {events:,} of {stored:,} events"
              f" applied, {rate}; at that rate all would take {seconds * stored / max(events, 1):.0f}s")
    else:
        print(f"apply_events (batch {batch_size:,}): {events:,} events in {seconds:.1f}s = {rate},"
              f" peak RSS {result['peak_rss_mb']:.0f} MB")
        print(f"second apply (nothing new): {result['second_apply_seconds']:.2f}s "
              f"({result['second_apply_events']} events)")
        report = result["report"]
        print("applied: " + ", ".join(f"{k} {report[k]:,}" for k in (
            "exposures", "clicks", "repeat_clicks", "machine_opens", "suppressed", "opt_outs", "topic_updates",
            "batches")))
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    ratio = "unknown (nothing applied yet)" if result["ratio_to_goal"] is None else f"{result['ratio_to_goal']:.2f}"
    print(f"goal: {stored:,} events in <= {goal:.0f}s (60 s per million events): time for all / goal {ratio},"
          f" {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
