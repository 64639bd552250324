"""The evaluation's goals on reader models that are not in the repository, generated at random.

The shipped reader models are the ones the policy was developed against; a policy tuned to
them can pass there and fail on an audience it has never met. This benchmark draws `--models`
reader models from a seeded generator over wide ranges (5-18 topics of log-normal popularity,
concentration 0.1-3, declarations from none to most readers, open rates 0.2-0.6, click rates
0.05-0.45, position decay 0.6-1.0, Apple MPP 0-70%, k 3-7, m 1-3, a drift in half of them),
runs `run_evaluation` on each (the same code as `readerfirst evaluate`), and prints, per model,
the figures behind each goal, then how many models meet each one.

Run: `python benchmarks/evaluate_models.py` (16 models x 2,000 readers x 8 editions, about
two minutes), `--models 40 --generator-seed 3 --readers 5000`, `--keep DIR` to keep the
generated model files (each one can then be run with `readerfirst evaluate --reader-model`),
`--json` for the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, installed or not

from pipeline.simulation.evaluate import Evaluation, run_evaluation  # noqa: E402

_KINDS = ("news", "tips", "deals", "events", "jobs", "ideas")


def generate_model(number: int, rng: random.Random) -> dict[str, Any]:
    """One random reader model, as the file format's mapping."""
    count = rng.randint(5, 18)
    topics = {f"t{i}-{rng.choice(_KINDS)}": round(rng.lognormvariate(0.0, 0.8) + 0.05, 2) for i in range(count)}
    model: dict[str, Any] = {
        "name": f"generated-{number}",
        "description": "Drawn by benchmarks/evaluate_models.py.",
        "topics": topics,
        "preferences": {"concentration": rng.choice([0.1, 0.2, 0.4, 0.8, 1.5, 3.0])},
        "declared": {"share": round(rng.uniform(0.0, 0.8), 2), "topics": rng.randint(0, 3)},
        "engagement": {"open_rate": round(rng.uniform(0.2, 0.6), 2), "click_rate": round(rng.uniform(0.05, 0.45), 2),
                       "position_decay": round(rng.uniform(0.6, 1.0), 2),
                       "machine_open_share": round(rng.uniform(0.0, 0.7), 2)},
        "unsubscribe": {"base": round(rng.uniform(0.001, 0.005), 4), "poorly_served": round(rng.uniform(0.01, 0.06), 3)},
        "complaint": {"base": 0.0001, "poorly_served": 0.002},
        "edition": {"candidates": rng.randint(max(12, count), 40), "sections_per_reader": rng.randint(3, 7),
                    "max_per_topic": rng.randint(1, 3)},
    }
    if rng.random() < 0.5:
        model["drift"] = {"share": round(rng.uniform(0.1, 0.6), 2), "at_edition": rng.randint(2, 5)}
    return model


def figures(result: Evaluation) -> dict[str, Any]:
    """What each goal looks at, from one evaluation."""
    measures = result.measures
    last = measures[-1]
    goals = {g["goal"]: g for g in result.goals}
    drift = next((g for g in result.goals if "drift" in g["goal"]), None)
    return {
        "cold_start_vs_editorial": round(measures[0].ctr_personalised / measures[0].ctr_editorial, 3),
        "final_vs_editorial": round(last.ctr_personalised / last.ctr_editorial, 3),
        "final_vs_oracle": round(last.ctr_personalised / last.ctr_oracle, 3),
        "oracle_vs_editorial": round(last.ctr_oracle / last.ctr_editorial, 3),
        "lowest_vs_editorial": round(min(m.ctr_personalised / m.ctr_editorial for m in measures), 3),
        "unsubscribes": next(g["value"] for g in result.goals if g["goal"].startswith("unsubscribe")),
        "drift_vs_oracle": drift["value"]["vs_oracle"] if drift and drift["value"] else None,
        "met": {name: g["met"] for name, g in goals.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--generator-seed", type=int, default=7, help="seed of the model generator")
    parser.add_argument("--readers", type=int, default=2_000)
    parser.add_argument("--editions", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="write the generated model files into this folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(args.generator_seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="readerfirst-models-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(1, args.models + 1):
            model = generate_model(number, rng)
            path = folder / f"{model['name']}.yaml"
            path.write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
            result = run_evaluation(path, editions=args.editions, readers=args.readers, seed=number)
            row = {"model": model["name"], "editions": args.editions, "concentration": model["preferences"]["concentration"],
                   "declared": model["declared"], "engagement": model["engagement"], "edition": model["edition"],
                   "drift": model.get("drift"), **figures(result)}
            rows.append(row)
            if not args.json:
                _print_row(row)
    tally: dict[str, list[int]] = {}
    for row in rows:
        for goal, met in row["met"].items():
            if met is not None:
                tally.setdefault(goal, [0, 0])[0] += bool(met)
                tally[goal][1] += 1
    if args.json:
        print(json.dumps({"models": rows, "met": {goal: {"met": m, "judged": n} for goal, (m, n) in tally.items()}},
                         indent=2))
        return 0
    print("\ngoal: models meeting it / models where it applies")
    for goal, (met, judged) in tally.items():
        print(f"  {goal}: {met} / {judged}")
    return 0


def _print_row(row: dict[str, Any]) -> None:
    e, d = row["engagement"], row["edition"]
    unsub = row["unsubscribes"]
    print(f"{row['model']}: concentration {row['concentration']}, declared {row['declared']['share']:.0%}"
          f" x{row['declared']['topics']}, open {e['open_rate']}, click {e['click_rate']},"
          f" decay {e['position_decay']}, k {d['sections_per_reader']}, m {d['max_per_topic']}"
          f"{', drift ' + str(row['drift']['share']) + ' at ' + str(row['drift']['at_edition']) if row['drift'] else ''}")
    print(f"    cold start {row['cold_start_vs_editorial']}x editorial; edition {row['editions']}:"
          f" {row['final_vs_editorial']}x editorial, {row['final_vs_oracle']}x oracle"
          f" (oracle {row['oracle_vs_editorial']}x editorial); lowest edition {row['lowest_vs_editorial']}x editorial;"
          f" unsubscribes {unsub['personalised']:.4f} vs {unsub['editorial']:.4f}"
          f"{'; after drift ' + str(row['drift_vs_oracle']) + 'x oracle' if row['drift_vs_oracle'] else ''}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
