"""Reconciliation's witness read: what deciding "put back or hold" costs on a big edition.

A batch with no SendGrid event past its wait is put back only if the webhook brought events
for the edition's other requests from its hand-over on (`pipeline.delivery.reconcile`). That
takes one read per reconciliation that has such a batch: the distinct times of the edition's
delivery events from 10 minutes before the oldest such claim to 10 minutes after the newest. This benchmark seeds an edition's events (processed,
delivered, opens and clicks over two hours, a fifth of them another edition's) with
`bench_store`, then times that read three times against a baseline in the same run: counting
the edition's events.
Run: `python benchmarks/reconcile_witness.py` (2M events, PostgreSQL when
READERFIRST_TEST_POSTGRES_URL is set, else SQLite); `--events 200000`, `--sqlite`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the project, installed or not

from bench_store import EVENT_COLUMNS, add_store_arguments, bench_store, server_settings, store_url  # noqa: E402

KINDS = ("processed", "delivered", "open", "click")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    add_store_arguments(parser)
    args = parser.parse_args()
    from sqlalchemy import text

    from pipeline.delivery.reconcile import WITNESS_WINDOW, _witnesses
    from pipeline.store import open_database

    url = store_url(args)
    print(server_settings(url))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start = now - dt.timedelta(hours=2)
    with tempfile.TemporaryDirectory() as folder, bench_store(url, Path(folder)) as store:
        seeded = time.perf_counter()
        rows = ((f"ev{n}", KINDS[n % 4], f"r{n}@example.com", n, "other" if n % 5 == 0 else "e1", None,
                 store.stamp(start + dt.timedelta(seconds=n % 7200)), store.stamp(now), "{}")
                for n in range(args.events))
        store.write("engagement_events", EVENT_COLUMNS, rows)
        store.settle("engagement_events")
        print(f"seeded {args.events:,} events in {time.perf_counter() - seeded:.1f} s")
        database = open_database(store.url, migrate=False)
        try:
            since = now - dt.timedelta(hours=1)
            for _ in range(3):
                with database.engine.connect() as connection:
                    began = time.perf_counter()
                    times = _witnesses(connection, "e1", since - WITNESS_WINDOW, since + WITNESS_WINDOW)
                    witness = time.perf_counter() - began
                    began = time.perf_counter()
                    count = connection.execute(text("SELECT count(*) FROM engagement_events"
                                                    " WHERE edition_id = 'e1'")).scalar()
                    counting = time.perf_counter() - began
                print(f"witness read {witness * 1000:.0f} ms ({len(times):,} distinct times); counting the edition's"
                      f" {count:,} events {counting * 1000:.0f} ms; ratio {witness / counting:.2f}")
        finally:
            database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
