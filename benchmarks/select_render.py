"""Select+render benchmark: personalised readerfirst against a plain Jinja mail merge.

For each audience size, fresh child processes render every generated reader two ways and
consume each message (its size is added to a counter, then it is dropped):

* baseline: ONE Jinja template (autoescape on) made from the edition's compiled layout with
  its first `sections_per_reader` sections, merged with each reader's fields;
* personalised: select_sections -> layout.variant (cached per variant id, as a sender does)
  -> reader_links -> merge_values -> subject -> personalise.

Readers are generated in chunks outside the timed region, so neither side pays for the
generator and memory stays bounded. Goal: personalised cost per reader <= 2x the baseline's,
with peak RSS flat as the audience grows. Run: `python benchmarks/select_render.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from pipeline.audience.profile import Profile
from pipeline.audience.sample import generate_profiles
from pipeline.audience.tokens import reader_links
from pipeline.content.selection import REASON_FILL, select_sections, variant_id_of
from pipeline.delivery.preparation import PreparedEdition, prepare_edition
from pipeline.rendering.layout import VariantBody
from pipeline.rendering.merge import MergeTemplate
from pipeline.rendering.message import merge_values, personalise

ROOT = Path(__file__).resolve().parent.parent
EDITION = ROOT / "editions" / "2026-12-07.yaml"
TEMPLATES = ROOT / "templates"
TODAY = dt.date(2026, 12, 7)  # the sample edition's date, so generated needs are current
SECRET = b"benchmark-secret"
PUBLIC_URL = "https://brief.example.com"
CHUNK = 1_000  # readers generated (untimed) per timed batch
GOAL = 2.0
SIZES = (25_000, 50_000, 100_000)
QUICK_SIZES = (5_000, 10_000)
PATHS = ("baseline", "personalised")

Render = Callable[[Profile], int]


def jinja_source(template: MergeTemplate) -> str:
    """Jinja source equal to `template`, each `%%rf:NAME%%` becoming `{{ NAME }}` (`why[...]` for reasons)."""
    out = []
    for index, part in enumerate(template.parts):
        if index % 2 == 0:
            out.append("{% raw %}" + part + "{% endraw %}" if part else "")  # CSS braces stay literal
        elif part.startswith("why:"):
            out.append("{{ why[%r] }}" % part[4:])
        else:
            out.append("{{ %s }}" % part)
    return "".join(out)


def baseline_renderer(prepared: PreparedEdition) -> tuple[Render, dict[str, VariantBody]]:
    """A plain, non-personalised mail merge of the first k sections, one template for every reader."""
    layout, edition = prepared.layout, prepared.edition
    first_k = tuple(s.id for s in edition.sections[:edition.sections_per_reader])
    html_tags = MergeTemplate.parse(layout.compile_document(first_k))
    body = layout.variant(first_k)  # the text part has no separate compile step
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    text_env = Environment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
    html, text = env.from_string(jinja_source(html_tags)), text_env.from_string(jinja_source(body.text))
    why = {sid: REASON_FILL for sid in first_k}

    def render(profile: Profile) -> int:
        unsubscribe_url, preferences_url = reader_links(SECRET, PUBLIC_URL, profile.public_id)
        fields = {"first_name": profile.first_name, "last_name": profile.last_name, "email": profile.email}
        subject = prepared.subject.render(fields)
        values = dict(fields, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url, why=why)
        return len(subject) + len(html.render(values)) + len(text.render(values))

    return render, {variant_id_of(first_k): body}


def personalised_renderer(prepared: PreparedEdition) -> tuple[Render, dict[str, VariantBody]]:
    """readerfirst's per-reader path; the returned dict is its variant cache."""
    variants: dict[str, VariantBody] = {}

    def render(profile: Profile) -> int:
        selection = select_sections(prepared.edition, profile, today=TODAY)
        variant = variants.get(selection.variant_id)
        if variant is None:
            variant = variants[selection.variant_id] = prepared.layout.variant(selection.section_ids)
        unsubscribe_url, preferences_url = reader_links(SECRET, PUBLIC_URL, profile.public_id)
        values = merge_values(profile, selection, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url,
                              edition=prepared.edition)
        subject = prepared.subject.render({"first_name": profile.first_name, "last_name": profile.last_name,
                                           "email": profile.email})
        message = personalise(variant, values, subject)
        return len(message.subject) + len(message.html) + len(message.text)

    return render, variants


