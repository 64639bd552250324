"""A deterministic generator of fictional readers, for the sample audience, starter projects and benchmarks.

`readerfirst audience sample` writes `audiences/sample.csv` with it, and `readerfirst init` a
starter project's `audiences/readers.csv`; the same seed always gives the same file, so the
sample in the repository can be checked and regenerated.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.audience.profile import Profile

__all__ = ["SAMPLE_TOPICS", "generate_rows", "render_sample_csv", "write_sample_csv", "generate_profiles"]

SAMPLE_TOPICS = ("climate", "hiring", "ai", "security", "design", "funding", "remote-work", "product", "data",
                 "leadership")
_FIRST = ("Ada", "Bea", "Chidi", "Dana", "Emeka", "Farah", "Goran", "Hana", "Idris", "Jun", "Kemi", "Lars", "Mei",
          "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tomás", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoë")
_LAST = ("Okafor", "Lindqvist", "Novak", "Haddad", "Moreau", "Tanaka", "Osei", "Fischer", "Kowalski", "Reyes",
         "Nakamura", "Brennan", "Abara", "Ivanova", "Costa", "Dubois", "Mensah", "Sato", "Walsh", "Yilmaz")
_ZONES = ("Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Tokyo",
          "Africa/Lagos", "Australia/Sydney", "")
_TAGS = ("founder", "engineer", "manager", "investor", "designer")


def _reader(rng: random.Random, index: int, topics: Sequence[str]) -> dict[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    # Popularity falls along the topic list, so some topics are niche, as in a real audience.
    weights = [1.0 / (1 + i * 0.35) for i in range(len(topics))]
    chosen = []
    for _ in range(rng.randint(0, 4)):
        topic = rng.choices(topics, weights)[0]
        if topic not in chosen:
            chosen.append(topic)
    interests = ";".join(f"{t}:{rng.choice((1, 0.8, 0.6, 0.4))}" for t in chosen)
    needs = rng.choice(topics) if rng.random() < 0.2 else ""
    status = "unsubscribed" if rng.random() < 0.03 else "subscribed"
    domain = rng.choice(("example.com", "example.org", "example.net"))
    return {
        "email": f"{first.lower().replace('á', 'a').replace('ë', 'e')}.{last.lower()}.{index}@{domain}",
        "first_name": first if rng.random() > 0.05 else "",
        "last_name": last,
        "interests": interests,
        "needs": needs,
        "needs_until": "",
        "timezone": rng.choice(_ZONES),
        "status": status,
        "tags": ";".join(sorted(set(rng.sample(_TAGS, rng.randint(0, 2))))),
    }


def generate_rows(count: int, *, seed: int = 7, topics: Sequence[str] = SAMPLE_TOPICS) -> Iterator[dict[str, str]]:
    """`count` fictional readers as audience-file rows; the same seed gives the same rows."""
    rng = random.Random(seed)
    for index in range(count):
        yield _reader(rng, index, topics)


def render_sample_csv(count: int = 400, *, seed: int = 7) -> str:
    """A sample audience file in readerfirst's CSV format, as text."""
    handle = io.StringIO()
    rows = generate_rows(count, seed=seed)
    first = next(rows)
    writer = csv.DictWriter(handle, fieldnames=list(first), lineterminator="\n")
    writer.writeheader()
    writer.writerow(first)
    writer.writerows(rows)
    return handle.getvalue()


def write_sample_csv(path: Path, count: int = 400, *, seed: int = 7) -> Path:
    """Write a sample audience file in readerfirst's CSV format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_sample_csv(count, seed=seed), encoding="utf-8", newline="")
    return path


def generate_profiles(count: int, *, seed: int = 7, topics: Sequence[str] = SAMPLE_TOPICS,
                      today=None) -> Iterator[Profile]:
    """`count` fictional profiles straight from the generator, one at a time (for benchmarks)."""
    import datetime as dt

    today = today or dt.date.today()
    for index, row in enumerate(generate_rows(count, seed=seed, topics=topics)):
        interests = {t: float(w) for t, _, w in (p.partition(":") for p in row["interests"].split(";") if p)}
        needs = {row["needs"]: today + dt.timedelta(days=30)} if row["needs"] else {}
        yield Profile(reader_id=index + 1, email=row["email"], public_id=f"{index:032x}",
                      first_name=row["first_name"], last_name=row["last_name"], interests=interests, needs=needs)
