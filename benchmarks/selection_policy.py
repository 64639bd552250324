"""Selection benchmark: the personalised policy (`choose_sections`, 'thompson') against the first scoring rule.

Both choose sections for the same generated readers (`generate_profiles`, seed 7, given
synthetic learned signals: decayed clicks and exposures on a few topics each, and for a quarter
of them none at all) from an edition of 40 candidate sections: the sample edition's pinned note
and its 13 other sections three times over, with new ids and the topics of each copy rotated
over the 10 topics. Cold-start readers get the population prior summed from the first chunk.

Readers are made a chunk at a time outside the timed part. Within a chunk each path runs
`repeats` times, alternating which goes first, and the fastest run of each counts: the figures
are the sum of those. Goal: the policy costs at most 2x the rule per reader.
Run: `python benchmarks/selection_policy.py` (100k readers) or `--readers 20000 --repeats 1`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.audience.profile import Profile, TopicSignal
from pipeline.audience.sample import SAMPLE_TOPICS, generate_profiles
from pipeline.content.edition import Edition, load_edition
from pipeline.content.policy import PolicySettings, choose_sections
from pipeline.content.selection import Selection, select_sections

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
TODAY = dt.date(2026, 12, 7)  # the sample edition's date, so generated needs are current
CANDIDATES = 40
CHUNK = 5_000
GOAL = 2.0
PATHS = ("rule", "thompson")
# Reason texts by how they start, to count the policy's picks by kind.
KINDS = (("editor's pick", "pinned"), ("you said you need", "need"), ("you often read", "learned"),
         ("you follow", "declared"), ("popular with readers", "population"), ("something new to try", "new topic"),
         ("another look", "another look"), ("one of this week's", "fill"))


def build_edition(candidates: int = CANDIDATES) -> Edition:
    """The sample edition grown to `candidates` sections: copies of its sections, new ids, rotated topics."""
    sample = load_edition(EDITION)
    pinned = [s for s in sample.sections if s.pinned]
    others = [s for s in sample.sections if not s.pinned]
    rotate = {t: i for i, t in enumerate(SAMPLE_TOPICS)}
    sections = list(pinned)
    for copy in itertools.count():
        for section in others:
            if len(sections) >= candidates:
                return dataclasses.replace(sample, sections=tuple(sections))
            topics = tuple(SAMPLE_TOPICS[(rotate[t] + copy) % len(SAMPLE_TOPICS)] for t in section.topics)
            sections.append(dataclasses.replace(section, id=f"{section.id}-{copy}", topics=topics))
    raise AssertionError("unreachable")


def with_history(profile: Profile, rng: random.Random) -> Profile:
    """The profile with synthetic learned signals: declared topics clicked more, as real readers do."""
    if rng.random() < 0.25:
        return profile  # never sent anything yet (a cold start when nothing is declared either)
    learned = {}
    for topic in rng.sample(SAMPLE_TOPICS, rng.randint(1, 7)):
        exposures = rng.uniform(1.0, 30.0)
        rate = rng.uniform(0.0, 0.12) + 0.25 * profile.interests.get(topic, 0.0)
        learned[topic] = TopicSignal(clicks=exposures * min(rate, 1.0), exposures=exposures)
    return dataclasses.replace(profile, learned=learned)


def chunks(readers: int) -> Iterator[list[Profile]]:
    """The generated audience with histories, CHUNK readers at a time (the same for both paths)."""
    rng = random.Random(20261207)
    profiles = (with_history(p, rng) for p in generate_profiles(readers, seed=7, today=TODAY))
    while chunk := list(itertools.islice(profiles, CHUNK)):
        yield chunk


def population_of(profiles: list[Profile]) -> dict[str, TopicSignal]:
    """Per topic, the clicks and exposures of these readers summed (what `population_prior` returns)."""
    clicks: Counter[str] = Counter()
    exposures: Counter[str] = Counter()
    for profile in profiles:
        for topic, signal in profile.learned.items():
            clicks[topic] += signal.clicks
            exposures[topic] += signal.exposures
    return {t: TopicSignal(clicks[t], exposures[t]) for t in exposures}


def kind_of(reason: str) -> str:
    """The kind of a reason text (need, learned, declared, ...)."""
    return next((kind for start, kind in KINDS if reason.startswith(start)), "other")


def run(readers: int, repeats: int, exploration: float, seed: int) -> dict:
    """Time both paths over `readers` readers; returns the figures."""
    edition = build_edition()
    settings = PolicySettings(exploration=exploration)
    population: dict[str, TopicSignal] | None = None
    paths: dict[str, Callable[[Profile], Selection]] = {
        "rule": lambda p: select_sections(edition, p, today=TODAY),
        "thompson": lambda p: choose_sections(edition, p, today=TODAY, seed=seed, policy_settings=settings,
                                              population=population),
    }
    seconds = dict.fromkeys(PATHS, 0.0)
    variants = {p: set() for p in PATHS}
    reasons: Counter[str] = Counter()
    cold = 0
    for number, chunk in enumerate(chunks(readers)):
        if population is None:
            population = population_of(chunk)
        best = dict.fromkeys(PATHS, float("inf"))
        for round_ in range(repeats):
            for path in PATHS if (number + round_) % 2 == 0 else PATHS[::-1]:
                choose = paths[path]
                started = time.perf_counter()
                for profile in chunk:
                    choose(profile)
                best[path] = min(best[path], time.perf_counter() - started)
        for path in PATHS:
            seconds[path] += best[path]
        for profile in chunk:  # untimed: what the policy chose, for the report
            cold += not profile.learned and not any(profile.interests.values())
            for path in PATHS:
                selection = paths[path](profile)
                variants[path].add(selection.variant_id)
                if path == "thompson":
                    reasons.update(kind_of(p.reason) for p in selection.picks)
    ratio = seconds["rule"] and seconds["thompson"] / seconds["rule"]
    return {"readers": readers, "candidates": len(edition.sections), "topics": len(SAMPLE_TOPICS),
            "repeats": repeats, "exploration": exploration, "cold_start_readers": cold,
            **{f"{p}_readers_per_s": readers / seconds[p] for p in PATHS},
            **{f"{p}_us_per_reader": 1e6 * seconds[p] / readers for p in PATHS},
            **{f"{p}_variants": len(variants[p]) for p in PATHS},
            "ratio": ratio, "pass": ratio <= GOAL, "thompson_reasons": dict(reasons.most_common())}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print the figures; exit 1 when the policy misses the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100_000, help="generated readers (default 100,000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per chunk and path, fastest kept (default 3)")
    parser.add_argument("--exploration", type=float, default=0.1, help="the policy's exploration share (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="the policy's seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    result = run(args.readers, args.repeats, args.exploration, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"selection for {result['readers']:,} readers, {result['candidates']} candidate sections over "
              f"{result['topics']} topics, fastest of {result['repeats']} per chunk (Python {sys.version.split()[0]})")
        print(f"{'path':<10} {'readers/s':>10} {'us/reader':>10} {'variants':>9}")
        for path in PATHS:
            print(f"{path:<10} {result[f'{path}_readers_per_s']:>10,.0f} {result[f'{path}_us_per_reader']:>10.1f}"
                  f" {result[f'{path}_variants']:>9,}")
        print(f"thompson/rule cost per reader = {result['ratio']:.2f}x (goal <= {GOAL:.1f}x): "
              f"{'PASS' if result['pass'] else 'FAIL'}")
        print(f"cold-start readers: {result['cold_start_readers']:,}; thompson picks by reason: "
              + ", ".join(f"{r} {n:,}" for r, n in result["thompson_reasons"].items()))
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
