"""Look at it: every shipped template set, for three readers, in headless Chromium at phone and desktop widths.

Each page is checked as a person would: nothing wider than the screen, alt text on every image,
links told apart from text (underlined, or at least 3:1 contrast with the text around them),
and the why line in the font its template's `.why` rule asks for (not the serif `mj-all`
inlined over it). Light and dark colour schemes both. Screenshots go to artifacts/screenshots/
(CI keeps them). The reference MJML (npm) and mjml-python compile the same document to pages
whose pixels differ by at most PIXEL_THRESHOLD.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest

from pipeline.audience.profile import Profile
from pipeline.content.edition import load_edition
from pipeline.content.selection import select_sections
from pipeline.rendering.event_times import event_times
from pipeline.rendering.identity import SenderIdentity
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.merge import MergeTemplate, html_value
from pipeline.rendering.message import merge_values, personalise
from pipeline.rendering.templates import TemplateSet
from tests.browser import browser_page
from tests.conftest import EDITION, ROOT, TEMPLATES
from tests.tools import mjml_binary

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
THEMES = {"default": TEMPLATES, "briefing": TEMPLATES / "themes" / "briefing",
          "magazine": TEMPLATES / "themes" / "magazine"}
WIDTHS = (375, 800)
# Share of pixels (any channel off by more than 24 of 255) allowed to differ between the npm
# reference and mjml-python: 0.01%, a few glyphs' anti-aliasing. Measured: 0 for every shipped
# set at both widths; one 375 px line of text moved 40 px sideways already differs by 0.034%.
PIXEL_THRESHOLD = 0.0001
IDENTITY = SenderIdentity(newsletter_name="The Weekly Brief", organization="Brief Media Ltd",
                          postal_address="1 Quay Street, Leeds LS1 4AB, United Kingdom")
READERS = (
    Profile(1, "ann@example.com", public_id="a" * 32, first_name="Ann", timezone="America/New_York",
            interests={"security": 1.0, "ai": 0.6}),
    Profile(2, "bartholomew.featherstonehaugh@subdomain.example.co.uk", public_id="b" * 32,
            first_name="Bartholomew-Maximilian", last_name="Featherstonehaugh", timezone="Australia/Sydney",
            interests={"hiring": 1.0, "climate": 0.4}, needs={"hiring": dt.date(2027, 1, 15)}),
    Profile(3, "zoe@example.de", public_id="c" * 32, first_name="", interests={"design": 1.0, "data": 0.8}),
)
TODAY = dt.date(2026, 12, 1)


def _values(layout: EditionLayout, profile: Profile, section_ids: tuple[str, ...]) -> dict[str, str]:
    selection = select_sections(layout.edition, profile, today=TODAY)
    values = merge_values(profile, selection, unsubscribe_url="https://brief.example.com/u/t",
                          preferences_url="https://brief.example.com/p/t",
                          web_version_url="https://brief.example.com/web/t", edition=layout.edition)
    # Reasons and times for sections outside the reader's selection (the reference pages show every section).
    values.update({f"why:{sid}": "you follow this topic" for sid in section_ids if f"why:{sid}" not in values})
    values.update(event_times(layout.edition, section_ids, profile.timezone))
    return values


def _reference_html(layout: EditionLayout, profile: Profile, tmp_path: Path) -> tuple[str, str]:
    """(npm reference, mjml-python) HTML of the whole edition, merged with one reader's values."""
    ids = tuple(s.id for s in layout.edition.sections)
    source = tmp_path / "edition.mjml"
    source.write_text(layout.mjml_document(ids))
    compiled = subprocess.run([mjml_binary(), str(source), "-s", "--config.validationLevel=strict"],
                              capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    values = _values(layout, profile, ids)
    escaped = {k: html_value(v) for k, v in values.items()}
    return (MergeTemplate.parse(compiled.stdout).merge(escaped),
            MergeTemplate.parse(layout.compile_document(ids)).merge(escaped))


@pytest.fixture(scope="module", params=sorted(THEMES))
def theme(request) -> tuple[str, EditionLayout]:
    """Each shipped template set, compiled for the sample edition."""
    return request.param, EditionLayout(load_edition(EDITION), TemplateSet(THEMES[request.param]), identity=IDENTITY)


def _pages(name: str, layout: EditionLayout, tmp_path: Path) -> dict[str, Path]:
    """Three readers' messages and the reference page of the whole edition, as files."""
    pages = {}
    for profile in READERS:
        selection = select_sections(layout.edition, profile, today=TODAY)
        message = personalise(layout.variant(selection.section_ids),
                              _values(layout, profile, selection.section_ids), "subject")
        pages[f"reader-{profile.reader_id}"] = message.html
    pages["reference-npm"], pages["reference-python"] = _reference_html(layout, READERS[0], tmp_path)
    files = {}
    for label, html in pages.items():
        files[label] = tmp_path / f"{name}-{label}.html"
        files[label].write_text(html, encoding="utf-8")
    return files


def _family(value: str) -> list[str]:
    return [part.strip().strip("'\"").lower() for part in value.split(",")]


def test_every_page_passes_what_a_person_checks(theme, tmp_path):
    """At 375 and 800 px, light and dark: no overflow, alt on every image, links look like links, the why line's font."""
    name, layout = theme
    failures = []
    with browser_page(tmp_path / "profile") as page:
        for label, file in _pages(name, layout, tmp_path).items():
            for width in WIDTHS:
                for scheme in ("light", "dark"):
                    page.open(file.as_uri(), width=width, dark=scheme == "dark")
                    found = page.checks()
                    page.screenshot(SCREENSHOTS / name / f"{label}-{width}-{scheme}.png")
                    where = f"{name}/{label} at {width}px {scheme}"
                    # A phone widens its layout viewport (innerWidth) to wide content: compare with the screen.
                    if found["scrollWidth"] > min(width, found["innerWidth"]):
                        failures.append(f"{where}: {found['scrollWidth']}px wide in a {width}px screen")
                    if found["images"] == 0 or found["imagesWithoutAlt"]:
                        failures.append(f"{where}: images without alt text {found['imagesWithoutAlt']}")
                    if found["plainLinks"]:
                        failures.append(f"{where}: links that look like text {found['plainLinks']}")
                    if not found["whyRule"] or found["whyLines"] == 0 or any(
                            _family(f) != _family(found["whyRule"]) for f in found["whyFonts"]):
                        failures.append(f"{where}: why line in {found['whyFonts']}, its rule says {found['whyRule']}")
                    if found["dark"] != (scheme == "dark"):
                        failures.append(f"{where}: colour scheme not emulated")
    assert not failures, "\n".join(failures)


def test_reference_mjml_and_mjml_python_draw_the_same_pixels(theme, tmp_path):
    """The npm reference and mjml-python compile every shipped template set to pages that look the same."""
    name, layout = theme
    reference, ours = _reference_html(layout, READERS[1], tmp_path)
    files = [tmp_path / "npm.html", tmp_path / "python.html"]
    for file, html in zip(files, (reference, ours)):
        file.write_text(html, encoding="utf-8")
    shares = {}
    with browser_page(tmp_path / "profile") as page:
        for width in WIDTHS:
            shots = []
            for file in files:
                page.open(file.as_uri(), width=width, dark=False)
                shots.append(page.screenshot(SCREENSHOTS / name / f"compare-{file.stem}-{width}.png"))
            shares[width] = page.pixel_difference(*shots)["share"]
    print(f"{name}: share of pixels differing, npm mjml vs mjml-python: "
          + ", ".join(f"{w}px {s:.4%}" for w, s in shares.items()))
    assert all(share <= PIXEL_THRESHOLD for share in shares.values()), shares


def test_the_checks_catch_what_a_person_would_see(tmp_path):
    """A wide table, an image without alt, a plain-looking link, a serif why line and a changed page each fail their check."""
    page_html = """<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"><style>.why div { font-family: Helvetica, Arial, sans-serif; }</style>
    </head><body style="color:#1f2933"><table style="width:900px"><tr><td>wide</td></tr></table>
    <img src="x.png" width="10" height="10"><p>Text and <a href="https://x.example" style="color:#1f2933;text-decoration:none">a link</a></p>
    <div class="why"><div style="font-family:Georgia, serif">Why you see this</div></div></body></html>"""
    file, moved = tmp_path / "bad.html", tmp_path / "moved.html"
    file.write_text(page_html)
    moved.write_text(page_html.replace("<p>Text", "<p style='margin-left:40px'>Text"))
    with browser_page(tmp_path / "profile") as page:
        shots = []
        for document in (file, moved):
            page.open(document.as_uri(), width=375, dark=False)
            shots.append(page.screenshot(tmp_path / f"{document.stem}.png"))
        page.open(file.as_uri(), width=375, dark=True)
        found = page.checks()
        assert page.pixel_difference(*shots)["share"] > PIXEL_THRESHOLD
    assert found["scrollWidth"] > 375
    assert len(found["imagesWithoutAlt"]) == 1
    assert found["plainLinks"] == ["a link"]
    assert _family(found["whyFonts"][0]) != _family(found["whyRule"])
    assert found["dark"] is True


def test_readers_see_event_times_in_their_zone(theme):
    """The event section shows each reader's own time with the zone abbreviation, in whatever theme."""
    _, layout = theme
    ann = READERS[0]
    ids = ("hiring-clinic",)
    values = _values(layout, ann, ids)
    html = personalise(layout.variant(ids), values, "s").html
    assert "Thu 10 Dec 2026, 13:00\u00a0EST" in html
    assert re.search(r"<html lang=\"en\"", html)
