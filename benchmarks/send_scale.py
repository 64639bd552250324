"""Send benchmark at scale: send-edition on PostgreSQL with Dask worker processes, to a counting sink.

For each audience size (and each number of Dask worker processes), a fresh child process:
1. makes a new schema in the PostgreSQL at READERFIRST_TEST_POSTGRES_URL (or --postgres) and
   seeds it with generated readers through PostgreSQL `COPY` (timed apart: the streaming
   importer is another benchmark's business);
2. starts a sink, a process that only reads each mail-send request, counts it and answers 202
   with an X-Message-Id, as SendGrid does, so that the server does not take the cores;
3. starts a local Dask cluster of N worker processes of one thread each, and runs the
   `send-edition` flow on it (READERFIRST_TASK_RUNNER=dask, READERFIRST_DASK_ADDRESS) through
   the official `sendgrid` client, with Prefect's test harness as the API server.

It prints the end-to-end time of the flow (planning + rendering + sending + ledger, as the flow
reports it; Prefect's and the cluster's start-up apart), readers/s, requests against the minimum
(for each variant, its readers / 1,000 rounded up), and the peak RSS of every process it started:
the flow's (with the Dask scheduler and nannies), each worker's, the sink's. Goals (issue 13):
1M readers in at most 300 s, every process at most 1 GiB, peak RSS flat from 100k to 1M (within
10%), and with --scaling, throughput with 2 workers at least 1.6 times that with 1.

Run: `python benchmarks/send_scale.py [--readers 100000 1000000] [--workers 2] [--scaling] [--json]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_store import server_settings  # noqa: E402

EDITION = ROOT / "editions" / "2026-12-07.yaml"
GOAL_SECONDS_1M = 300
GOAL_RSS_MB = 1024
GOAL_SCALING = 1.6
DEFAULT_POSTGRES = "postgresql://readerfirst:readerfirst@127.0.0.1:5432/readerfirst_test"
TODAY = dt.date(2026, 12, 1)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _objects(top: int = 12) -> dict:
    """The process's live Python objects by type, the most numerous first, and its current RSS:
    what a process still holds after a send, to tell what grows with the audience."""
    import gc
    from collections import Counter

    import psutil

    gc.collect()
    kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
    return {"rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1), "objects": sum(kinds.values()),
            "top": kinds.most_common(top)}


# --- the sink: reads and counts, nothing else -------------------------------------------------

def serve_sink(port_file: Path) -> None:
    """Answer every POST with 202 and an X-Message-Id after reading its body; GET returns the counts."""
    counts = {"requests": 0, "bytes": 0}

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            size = int(self.headers.get("Content-Length") or 0)
            while size:
                size -= len(self.rfile.read(min(size, 1 << 20)))
            counts["requests"] += 1  # one thread at a time updates it: the GIL makes += on an int safe enough here
            counts["bytes"] += int(self.headers.get("Content-Length") or 0)
            self.send_response(202)
            self.send_header("X-Message-Id", uuid.uuid4().hex)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({**counts, "peak_rss_mb": _peak_rss_mb()}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    server.request_queue_size = 256
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def start_sink(folder: Path) -> tuple[subprocess.Popen, str]:
    """The sink in its own process; returns it and its base URL."""
    port_file = folder / "sink.port"
    process = subprocess.Popen([sys.executable, __file__, "--sink", str(port_file)])
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the sink did not start")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{port_file.read_text()}"


def sink_counts(url: str) -> dict:
    """The sink's counters and peak RSS."""
    from urllib.request import urlopen

    with urlopen(url + "/counts", timeout=30) as answer:
        return json.loads(answer.read())


# --- where the CPU goes: a sampler of every process of the send ------------------------------

