"""Issue 14's goals: the production learner against the reference learner, on shipped, generated and new models.

For every reader model and seed this runs the reference learner (`learning_ceiling.py`) and the
production evaluation (`run_evaluation`, the code behind `readerfirst evaluate`) on the same
simulated readers and editions, and prints per run:

- `vs ref 5-8`: production's CTR over editions 5-8 as a share of the reference learner's, each
  first divided by the oracle's CTR over the same readers (the evaluation leaves out its 10%
  holdout, the reference serves everyone; per oracle, both describe the same audience).
  Goal: at least 0.95 on every model, at least 1.0 on average;
- `drifted vs ref`: the same ratio over drifted readers at the third edition after the change
  (drift edition + 3, or the last one run). Goal: at least 0.9;
- `worst lift low` / `high`: the lowest lower and upper bounds of the editions' lift intervals
  over editorial (goal: no interval entirely below 0, i.e. every upper bound at least 0), and
  `lift (readers x editions)`: the run's lift with its bootstrap interval over readers and editions;
- `needs served`: among readers with an active need whose edition had a section on it, the
  share whose copy had one (goal: at least 0.95), and their expected clicks on it.

Models: the shipped ones, `changing.yaml` (wrong declarations, needs, 80% drift at edition 4),
the tests' `unseen` one and `--generated N` models from `evaluate_models.generate_model`.
The selection cost goal (at most 2x the first scoring rule) is `benchmarks/selection_policy.py`.

`--true-audience-rates` is a diagnostic, not a learner: production runs with the audience's
pooled click rate per topic (`pipeline.content.policy.population_means`, what readers with no
signal of their own are ranked by) replaced by the model's expected rate, click_rate x the mean
affinity for the topic over readers drawn from its prior. It shows what unbiased audience rates
would be worth (a topic's pooled exposures go mostly to readers who like it, so its pooled rate
overstates it for everyone else); production cannot know them.

Run: `python benchmarks/learner_goals.py` (every model, seeds 1 and 2, 2,000 readers: long; run
it in the background), or `--models changing.yaml --seeds 1 --readers 1000`. Needs numpy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from evaluate_models import generate_model  # noqa: E402
from learning_ceiling import SHIPPED, load_models, run_reference  # noqa: E402

from pipeline.simulation.evaluate import Evaluation, run_evaluation  # noqa: E402
from pipeline.simulation.models import ReaderModel, load_reader_model, reader_model_yaml  # noqa: E402

GOALS = {"vs_reference": 0.95, "vs_reference_mean": 1.0, "drifted_vs_reference": 0.9, "needs_served": 0.95}
WINDOW = range(5, 9)  # editions 5-8


def _share(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def true_audience_rates(model: ReaderModel, draws: int = 200_000) -> dict[str, float]:
    """Per topic, click_rate x the mean affinity over `draws` readers from the model's prior (seeded)."""
    import numpy as np

    topics = list(model.topics)
    alphas = np.array([model.concentration * len(topics) * share for share in model.topics.values()])
    tastes = np.random.default_rng(0).gamma(alphas, 1.0, size=(draws, len(topics)))
    affinity = tastes / tastes.max(axis=1, keepdims=True)
    return {topic: float(mean) * model.engagement.click_rate for topic, mean in zip(topics, affinity.mean(axis=0))}


@contextlib.contextmanager
def audience_rates_replaced(rates: dict[str, float] | None) -> Iterator[None]:
    """While open, the policy's audience rates are `rates` for the topics it has figures for (None: unchanged)."""
    import pipeline.content.policy as policy

    original = policy.population_means
    if rates is None:
        yield
        return

    def replaced(population):
        means = original(population)
        return {**means, **{topic: rate for topic, rate in rates.items() if topic in means}}

    policy.population_means = replaced
    try:
        yield
    finally:
        policy.population_means = original


