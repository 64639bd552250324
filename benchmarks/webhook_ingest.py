"""Webhook ingest benchmark: signed SendGrid-sized batches posted to the web service on loopback.

The service runs in its own process (uvicorn on `pipeline.web:create_app`, one worker) over a
fresh SQLite file holding 60,000 readers; this process posts pre-built, pre-signed batches of
~1,500 events (~768 KB, SendGrid's batch size) from a few threads, as SendGrid posts several
batches at once. Every batch goes through the whole path: size limit, timestamp window, ECDSA
signature over the raw body, JSON parsing, reader attribution and the deduplicating insert in
one transaction, answered only once stored. A share of the batches is sent twice, as SendGrid's
retries do, to exercise deduplication.

The same batches are posted twice, each time to a fresh service and database: once with the
web service's SQLite connections at `synchronous=NORMAL` (what the send path uses: a commit is
safe from a crash of the process, but the last ones can vanish with the power) and once at
`synchronous=FULL` (the web service's setting: the WAL is synced at every commit, so a batch
answered 2xx survives power loss). Prints events/s and the p50/p99 latency of a batch for each,
and FULL's throughput as a share of NORMAL's: the cost of the promise. Goal: >= 20,000 events/s
at FULL. The database goes in a temporary folder, or `--folder DIR`: fsync costs what the disk
under it costs, so measure on the disk production uses.
Run: `python benchmarks/webhook_ingest.py` (about 20 s); `--batches 80 --concurrency 8` for more.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert

from pipeline.store.database import open_database
from pipeline.store.models import Audience, Reader

ROOT = Path(__file__).resolve().parent.parent
GOAL = 20_000  # events per second
READERS = 60_000
TARGET_BATCH_BYTES = 768 * 1024
USER_AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")


def _event(rng: random.Random, batch: int, index: int) -> dict:
    """One realistic event: the mix of a newsletter's first hours (deliveries, opens, clicks)."""
    reader_id = rng.randint(1, READERS)
    kind = rng.choices(["processed", "delivered", "open", "click", "deferred", "bounce"], [30, 30, 25, 12, 2, 1])[0]
    message = f"{rng.getrandbits(64):016x}.filterdrecv-{batch}-{index}.0"
    event: dict = {
        "email": f"reader{reader_id}@example.com", "timestamp": int(time.time()) - rng.randint(0, 3600),
        "smtp-id": f"<{message[:16]}@ismtpd0001p1lon1.sendgrid.net>", "event": kind,
        "category": ["edition-2026-12-07", f"variant-{reader_id % 7}"],
        "sg_event_id": f"{batch:04d}-{index:05d}-{rng.getrandbits(48):012x}", "sg_message_id": message,
        "edition_id": "2026-12-07", "reader_id": str(reader_id), "variant_id": f"v{reader_id % 7:02d}abc",
        "holdout": "1" if reader_id % 20 == 0 else "0",
    }
    if kind in ("open", "click"):
        event.update({"useragent": USER_AGENT, "ip": f"203.0.113.{rng.randint(1, 254)}",
                      "sg_machine_open": kind == "open" and rng.random() < 0.4})
    if kind == "click":
        event["url"] = (f"https://news.example.com/stories/{rng.randint(1, 999)}?utm_source=readerfirst&"
                        f"utm_medium=email&utm_campaign=2026-12-07&rf_e=2026-12-07&rf_s=section-{rng.randint(1, 12)}")
        event["url_offset"] = {"index": rng.randint(0, 9), "type": "html"}
    if kind in ("deferred", "bounce"):
        event.update({"response": "421 4.7.0 Try again later", "attempt": "2"} if kind == "deferred" else
                     {"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 The email account does not exist."})
    event["tls"] = 1
    return event