class CpuSampler:
    """Every second, the CPU seconds (user + system) used so far by each process the send runs on:
    this process (the flow, the Dask scheduler, the nannies), the Dask workers, the other children
    (the Prefect test server), the PostgreSQL backends of this send (by application_name), and
    PostgreSQL's own processes (autovacuum workers, checkpointer, WAL writer, background writer:
    shared, so other users of the server count there too).
    After the run, `between(t0, t1)` gives the CPU seconds of each group in that span of time, so
    that planning and sending can be told apart, and a cost per reader that grows shows where."""

    def __init__(self, admin, application: str, workers: set[int], sink: int):
        import threading

        self.admin, self.application = admin, application
        self.workers, self.sink = workers, sink
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.flow_rss: list[tuple[float, float]] = []  # (time, this process's RSS in MB): when the flow's memory grows
        self._first: dict[int, float] = {}  # a process's CPU when first seen (0 if it started since)
        self._used: dict[int, tuple[str, float]] = {}  # pid -> (its group when first seen, CPU since the start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._sample(first=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _groups(self) -> dict[int, str]:
        import psutil
        from sqlalchemy import text

        groups = {os.getpid(): "flow process"}
        for child in psutil.Process().children(recursive=True):
            groups[child.pid] = ("workers" if child.pid in self.workers else "sink" if child.pid == self.sink
                                 else "other children (Prefect server)")
        with self.admin.engine.connect() as connection:
            rows = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                                      {"name": self.application}).all()
        groups.update((pid, "PostgreSQL backends") for (pid,) in rows)
        # The server's own processes, which pg_stat_activity hides from a user without privileges.
        for process in psutil.process_iter(["pid", "cmdline"]):
            title = " ".join(process.info["cmdline"] or ())
            if title.startswith("postgres: ") and ("autovacuum worker" in title or any(
                    name in title for name in ("checkpointer", "walwriter", "background writer"))):
                groups[process.info["pid"]] = "PostgreSQL background (shared)"
        return groups

    def _sample(self, first: bool = False) -> None:
        import psutil

        for pid, group in self._groups().items():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            used = times.user + times.system
            base = self._first.setdefault(pid, used if first or group.startswith("PostgreSQL background")
                                          or pid == os.getpid() else 0.0)
            self._used[pid] = (self._used.get(pid, (group,))[0], used - base)
        totals: dict[str, float] = {}
        for group, used in self._used.values():  # a process that ended keeps what it used
            totals[group] = totals.get(group, 0.0) + used
        self.samples.append((time.perf_counter(), totals))
        self.flow_rss.append((time.perf_counter(), psutil.Process().memory_info().rss / 2**20))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds of each group from `start` to `end` (perf_counter times), from the nearest samples."""
        def at(moment: float) -> dict[str, float]:
            return min(self.samples, key=lambda sample: abs(sample[0] - moment))[1]

        before, after = at(start), at(end)
        return {group: round(after.get(group, 0.0) - before.get(group, 0.0), 2) for group in after}

    def flow_rss_between(self, start: float, end: float) -> dict[str, float]:
        """This process's RSS (MB) at the first sample from `start` and its highest until `end`."""
        inside = [rss for moment, rss in self.flow_rss if start <= moment <= end] or [0.0]
        return {"first": round(inside[0], 1), "highest": round(max(inside), 1)}


# --- seeding readers with COPY -----------------------------------------------------------------