def compare(model: ReaderModel, reference: dict, policy: Evaluation) -> dict[str, Any]:
    """The goals' figures of one model and seed, from the reference run and the production evaluation."""
    ref = {e["edition"]: e for e in reference["editions"]}
    pol = {m.edition: m for m in policy.measures}
    window = [n for n in WINDOW if n in ref and n in pol] or sorted(ref)[-4:]
    ref_share = _share(sum(ref[n]["ctr_reference"] for n in window), sum(ref[n]["ctr_oracle"] for n in window))
    pol_share = _share(sum(pol[n].ctr_personalised for n in window), sum(pol[n].ctr_oracle for n in window))
    drifted = None
    if model.drift is not None and model.drift.at_edition <= len(pol):
        at = min(model.drift.at_edition + 3, len(pol))
        got, best = pol[at].ctr_drifted or (0.0, 0.0)
        drifted = _ratio(_share(got, best), ref[at]["drifted_reference_vs_oracle"])
    needing = [m.needs for m in policy.measures if m.needs]
    readers = sum(n["readers"] for n in needing)
    lift, low, high = policy.lift_interval
    return {"model": model.name, "seed": policy.seed, "readers": policy.readers, "editions": window,
            "vs_reference": _ratio(pol_share, ref_share), "drifted_vs_reference": drifted,
            "worst_lift_low": min((m.lift_ci[0] for m in policy.measures if math.isfinite(m.lift_ci[0])), default=None),
            # The goal: no edition's interval entirely below 0, i.e. every upper bound at least 0.
            "worst_lift_high": min((m.lift_ci[1] for m in policy.measures if math.isfinite(m.lift_ci[1])), default=None),
            "lift_over_editions": [lift, low, high],
            "needs_served": _share(sum(n["served"] * n["readers"] for n in needing), readers) if readers else None,
            "needs_ctr": _share(sum(n["ctr_on_need"] * n["readers"] for n in needing), readers) if readers else None}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def print_row(row: dict[str, Any]) -> None:
    """One run's figures as a line of the table."""
    lift, low, high = row["lift_over_editions"]
    print(f"{row['model']:<14} {row['seed']:>4} {_fmt(row['vs_reference']):>10} {_fmt(row['drifted_vs_reference']):>14} "
          f"{_fmt(row['worst_lift_low']):>8}/{_fmt(row['worst_lift_high']):<6} {_fmt(lift):>7} [{_fmt(low)}, {_fmt(high)}] "
          f"{_fmt(row['needs_served']):>12} {_fmt(row['needs_ctr']):>9}", flush=True)


HEADER = (f"{'model':<14} {'seed':>4} {'vs ref 5-8':>10} {'drifted vs ref':>14} {'worst lift low/high':>15} "
          f"{'lift (readers x editions)':>25} {'needs served':>12} {'needs ctr':>9}")


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each goal: the figure that decides it and whether it is met (None: no run it applies to)."""

    def judged(key: str, goal: float, pick: Any = min) -> tuple[float | None, bool | None]:
        values = [r[key] for r in rows if r[key] is not None]
        if not values:
            return None, None
        value = pick(values)
        return value, value >= goal

    return {
        "lowest vs reference (>= 0.95)": judged("vs_reference", GOALS["vs_reference"]),
        "mean vs reference (>= 1.0)": judged("vs_reference", GOALS["vs_reference_mean"], lambda v: sum(v) / len(v)),
        "lowest drifted vs reference (>= 0.9)": judged("drifted_vs_reference", GOALS["drifted_vs_reference"]),
        "lowest upper bound of an edition's lift interval (>= 0)": judged("worst_lift_high", 0.0),
        "lowest needs served (>= 0.95)": judged("needs_served", GOALS["needs_served"]),
    }


def _reference(model: ReaderModel, seed: int, args: argparse.Namespace) -> dict:
    """The reference learner's figures, from the cache when it holds this run."""
    digest = zlib.crc32(reader_model_yaml(model).encode())
    key = f"{model.name}-{digest:08x}-{seed}-{args.readers}-{args.editions}-{args.particles}-{args.bank}.json"
    cached = args.reference_cache / key if args.reference_cache else None
    if cached is not None and cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    found = run_reference(model, seed, readers=args.readers, editions=args.editions, particles=args.particles,
                          bank=args.bank, minimum=1_000)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(found), encoding="utf-8")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[*SHIPPED, "changing.yaml", "unseen"])
    parser.add_argument("--generated", type=int, default=2, help="also this many generated models")
    parser.add_argument("--generator-seed", type=int, default=7)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--readers", type=int, default=2_000)
    parser.add_argument("--editions", type=int, default=8)
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--bank", type=int, default=1_000_000)
    parser.add_argument("--reference-cache", type=Path,
                        help="keep the reference learner's figures in this folder and reuse them (they do not depend"
                             " on the production policy)")
    parser.add_argument("--true-audience-rates", action="store_true",
                        help="diagnostic: production ranks by the model's true audience rates (see the docstring)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="readerfirst-learner-goals-") as scratch:
        models = load_models(args.models)
        rng = random.Random(args.generator_seed)
        for number in range(1, args.generated + 1):
            raw = generate_model(number, rng)
            path = Path(scratch) / f"{raw['name']}.yaml"
            path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
            models.append(load_reader_model(path))
        if not args.json:
            print(HEADER, flush=True)
        for model in models:
            for seed in args.seeds:
                reference = _reference(model, seed, args)
                with audience_rates_replaced(true_audience_rates(model) if args.true_audience_rates else None):
                    policy = run_evaluation(model, editions=args.editions, readers=args.readers, seed=seed)
                rows.append(compare(model, reference, policy))
                if not args.json:
                    print_row(rows[-1])
    goals = summary(rows)
    if args.json:
        print(json.dumps({"runs": rows, "goals": {k: {"value": v, "met": m} for k, (v, m) in goals.items()}}, indent=2))
        return 0
    print("\ngoals:")
    for name, (value, met) in goals.items():
        print(f"  {name}: {_fmt(value)} {'no run it applies to' if met is None else 'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
