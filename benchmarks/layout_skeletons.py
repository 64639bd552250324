"""Skeleton compiles per edition: one per section shape and per combination of distinct heads.

The layout compiles a skeleton (the document's head and tail) for each set of CSS-relevant
heads readers' copies bring; before section kinds became files it compiled one per set of
kinds (up to 2^kinds). This prints, for the sample edition (8 kinds) and random selections,
how many skeletons each scheme needs and how long the layout and the variants take.
Run: `python benchmarks/layout_skeletons.py [--variants 2000]`.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from pipeline.content.edition import load_edition
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.templates import TemplateSet

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Print skeleton counts and timings for random variants of the sample edition."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    edition = load_edition(ROOT / "editions" / "2026-12-07.yaml", templates=ROOT / "templates")
    started = time.perf_counter()
    layout = EditionLayout(edition, TemplateSet(ROOT / "templates"))
    compiled = time.perf_counter() - started
    rng = random.Random(args.seed)
    ids = [s.id for s in edition.sections]
    kind_sets = set()
    started = time.perf_counter()
    for _ in range(args.variants):
        chosen = tuple(rng.sample(ids, rng.randint(1, min(9, len(ids)))))
        kind_sets.add(frozenset(edition.section(s).kind for s in chosen))
        layout.variant(chosen)
    spliced = time.perf_counter() - started
    kinds = len({s.kind for s in edition.sections})
    print(f"{len(edition.sections)} sections of {kinds} kinds; layout compiled in {compiled:.2f} s")
    print(f"{args.variants} random variants in {spliced:.2f} s: {layout.skeletons_compiled} skeleton compiles"
          f" (per set of kinds it would be {len(kind_sets)}, at most {2 ** kinds - 1})")


if __name__ == "__main__":
    main()