def current_rss_mb() -> float:
    """Resident set size of this process now, from /proc/self/statm."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def chunks(readers: int) -> Iterator[list[Profile]]:
    """The generated audience, CHUNK profiles at a time (the same readers for both paths)."""
    profiles = generate_profiles(readers, seed=7, today=TODAY)
    while chunk := list(itertools.islice(profiles, CHUNK)):
        yield chunk


def measure(path: str, readers: int) -> dict:
    """Render `readers` readers along `path` in this process; timing covers rendering only."""
    prepared = prepare_edition(EDITION, TEMPLATES)
    render, variants = (baseline_renderer if path == "baseline" else personalised_renderer)(prepared)
    rss_start = current_rss_mb()
    seconds, consumed = 0.0, 0
    for chunk in chunks(readers):
        started = time.perf_counter()
        for profile in chunk:
            consumed += render(profile)
        seconds += time.perf_counter() - started
    rss_end = current_rss_mb()
    # ru_maxrss is in KiB on Linux and can lag the live counter by a few pages: keep the larger.
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_end)
    return {"path": path, "readers": readers, "seconds": seconds, "readers_per_s": readers / seconds,
            "avg_chars": consumed / readers, "variants": len(variants),
            "rss_start_mb": rss_start, "rss_end_mb": rss_end, "peak_rss_mb": peak}


def spawn(path: str, readers: int) -> dict:
    """Run `measure` in a fresh interpreter, so its peak RSS belongs to this run alone."""
    done = subprocess.run([sys.executable, __file__, "--child", path, "--readers", str(readers)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def benchmark(readers: int, repeats: int) -> dict:
    """Best-of-`repeats` for both paths at one size, alternating which path goes first."""
    runs: dict[str, list[dict]] = {p: [] for p in PATHS}
    for round_ in range(repeats):
        for path in PATHS if round_ % 2 == 0 else PATHS[::-1]:
            runs[path].append(spawn(path, readers))
    best = {p: max(runs[p], key=lambda r: r["readers_per_s"]) for p in PATHS}
    ratio = best["baseline"]["readers_per_s"] / best["personalised"]["readers_per_s"]
    return {"readers": readers, "ratio": ratio, "pass": ratio <= GOAL,
            "variants_per_1000": 1000 * best["personalised"]["variants"] / readers,
            **{p: dict(best[p], peak_rss_mb=max(r["peak_rss_mb"] for r in runs[p]),
                       all_readers_per_s=[r["readers_per_s"] for r in runs[p]]) for p in PATHS}}


def print_table(results: list[dict], repeats: int) -> None:
    """The human-readable report."""
    print(f"select+render, edition {EDITION.name}, best of {repeats} fresh processes per path"
          f" (Python {sys.version.split()[0]})")
    print(f"{'readers':>8} {'path':<13} {'readers/s':>10} {'us/reader':>10} {'avg chars':>10}"
          f" {'RSS start':>10} {'RSS end':>8} {'peak RSS':>9} {'variants':>9}")
    for result in results:
        for path in PATHS:
            r = result[path]
            print(f"{result['readers']:>8,} {path:<13} {r['readers_per_s']:>10,.0f} {1e6 / r['readers_per_s']:>10.1f}"
                  f" {r['avg_chars']:>10,.0f} {r['rss_start_mb']:>8.1f}MB {r['rss_end_mb']:>6.1f}MB"
                  f" {r['peak_rss_mb']:>7.1f}MB {r['variants']:>9}")
        print(f"{'':>8} personalised/baseline cost per reader = {result['ratio']:.2f}x (goal <= {GOAL:.1f}x):"
              f" {'PASS' if result['pass'] else 'FAIL'}; {result['variants_per_1000']:.1f} distinct variants"
              " per 1,000 readers")
    if len(results) > 1:
        first, last = results[0], results[-1]
        for path in PATHS:
            growth = round(last[path]["peak_rss_mb"] - first[path]["peak_rss_mb"], 1) + 0.0  # no "-0.0"
            print(f"peak RSS {path}: {growth:+.1f} MB from {first['readers']:,} to {last['readers']:,} readers")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; a child measures one path, the parent orchestrates and reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, nargs="+", help=f"audience sizes (default {SIZES})")
    parser.add_argument("--quick", action="store_true", help=f"small run: sizes {QUICK_SIZES}")
    parser.add_argument("--repeats", type=int, help="fresh runs per path and size, best kept (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.readers[0])))
        return
    sizes = args.readers or (QUICK_SIZES if args.quick else SIZES)
    repeats = args.repeats or 3
    results = [benchmark(n, repeats) for n in sizes]
    if args.json:
        print(json.dumps({"edition": EDITION.name, "goal_ratio": GOAL, "repeats": repeats, "results": results},
                         indent=2))
    else:
        print_table(results, repeats)
    sys.exit(0 if all(r["pass"] for r in results) else 1)


if __name__ == "__main__":
    main()