def build_batches(count: int, events_per_batch: int, seed: int = 7) -> list[bytes]:
    """`count` webhook bodies of `events_per_batch` events each, padded to about 768 KB like SendGrid's."""
    rng = random.Random(seed)
    bodies = []
    for batch in range(count):
        events = [_event(rng, batch, index) for index in range(events_per_batch)]
        body = json.dumps(events).encode()
        padding = max(0, (TARGET_BATCH_BYTES - len(body)) // events_per_batch - 20)
        if padding:
            # SendGrid's events carry more fields than ours (marketing ids, pool names); size is what matters.
            for event in events:
                event["pool"] = {"name": "x" * padding, "id": 1}
            body = json.dumps(events).encode()
        bodies.append(body + b"\r\n")
    return bodies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _seed_readers(url: str) -> None:
    db = open_database(url)
    with db.engine.begin() as connection:
        audience_id = connection.execute(insert(Audience).values(name="bench")).inserted_primary_key[0]
        rows = [{"id": i, "audience_id": audience_id, "public_id": f"{i:032x}", "email": f"reader{i}@example.com",
                 "first_name": "", "last_name": "", "timezone": "", "status": "subscribed", "tags": []}
                for i in range(1, READERS + 1)]
        connection.execute(insert(Reader), rows)
    db.dispose()


def _start_service(env: dict[str, str], port: int, synchronous: str) -> subprocess.Popen:
    # The application as `readerfirst web` builds it, with only the web database's synchronous level chosen.
    code = ("import uvicorn\n"
            "from pipeline.settings import load_settings\n"
            "from pipeline.web.app import create_app, open_web_database\n"
            "settings = load_settings()\n"
            f"db = open_web_database(settings.resolved_database_url, synchronous={synchronous!r})\n"
            f"uvicorn.run(create_app(settings, db), host='127.0.0.1', port={port}, log_level='warning', "
            "access_log=False)\n")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the web service did not start")


def _signed(batches: int, events_per_batch: int, resend: float, *, seed: int = 7) -> tuple[str, list[tuple[bytes, dict]]]:
    """The public key and the signed bodies: `batches` distinct ones, then a share `resend` of them again."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    bodies = build_batches(batches, events_per_batch, seed=seed)
    # SendGrid's retries: a share of the batches comes again, after the first copies.
    bodies += bodies[: int(len(bodies) * resend)]
    stamp = str(int(time.time()))
    return public, [(body, {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(
        key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"}) for body in bodies]


def _post_all(signed: list[tuple[bytes, dict]], ports: list[int], concurrency: int) -> dict:
    """Post every body from `concurrency` threads, spread over the services on `ports`; the figures."""
    latencies: list[float] = []
    counts = {"stored": 0, "duplicates": 0, "quarantined": 0}
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(enumerate(signed))

    def worker(port: int) -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    _, (body, headers) = queue.pop(0)
                started = time.perf_counter()
                answer = client.post(f"http://127.0.0.1:{port}/webhooks/sendgrid", content=body, headers=headers)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                    else:
                        for name in counts:
                            counts[name] += answer.json()[name]

    started = time.perf_counter()
    # Each poster keeps to one service, as a proxy's keep-alive connections do.
    threads = [threading.Thread(target=worker, args=(ports[n % len(ports)],)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    events = sum(body.count(b'"sg_event_id"') for body, _ in signed)
    ordered = sorted(latencies)
    return {
        "batches": len(signed), "events": events, "bytes": sum(len(b) for b, _ in signed), "seconds": wall,
        "events_per_second": events / wall, "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, "failures": failures, **counts,
    }


def run(batches: int, events_per_batch: int, concurrency: int, resend: float, *, synchronous: str = "FULL",
        folder: str | None = None) -> dict:
    """Post the batches to a fresh service whose SQLite runs at `synchronous`, and measure; returns the figures."""
    public, signed = _signed(batches, events_per_batch, resend)
    with tempfile.TemporaryDirectory(prefix="readerfirst-bench-", dir=folder) as folder:
        url = f"sqlite:///{folder}/bench.db"
        _seed_readers(url)
        port = _free_port()
        env = {**os.environ, "READERFIRST_HOME": folder, "READERFIRST_DATABASE_URL": url,
               "READERFIRST_SECRET": "benchmark-secret-of-at-least-32-bytes", "SENDGRID_WEBHOOK_PUBLIC_KEY": public}
        process = _start_service(env, port, synchronous)
        try:
            figures = _post_all(signed, [port], concurrency)
        finally:
            process.terminate()
            process.wait(30)
    return {"synchronous": synchronous, **figures}


def main() -> None:
    """Run the benchmark at NORMAL then FULL and print the figures; exit 1 below the goal (at FULL) or on any failed batch."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="distinct batches to post (default 40)")
    parser.add_argument("--events", type=int, default=1500, help="events per batch (default 1500)")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight at once (default 4)")
    parser.add_argument("--resend", type=float, default=0.25, help="share of batches sent twice (default 0.25)")
    parser.add_argument("--folder", help="where the database goes (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    runs = {level: run(args.batches, args.events, args.concurrency, args.resend, synchronous=level, folder=args.folder)
            for level in ("NORMAL", "FULL")}
    ratio = runs["FULL"]["events_per_second"] / runs["NORMAL"]["events_per_second"]
    full = runs["FULL"]
    if args.json:
        print(json.dumps({"runs": runs, "full_over_normal": ratio}, indent=2))
    else:
        print(f"{full['batches']} batches ({full['batches'] - args.batches} resent), {full['events']:,} events, "
              f"{full['bytes'] / full['batches'] / 1024:.0f} KB per batch, concurrency {args.concurrency}")
        for level, figures in runs.items():
            print(f"synchronous={level:<6}: {figures['events_per_second']:,.0f} events/s over {figures['seconds']:.2f} s; "
                  f"batch latency p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms; "
                  f"stored {figures['stored']:,}, duplicates {figures['duplicates']:,}")
        print(f"FULL / NORMAL throughput: {ratio:.2f} (what a 2xx that survives power loss costs)")
        verdict = "PASS" if full["events_per_second"] >= GOAL and not full["failures"] else "FAIL"
        print(f"goal >= {GOAL:,} events/s at FULL: {verdict}")
    failures = [f for figures in runs.values() for f in figures["failures"]]
    for failure in failures[:5]:
        print(f"failed batch: {failure}", file=sys.stderr)
    if full["events_per_second"] < GOAL or failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