def seed_readers(db, readers: int, seed: int = 3) -> None:
    """`readers` generated readers (as `readerfirst audience sample` makes them) written with PostgreSQL COPY."""
    from pipeline.audience.sample import generate_rows
    from pipeline.store.models import Audience

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with db.session() as session:
        session.add(Audience(name="bench"))
    rng = random.Random(seed)
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT id FROM audiences WHERE name = 'bench'")
        audience_id = cursor.fetchone()[0]
        rows = generate_rows(readers, seed=seed)
        step = 50_000  # rows per COPY: memory stays flat whatever the audience's size
        for start in range(0, readers, step):
            people, interests, needs = io.StringIO(), io.StringIO(), io.StringIO()
            for index in range(start, min(readers, start + step)):
                row = next(rows)
                reader_id = index + 1
                first = row["first_name"].replace("\t", " ")
                tags = json.dumps(row["tags"].split(";") if row["tags"] else [])
                people.write(f"{reader_id}\t{audience_id}\t{uuid.UUID(int=rng.getrandbits(128)).hex}\t{row['email']}\t"
                             f"{first}\t{row['last_name']}\t{row['timezone']}\t{row['status']}\t{tags}\t0\t{now}\t{now}\n")
                for pair in filter(None, row["interests"].split(";")):
                    topic, weight = pair.split(":")
                    interests.write(f"{reader_id}\t{topic}\t{weight}\t0\t0\tf\n")
                if row["needs"]:
                    needs.write(f"{reader_id}\t{row['needs']}\t{TODAY + dt.timedelta(days=30)}\timport\n")
            for table, columns, data in (
                    ("readers", "id, audience_id, public_id, email, first_name, last_name, timezone, status, tags,"
                                " soft_bounces, created_at, updated_at", people),
                    ("reader_interests", "reader_id, topic, declared_weight, learned_clicks, learned_exposures,"
                                         " opted_out", interests),
                    ("reader_needs", "reader_id, topic, until, source", needs)):
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(data.getvalue())
                if start == 0 and table == "readers":
                    # Statistics from the rows just written, before the first reader_interests COPY
                    # plans its foreign-key check once for the session: a database-wide ANALYZE of
                    # another process that found this schema empty had it scan `readers` for every
                    # interest (one seed took minutes for 90k rows).
                    cursor.execute("ANALYZE readers")
        cursor.execute("SELECT setval(pg_get_serial_sequence('readers', 'id'), %s)", (readers,))
        raw.commit()
        # This schema's tables only (the search path's): a bare ANALYZE reads every schema of the
        # database. One table a transaction: a transaction that analyzes several holds each lock
        # to its end, and deadlocked with another process's ANALYZE of the same tables.
        cursor.execute("SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema()")
        for (table,) in cursor.fetchall():
            cursor.execute(f"ANALYZE {table}")
            raw.commit()
    finally:
        raw.close()


# --- one measured send --------------------------------------------------------------------------

def _grown(before, after, top: int = 10) -> list[str]:
    """The places whose Python allocations grew most between two tracemalloc snapshots."""
    stats = after.compare_to(before, "traceback")
    lines = []
    for stat in stats[:top]:
        frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(stat.traceback)[-1:-6:-1])
        lines.append(f"{stat.size_diff / 2**20:+.1f} MB in {stat.count_diff:+,} blocks: {frames}")
    return lines


