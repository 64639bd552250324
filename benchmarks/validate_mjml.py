"""MJML validation benchmark: our Python validator against mjml-python's compile of the same document.

The validator (`pipeline.rendering.mjml_rules.mjml_problems`) runs once per edition, on the
document with every section, before mjml-python compiles it (also once per edition, plus once
per set of section kinds for the skeletons). This prints, for the sample edition's document
and for a document with its sections repeated, the best time of each over many runs and the
ratio validator / compile. Run: `python benchmarks/validate_mjml.py [--repeats N] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import mjml

from pipeline.content.edition import load_edition
from pipeline.rendering.layout import EditionLayout, section_marker
from pipeline.rendering.mjml_rules import mjml_problems
from pipeline.rendering.templates import TemplateSet

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
TEMPLATES = ROOT / "templates"


def documents(copies: int) -> dict[str, str]:
    """The sample edition's MJML with every section, and the same with its sections `copies` times over."""
    edition = load_edition(EDITION)
    source = EditionLayout.mjml_source(edition, TemplateSet(TEMPLATES))
    first = source.index(f"<mj-raw>{section_marker(edition.sections[0].id)}")
    end = source.index(f"<mj-raw>{section_marker('end')}")
    large = source[:first] + source[first:end] * copies + source[end:]
    return {f"sample edition ({len(edition.sections)} sections)": source,
            f"{len(edition.sections) * copies} sections": large}


def best_ms(work: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` runs of `work`, in milliseconds (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    """Print validator and compile times and their ratio for each document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for name, document in documents(args.copies).items():
        assert mjml_problems(document) == [], name
        validate = best_ms(lambda: mjml_problems(document), args.repeats)
        compile_ = best_ms(lambda: mjml.mjml2html(document), args.repeats)
        results.append({"document": name, "kb": round(len(document.encode()) / 1024, 1),
                        "validate_ms": round(validate, 2), "compile_ms": round(compile_, 2),
                        "ratio": round(validate / compile_, 2)})
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'document':<32} {'KB':>6} {'validate ms':>12} {'compile ms':>11} {'validate/compile':>17}")
    for row in results:
        print(f"{row['document']:<32} {row['kb']:>6} {row['validate_ms']:>12.2f} {row['compile_ms']:>11.2f}"
              f" {row['ratio']:>16.2f}x")
    print("(best of", args.repeats, "runs each; the validator runs once per edition, never per reader)")


if __name__ == "__main__":
    main()
