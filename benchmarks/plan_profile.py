"""Planning's CPU per reader by part, in one process on PostgreSQL, at several audience sizes.

For each size: a new schema seeded as `send_scale.py` seeds it (PostgreSQL COPY), then the
planning of a send as the flow's tasks do it, chunk after chunk in this process: the chunks
(`plan_chunks`), and per chunk the readers still to plan, their profiles, the policy's choice
and layout, and the ledger's merge. Each part is measured in CPU seconds, this process's
(`time.process_time`) and the PostgreSQL backend's (utime + stime of its /proc/<pid>/stat), not
wall time: the machine is shared. It prints microseconds of CPU per reader by part, so that
what grows with the audience shows as a per-reader cost that grows.

Run: `python benchmarks/plan_profile.py [--readers 50000 300000] [--chunk 5000] [--json]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
EDITION = ROOT / "editions" / "2026-12-07.yaml"
TODAY = dt.date(2026, 12, 1)
DEFAULT_POSTGRES = "postgresql://readerfirst:readerfirst@127.0.0.1:5432/readerfirst_test"
_TICK = os.sysconf("SC_CLK_TCK")


def _backend_cpu(pids: set[int]) -> float:
    """CPU seconds used so far by the PostgreSQL backends in `pids` (those this process opened)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class Meter:
    """CPU seconds per part, this process's and the backends'."""

    def __init__(self, pids: set[int]):
        self.pids = pids
        self.python: dict[str, float] = defaultdict(float)
        self.server: dict[str, float] = defaultdict(float)

    def part(self, name: str):
        meter = self

        class _Part:
            def __enter__(self):
                self.p, self.s = time.process_time(), _backend_cpu(meter.pids)

            def __exit__(self, *exc):
                meter.python[name] += time.process_time() - self.p
                meter.server[name] += _backend_cpu(meter.pids) - self.s

        return _Part()


def profile(readers: int, chunk: int, postgres: str, explain: bool) -> dict:
    """Seed `readers` readers in a new schema, plan a send of them chunk by chunk, and return CPU per part."""
    from sqlalchemy import event, text

    from pipeline.audience.directory import audience_id as find_audience, load_profiles
    from pipeline.delivery.ledger import PlannedEntry, SendLedger
    from pipeline.delivery.planning import PlanReport, choose_for_reader, plan_settings, send_population
    from pipeline.flows.runtime import prepared_edition
    from pipeline.settings import load_settings
    from pipeline.store.database import open_database
    from send_scale import seed_readers

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = open_database(postgres, migrate=False)
    with admin.engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}"
    try:
        db = open_database(url)
        seed_readers(db, readers)
        db.dispose()
        pids: set[int] = set()

        @event.listens_for(db.engine, "connect")
        def _remember(dbapi_connection, record):  # noqa: ARG001
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.add(cursor.fetchone()[0])

        meter = Meter(pids)
        settings = plan_settings()
        os.environ.setdefault("READERFIRST_HOME", tempfile.mkdtemp(prefix="rf-plan-profile-"))
        os.environ.setdefault("READERFIRST_SECRET", "benchmark-secret-of-at-least-32-bytes")
        prepared = prepared_edition(load_settings(), EDITION)  # as the flow's tasks prepare it
        edition = prepared.edition
        audience = find_audience(db, "bench")
        ledger = SendLedger(db, edition.id)
        with meter.part("plan_chunks"):
            chunks = ledger.plan_chunks(audience, chunk)
        with meter.part("population_prior"):
            population = send_population(db, audience, edition.id)
        report = PlanReport()
        for first, last in chunks:
            with meter.part("readers_to_plan"):
                ids = ledger.readers_to_plan(audience, between=(first, last))
            with meter.part("load_profiles"):
                profiles = load_profiles(db, ids)
            with meter.part("choose_and_arrange"):
                entries = []
                for profile in profiles:
                    selection, holdout = choose_for_reader(edition, profile, today=TODAY, settings=settings,
                                                           population=population)
                    entries.append(PlannedEntry(profile.reader_id, selection.variant_id,
                                                [[p.section_id, p.reason] for p in selection.picks], holdout))
                    report.readers += 1
                    report.variants[selection.variant_id] += 1
            with meter.part("record_plan"):
                ledger.record_plan(audience, entries)
        plans = {}
        if explain and chunks:
            first, last = chunks[-1]
            try:
                query = ledger._to_plan(audience, (first, last))  # the query readers_to_plan runs
            except TypeError:  # the form before the range was passed to the ledger's side as well
                query = ledger._to_plan(audience).where(text(f"readers.id BETWEEN {first} AND {last}"))
            with db.transaction() as connection:
                compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
                plans["readers_to_plan"] = [r[0] for r in connection.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")]
        with db.session() as session:
            ledger_mb = session.execute(text("SELECT pg_total_relation_size('send_ledger')")).scalar() / 2**20
            # What the plan wrote, as one digest: two trees that plan alike write the same rows.
            digest = session.execute(text(
                "SELECT count(*), md5(string_agg(concat_ws(':', edition_id, reader_id, audience_id, variant_id,"
                " CAST(picks AS TEXT), holdout, state), ',' ORDER BY reader_id)) FROM send_ledger")).one()
        db.dispose()
    finally:
        with admin.engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    planned = report.readers
    parts = list(meter.python)
    return {"readers": readers, "planned": planned, "chunks": len(chunks), "variants": len(report.variants),
            "ledger_mb": round(ledger_mb, 1), "ledger_rows": digest[0], "ledger_md5": digest[1], "backends": len(pids),
            "us_per_reader": {p: {"python": round(1e6 * meter.python[p] / planned, 1),
                                  "server": round(1e6 * meter.server[p] / planned, 1)} for p in parts},
            "total_us_per_reader": {"python": round(1e6 * sum(meter.python.values()) / planned, 1),
                                    "server": round(1e6 * sum(meter.server.values()) / planned, 1)},
            "plans": plans}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, nargs="+", default=[50_000, 300_000])
    parser.add_argument("--chunk", type=int, default=5000, help="readers per chunk (READERFIRST_CHUNK_SIZE)")
    parser.add_argument("--postgres", default=os.environ.get("READERFIRST_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--explain", action="store_true", help="also EXPLAIN ANALYZE the last chunk's query")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [profile(n, args.chunk, args.postgres, args.explain) for n in args.readers]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"planning on PostgreSQL, one process, chunks of {args.chunk}: CPU microseconds per planned reader"
          " (python = this process, server = its PostgreSQL backends)")
    header = "part".ljust(20) + "".join(f"{r['readers']:>12,} py {'':>4} pg" for r in results)
    print(header)
    for part in results[0]["us_per_reader"]:
        cells = "".join(f"{r['us_per_reader'][part]['python']:>15.1f} {r['us_per_reader'][part]['server']:>6.1f}"
                        for r in results)
        print(part.ljust(20) + cells)
    print("total".ljust(20) + "".join(f"{r['total_us_per_reader']['python']:>15.1f} {r['total_us_per_reader']['server']:>6.1f}"
                                       for r in results))
    for r in results:
        print(f"{r['readers']:,}: {r['planned']:,} planned in {r['chunks']} chunks, {r['variants']} variants,"
              f" ledger {r['ledger_mb']} MB ({r['ledger_rows']:,} rows, md5 {r['ledger_md5']}), {r['backends']} backend(s)")
        for name, lines in r["plans"].items():
            print(f"  {name}:\n    " + "\n    ".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
