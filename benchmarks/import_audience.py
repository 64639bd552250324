"""Import benchmark: a generated audience file of 100k ... 1M readers imported, then re-imported.

Each size is imported by a fresh child process into a fresh database (a new schema of the
PostgreSQL at `--url` / READERFIRST_TEST_POSTGRES_URL, or a temporary SQLite file with
`--sqlite`), so its peak RSS is the import's alone. The file (readerfirst's CSV, from the
sample generator, seed 3: names, time zones, tags, up to four interests, some needs) is written
first and not timed. The child times `import_audience` creating every reader, then again on the
same file (every reader updated, interests restated), and reports both with its peak RSS and
that of the largest row-checking process. Each size is measured once per `--workers` value
(READERFIRST_IMPORT_WORKERS: 1 checks rows in the importing process), and the speed of each
against the first value is printed: the ratio within one run, since this machine is noisy.

Prints readers/s, seconds and peak RSS for each size and run, each as a ratio of its goal, and
how peak RSS grew from the smallest size to the largest. Goals at 1M readers on PostgreSQL:
import in at most 60 s with peak RSS at most 300 MB, flat from 100k to 1M (within 10%).
Run: `python benchmarks/import_audience.py` (1M: minutes); `--readers 100000 --workers 1 2 3 --json`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_store import server_settings  # noqa: E402

GOAL_SECONDS = 60.0  # at 1M readers; smaller sizes get a share of it
GOAL_RSS_MB = 300.0
GOAL_READERS = 1_000_000


def child(file: Path, url: str, workers: int) -> dict:
    """Import `file` twice into the database at `url`; the figures of each run and the peak RSS."""
    import datetime as dt

    from pipeline.audience.importer import import_audience
    from pipeline.store import open_database

    db = open_database(url)
    figures = {}
    for run in ("create", "update"):
        started, cpu = time.perf_counter(), time.process_time()
        report = import_audience(db, file, "bench", today=dt.date(2026, 12, 1), workers=workers)
        # CPU seconds of this process: what the run costs here whatever else the machine runs.
        figures[run] = {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                        "created": report.created, "updated": report.updated}
    figures["peak_rss_mb"] = _own_peak_rss_mb()
    # The largest of the row-checking processes (none with one worker: the rows are checked here).
    figures["checker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    db.dispose()
    return figures


def _own_peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM of its memory map. Not ru_maxrss, which Linux carries over
    an exec from the parent that forked the child (here the parent that wrote a 1M-row file, 282 MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def _fresh_schema(url: str) -> tuple[str, str]:
    from sqlalchemy import text

    from pipeline.store import open_database

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = open_database(url, migrate=False)
    with admin.engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return schema, f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def _drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import text

    from pipeline.store import open_database

    admin = open_database(url, migrate=False)
    with admin.engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def measure(readers: int, folder: Path, url: str | None, workers: int) -> dict:
    """Write the file (once per size), then import it in a child process into a fresh database."""
    from pipeline.audience.sample import write_sample_csv

    file = folder / f"readers-{readers}.csv"
    if not file.exists():
        write_sample_csv(file, readers, seed=3)
    schema = None
    if url:
        schema, target = _fresh_schema(url)
    else:
        target = f"sqlite:///{folder / f'bench-{readers}.db'}"
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(file), target, str(workers)], check=True,
                             capture_output=True, text=True).stdout
    finally:
        if schema:
            _drop_schema(url, schema)
    return {"readers": readers, "workers": workers, **json.loads(out)}


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--url", default=os.environ.get("READERFIRST_TEST_POSTGRES_URL"),
                        help="PostgreSQL to create schemas in (default: READERFIRST_TEST_POSTGRES_URL)")
    parser.add_argument("--sqlite", action="store_true", help="import into a temporary SQLite file instead")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="processes checking rows (READERFIRST_IMPORT_WORKERS), each measured in turn")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], int(args.child[2]))))
        return 0
    url = None if args.sqlite else args.url
    if not args.sqlite and not url:
        parser.error("give --url (or set READERFIRST_TEST_POSTGRES_URL), or --sqlite")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for readers in args.readers:
            for workers in args.workers:
                results.append(measure(readers, Path(folder), url, workers))
            (Path(folder) / f"readers-{readers}.csv").unlink()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    load = os.getloadavg()
    print(f"store: {'SQLite' if args.sqlite else 'PostgreSQL'}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
          f" on {os.cpu_count()} cores")
    print(server_settings(url))
    failed = False
    for result in results:
        n = result["readers"]
        goal = GOAL_SECONDS * n / GOAL_READERS
        for run in ("create", "update"):
            seconds = result[run]["seconds"]
            cpu = result[run]["cpu_seconds"]
            print(f"{n:>9,} readers {run}, {result['workers']} checking: {seconds:7.1f} s  {n / seconds:9,.0f} readers/s"
                  f"  time/goal {seconds / goal:.2f}  (importer CPU {cpu:.1f} s, {n / cpu:,.0f} readers per CPU second)")
        rss, checker = result["peak_rss_mb"], result["checker_peak_rss_mb"]
        print(f"{'':>9} peak RSS {rss:.0f} MB, largest checking process {checker:.0f} MB"
              f"  rss/goal {max(rss, checker) / GOAL_RSS_MB:.2f}")
        failed |= result["create"]["seconds"] > goal or max(rss, checker) > GOAL_RSS_MB
    for workers in args.workers:
        runs = [r for r in results if r["workers"] == workers]
        if len(runs) > 1:
            growth = runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
            print(f"{workers} checking: peak RSS from {runs[0]['readers']:,} to {runs[-1]['readers']:,} readers:"
                  f" x{growth:.2f} ({'flat' if growth <= 1.10 else 'NOT flat'}: goal within 10%)")
            failed |= growth > 1.10
    for readers in args.readers:
        base = next(r for r in results if r["readers"] == readers)
        for other in (r for r in results if r["readers"] == readers and r is not base):
            print(f"{readers:>9,} readers: {other['workers']} checking processes / {base['workers']}:"
                  f" x{base['create']['seconds'] / other['create']['seconds']:.2f} as fast (create),"
                  f" x{base['update']['seconds'] / other['update']['seconds']:.2f} (update)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
