"""What the evaluation feeds the pipeline: an audience file and edition files, generated from a reader model.

The audience is an ordinary audience file for `import_audience`: names, addresses, time zones
and tags from the sample generator (`pipeline.audience.sample`), declared interests from each
reader's hidden preferences (what the model says readers declare at sign-up), so the import
carries exactly the signal a real sign-up form would.

Each edition is written as an ordinary edition file (with a `topics.yaml` beside it), so it
goes through `load_edition` and `prepare_edition` like any edition an editor writes. Every
topic gets at least two candidates when there is room (so that a reader devoted to a niche
topic can be served), the rest follow popularity, and about one section in six has a second
topic. The editorial order is what an editor who knows the audience would do: a random order
weighted by the popularity of each section's topic, so the editorial newsletter (its first
sections) leans to what most readers like and is a fair baseline, not a straw man.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path
from typing import Any

import yaml

from pipeline.audience.sample import generate_rows
from pipeline.simulation.models import ReaderModel
from pipeline.simulation.readers import SimulatedAudience, reader_stream

__all__ = ["SECOND_TOPIC_SHARE", "edition_id_for", "write_audience", "write_edition", "write_taxonomy"]

SECOND_TOPIC_SHARE = 1 / 6
_EVENT_SHARE = 0.1
_SITE = "https://news.example.com"
_IMAGES = "https://images.example.com/sim"


def edition_id_for(number: int) -> str:
    """The id of the `number`-th generated edition (1-based)."""
    return f"sim-{number:03d}"


def _label(topic: str) -> str:
    return topic.replace("-", " ").capitalize()


def write_taxonomy(model: ReaderModel, folder: Path) -> Path:
    """Write `topics.yaml` with the model's topics into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "topics.yaml"
    path.write_text(yaml.safe_dump({"topics": {t: _label(t) for t in model.topic_names}}, sort_keys=False),
                    encoding="utf-8")
    return path


def _topics_of_candidates(model: ReaderModel, rng: random.Random) -> list[list[str]]:
    topics = list(model.topic_names)
    weights = [model.topics[t] for t in topics]
    count = model.edition.candidates
    floor = 2 if count >= 2 * len(topics) else 1 if count >= len(topics) else 0
    primaries = [t for t in topics for _ in range(floor)]
    primaries += rng.choices(topics, weights, k=count - len(primaries))
    result = []
    for primary in primaries:
        chosen = [primary]
        if rng.random() < SECOND_TOPIC_SHARE:
            second = rng.choices(topics, weights)[0]
            if second != primary:
                chosen.append(second)
        result.append(chosen)
    return result


def _section(edition: int, index: int, topics: list[str], kind: str, sent: dt.date) -> dict[str, Any]:
    section_id = f"e{edition}-s{index:02d}-{topics[0]}"[:64].rstrip("-")
    label = " and ".join(_label(t) for t in topics)
    raw: dict[str, Any] = {
        "id": section_id,
        "kind": kind,
        "title": f"{label}: story {index + 1} of edition {edition}",
        "body": f"A simulated story about {label.lower()}, for testing how well the newsletter serves its readers.",
        "url": f"{_SITE}/{topics[0]}/{section_id}",
        "topics": topics,
    }
    if kind == "event":
        raw["event"] = {"starts": (sent + dt.timedelta(days=10)).isoformat(), "location": "Online"}
    else:
        raw["image"] = {"src": f"{_IMAGES}/{section_id}.jpg", "alt": f"An illustration for a story about {label.lower()}"}
    return raw


def write_edition(model: ReaderModel, folder: Path, number: int, *, seed: int, sent: dt.date) -> Path:
    """Generate edition `number` (1-based) for `model` into `folder`; returns the edition file.

    Deterministic for (model, seed, number); section ids are new in every edition.
    """
    rng = reader_stream(seed, f"edition-{number}", "edition")
    candidates = _topics_of_candidates(model, rng)
    # Efraimidis-Spirakis: an order drawn with probability proportional to popularity.
    keys = [rng.random() ** (1.0 / max(model.topics[t[0]], 1e-9)) for t in candidates]
    order = sorted(range(len(candidates)), key=lambda i: -keys[i])
    sections = []
    for place, index in enumerate(order):
        kind = "lead" if place == 0 else "event" if rng.random() < _EVENT_SHARE else "article"
        sections.append(_section(number, place, candidates[index], kind, sent))
    edition = {
        "id": edition_id_for(number),
        "subject": f"{{{{ first_name or 'Hello' }}}}, your brief #{number}",
        "preheader": f"Simulated edition {number} for the {model.name} audience.",
        "sections_per_reader": model.edition.sections_per_reader,
        "max_per_topic": model.edition.max_per_topic,
        "sections": sections,
    }
    write_taxonomy(model, folder)
    path = folder / f"{edition['id']}.yaml"
    path.write_text(yaml.safe_dump(edition, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_audience(audience: SimulatedAudience, path: Path, count: int, *, seed: int,
                   first_sent: dt.date | None = None) -> Path:
    """Write `count` subscribed readers of `audience` as a CSV audience file; returns `path`.

    A reader's need is written with `needs_until` the day the need's last edition is sent,
    edition n going out `first_sent` + (n - 1) weeks; without `first_sent`, needs are left out.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in generate_rows(count, seed=seed, topics=audience.model.topic_names):
        reader = audience.reader(row["email"])
        need = reader.need if first_sent is not None else None
        until = first_sent + dt.timedelta(weeks=reader.need_last - 1) if need and first_sent else None
        rows.append({**row, "interests": ";".join(f"{t}:{w:g}" for t, w in reader.declared.items()),
                     "needs": need or "", "needs_until": until.isoformat() if until else "", "status": "subscribed"})
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["email"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