def child(readers: int, workers: int, postgres: str, objects: bool = False, trace: bool = False) -> dict:
    """One measured send of `readers` readers with `workers` Dask worker processes (runs in its own process)."""
    from sqlalchemy import func, select, text

    from pipeline.store.database import open_database

    home = Path(tempfile.mkdtemp(prefix=f"rf-scale-{readers}-"))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = open_database(postgres, migrate=False)
    with admin.engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    application = f"rf-{schema}"  # the sampler finds this send's backends by it
    url = f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}&application_name={application}"
    sink = None
    try:
        db = open_database(url)
        started = time.perf_counter()
        seed_readers(db, readers)
        seed_seconds = time.perf_counter() - started
        sink, sink_url = start_sink(home)
        os.environ.update(
            READERFIRST_HOME=str(home), READERFIRST_SECRET="benchmark-secret-of-at-least-32-bytes",
            READERFIRST_DATABASE_URL=url, READERFIRST_TASK_RUNNER="dask", READERFIRST_DASK_WORKERS=str(workers),
            PREFECT_HOME=str(home / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED="false",
            SENDGRID_API_KEY="SG.benchmark", SENDGRID_API_HOST=sink_url)
        import distributed
        from prefect.testing.utilities import prefect_test_harness

        started = time.perf_counter()
        import dask

        from pipeline.flows.dask_runner import LOG_CONFIG
        from pipeline.flows.task_runners import WORKER_CONFIG

        # Scheduler and workers as docs/scale.md starts them, and as the flow's own local cluster
        # runs them: no profiler, short logs of messages.
        with dask.config.set(LOG_CONFIG), \
                distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                         silence_logs=40, config={**WORKER_CONFIG, **LOG_CONFIG}) as cluster, \
                distributed.Client(cluster) as client:
            cluster_seconds = time.perf_counter() - started
            os.environ["READERFIRST_DASK_ADDRESS"] = cluster.scheduler_address
            with prefect_test_harness(server_startup_timeout=300):
                from pipeline.flows.send_edition import send_edition
                from pipeline.flows.task_runners import with_task_runner
                from pipeline.settings import load_settings

                sampler = CpuSampler(admin, application, set(client.run(os.getpid).values()), sink.pid)
                sampler.start()
                if trace:
                    import tracemalloc

                    tracemalloc.start(12)
                    traced_before = tracemalloc.take_snapshot()
                began = time.perf_counter()
                try:
                    summary = with_task_runner(send_edition, load_settings())(edition=str(EDITION), audience="bench",
                                                                              today=TODAY)
                finally:
                    wall = time.perf_counter() - began
                    sampler.stop()
                # The flow's plan_seconds run from its start: planning ends there, sending follows.
                planned = began + (wall - summary["seconds"]) + summary["plan_seconds"]
                cpu = {"planning": sampler.between(began, planned),
                       "sending": sampler.between(planned, began + wall)}
                grown = _grown(traced_before, tracemalloc.take_snapshot()) if trace else None
                flow_rss = {"planning": sampler.flow_rss_between(began, planned),
                            "sending": sampler.flow_rss_between(planned, began + wall)}
            worker_rss = sorted(v / 1024 for v in client.run(
                lambda: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss).values())
            held = {"workers": list(client.run(_objects).values()), "flow process": _objects()} if objects else None
        counts = sink_counts(sink_url)
        from pipeline.store.models import SendLedgerEntry

        with db.session() as session:
            per_variant = session.execute(select(SendLedgerEntry.variant_id, func.count())
                                          .group_by(SendLedgerEntry.variant_id)).all()
        db.dispose()
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
        with admin.engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    return {
        "readers": readers, "workers": workers, "sent": summary["sent"], "seconds": summary["seconds"],
        "wall_seconds": wall, "plan_seconds": summary["plan_seconds"], "send_seconds": summary["send_seconds"],
        "readers_per_second": summary["sent"] / summary["seconds"], "requests": summary["requests"],
        "sink_requests": counts["requests"], "minimum_requests": sum(math.ceil(n / 1000) for _, n in per_variant),
        "retries": summary["retries"], "variants": summary["variants"], "seed_seconds": seed_seconds,
        "cluster_seconds": cluster_seconds, "flow_process_rss_mb": _peak_rss_mb(), "worker_rss_mb": worker_rss,
        "sink_rss_mb": counts["peak_rss_mb"], "cpu_seconds": cpu, "held_after": held,
        "flow_process_rss_during": flow_rss, "flow_process_grown": grown,
    }


def _run(readers: int, workers: int, postgres: str, objects: bool = False, trace: bool = False) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(readers), "--workers", str(workers),
                          *(["--objects"] if objects else []), *(["--trace-memory"] if trace else []),
                          "--postgres", postgres], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-5000:])
        raise SystemExit(f"the {readers:,}-reader send with {workers} workers failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak(result: dict) -> float:
    return max(result["flow_process_rss_mb"], result["sink_rss_mb"], *result["worker_rss_mb"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (READERFIRST_DASK_WORKERS)")
    parser.add_argument("--scaling", action="store_true", help="also send the first size with 1 worker, for the ratio")
    parser.add_argument("--postgres", default=os.environ.get("READERFIRST_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--objects", action="store_true",
                        help="also report the Python objects each process still holds after the send, by type")
    parser.add_argument("--trace-memory", action="store_true",
                        help="trace the flow process's Python allocations (tracemalloc, slow) and print where they grew")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        serve_sink(args.sink)
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.workers, args.postgres, args.objects, args.trace_memory)))
        return 0
    results = [_run(n, args.workers, args.postgres, args.objects, args.trace_memory) for n in args.readers]
    single = _run(args.readers[0], 1, args.postgres) if args.scaling else None
    if args.json:
        print(json.dumps({"sends": results, "one_worker": single}, indent=2))
        return 0
    print(f"send-edition on PostgreSQL + Dask ({args.workers} worker processes) -> counting sink (loopback);"
          f" {os.cpu_count()} cores")
    print(server_settings(args.postgres))
    print(f"{'readers':>9} {'wkrs':>4} {'seconds':>8} {'readers/s':>9} {'requests':>8} {'minimum':>7} {'flow RSS':>8}"
          f" {'workers RSS':>13} {'sink RSS':>8} {'seed s':>7} {'cluster s':>9}")
    for r in results + ([single] if single else []):
        workers_rss = "/".join(f"{v:.0f}" for v in r["worker_rss_mb"])
        print(f"{r['readers']:>9,} {r['workers']:>4} {r['seconds']:>8.1f} {r['readers_per_second']:>9,.0f}"
              f" {r['requests']:>8,} {r['minimum_requests']:>7,} {r['flow_process_rss_mb']:>6.0f}MB"
              f" {workers_rss:>11}MB {r['sink_rss_mb']:>6.0f}MB {r['seed_seconds']:>7.1f} {r['cluster_seconds']:>9.1f}")
    for r in results:
        at_minimum = "at the minimum" if r["requests"] == r["sink_requests"] == r["minimum_requests"] else "ABOVE the minimum"
        print(f"{r['readers']:,} readers: {r['seconds']:.1f} s end to end, requests {at_minimum},"
              f" largest process {_peak(r):.0f} MB (goal <= {GOAL_RSS_MB} MB):"
              f" {'PASS' if _peak(r) <= GOAL_RSS_MB else 'FAIL'}")
        if r["readers"] >= 1_000_000:
            print(f"  1M goal <= {GOAL_SECONDS_1M} s: {'PASS' if r['seconds'] <= GOAL_SECONDS_1M else 'FAIL'}")
    for r in results + ([single] if single else []):
        for phase, used in r["cpu_seconds"].items():
            per_reader = ", ".join(f"{group} {1e6 * seconds / r['sent']:.0f}" for group, seconds in sorted(used.items()))
            print(f"{r['readers']:,} readers, {r['workers']} workers, {phase}: CPU microseconds per reader sent: {per_reader}")
        during = ", ".join(f"{phase} {rss['first']:.0f} -> highest {rss['highest']:.0f} MB"
                           for phase, rss in r["flow_process_rss_during"].items())
        print(f"{r['readers']:,} readers, {r['workers']} workers, the flow process's RSS (sampled each second): {during}")
    for r in results:
        for line in r.get("flow_process_grown") or ():
            print(f"{r['readers']:,} readers, the flow process's Python allocations grew by {line}")
        for name, held in (r.get("held_after") or {}).items():
            for one in held if isinstance(held, list) else [held]:
                kinds = ", ".join(f"{kind} {count:,}" for kind, count in one["top"][:8])
                print(f"{r['readers']:,} readers, held after the send by the {name}: {one['rss_mb']:.0f} MB,"
                      f" {one['objects']:,} objects ({kinds})")
    if len(results) > 1:
        first, last = results[0], results[-1]
        for name, key in (("flow process", "flow_process_rss_mb"), ("largest worker", None), ("sink", "sink_rss_mb")):
            a = max(first["worker_rss_mb"]) if key is None else first[key]
            b = max(last["worker_rss_mb"]) if key is None else last[key]
            growth = (b - a) / a
            print(f"peak RSS of the {name}: {a:.0f} MB at {first['readers']:,} -> {b:.0f} MB at {last['readers']:,}"
                  f" ({growth:+.0%}; goal within 10%): {'PASS' if abs(growth) <= 0.10 else 'FAIL'}")
    if single:
        ratio = results[0]["readers_per_second"] / single["readers_per_second"]
        print(f"scaling: {results[0]['readers_per_second']:,.0f} readers/s with {args.workers} workers,"
              f" {single['readers_per_second']:,.0f} with 1: x{ratio:.2f} (goal >= {GOAL_SCALING}):"
              f" {'PASS' if ratio >= GOAL_SCALING else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
