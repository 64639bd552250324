"""The shipped templates: valid for the reference MJML, compiled by mjml-python, drawn by Chromium."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from pipeline.content.edition import load_edition
from pipeline.content.kinds import load_section_kinds
from pipeline.errors import TemplateError
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.templates import TemplateSet
from pipeline.content.ask import with_default_ask
from tests.conftest import EDITION, TEMPLATES
from tests.tools import chromium_dom, chromium_screenshot, mjml_binary, png_is_blank


@pytest.fixture(scope="module")
def layout():
    """The sample edition, with the ask READERFIRST_ASK=auto adds, compiled against the shipped templates."""
    return EditionLayout(with_default_ask(load_edition(EDITION)), TemplateSet(TEMPLATES))


def test_every_partial_passes_reference_mjml_strict_validation(layout, tmp_path):
    """The full document, with every section kind, passes `mjml --validate strict` (the npm reference)."""
    kinds = {s.kind for s in layout.edition.sections}
    assert kinds == set(load_section_kinds(TEMPLATES).names)  # the sample uses every shipped kind
    source = tmp_path / "edition.mjml"
    source.write_text(layout.mjml_document([s.id for s in layout.edition.sections]))
    result = subprocess.run([mjml_binary(), str(source), "--config.validationLevel=strict", "-s"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "<!doctype html>" in result.stdout.lower()


def test_reference_mjml_rejects_a_broken_partial(tmp_path):
    """The strict check can fail: an illegal attribute in a partial is reported by the reference MJML."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    partial = folder / "sections" / "links.mjml.j2"
    partial.write_text(partial.read_text().replace('font-size="19px"', 'font-sise="19px"', 1))
    source = tmp_path / "edition.mjml"
    source.write_text(EditionLayout.mjml_source(load_edition(EDITION), TemplateSet(folder)))
    result = subprocess.run([mjml_binary(), str(source), "--config.validationLevel=strict", "-s"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "font-sise" in (result.stderr + result.stdout)


def test_unclosed_column_names_template_and_line(tmp_path):
    """A partial with a missing </mj-column> (which mjml-python would compile) is refused at the column's line."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    partial = folder / "sections" / "event.mjml.j2"
    partial.write_text(partial.read_text().replace("</mj-column>\n</mj-section>", "</mj-section>"))
    with pytest.raises(TemplateError) as caught:
        EditionLayout(load_edition(EDITION), TemplateSet(folder))
    assert f"{partial}:6: element=mj-column: not closed before </mj-section>" in str(caught.value)


def test_jinja_syntax_error_names_template_and_line(tmp_path):
    """A Jinja syntax error names the template file and its line."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    (folder / "sections" / "article.mjml.j2").write_text("<mj-section>\n<mj-column>\n{% if %}\n</mj-column></mj-section>")
    with pytest.raises(TemplateError, match=r"sections/article\.mjml\.j2:3:"):
        EditionLayout(load_edition(EDITION), TemplateSet(folder))


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.alts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.alts.append(dict(attrs).get("alt", ""))

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.browser
def test_preview_renders_in_chromium(layout, tmp_path):
    """A reader's HTML opens in headless Chromium, shows their sections in order with reasons and alt text."""
    from pipeline.audience.profile import Profile
    from pipeline.content.selection import select_sections
    from pipeline.rendering.message import merge_values, personalise
    import datetime as dt

    profile = Profile(1, "ann@example.com", first_name="Ann <script>alert(1)</script>",
                      interests={"security": 1.0, "ai": 0.6})
    selection = select_sections(layout.edition, profile, today=dt.date(2026, 12, 1))
    message = personalise(layout.variant(selection.section_ids),
                          merge_values(profile, selection, unsubscribe_url="https://example.com/u/t",
                                       preferences_url="https://example.com/p/t"), "subject")
    page = tmp_path / "preview.html"
    page.write_text(message.html)
    dom = chromium_dom(page.as_uri(), tmp_path / "profile")
    seen = _Collect()
    seen.feed(dom)
    text = " ".join(" ".join(seen.text).split())
    titles = [layout.edition.section(sid).title for sid in selection.section_ids]
    positions = [text.find(title) for title in titles]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert "Hi Ann <script>alert(1)</script>," in text  # shown as text, never run as script
    assert "<script>alert" not in dom
    assert text.count("Why you see this:") == len(titles)
    assert all(alt for alt in seen.alts)
    shot = chromium_screenshot(page.as_uri(), tmp_path / "preview.png", tmp_path / "profile2")
    assert not png_is_blank(shot)


# -- themes ---------------------------------------------------------------------------------------

THEMES = ("briefing", "magazine")


@pytest.mark.parametrize("theme", THEMES)
def test_shipped_themes_pass_both_validators(theme, tmp_path):
    """Each shipped theme, with its fallbacks, passes the Python validator and `mjml --validate strict`."""
    templates = TemplateSet(TEMPLATES / "themes" / theme)
    layout = EditionLayout(load_edition(EDITION), templates)  # refuses what the Python validator finds
    assert templates.path_of("theme.mjml.j2") == TEMPLATES / "themes" / theme / "theme.mjml.j2"
    assert templates.path_of("layout.mjml.j2") == TEMPLATES / "layout.mjml.j2"
    source = tmp_path / "edition.mjml"
    source.write_text(layout.mjml_document([s.id for s in layout.edition.sections]))
    result = subprocess.run([mjml_binary(), str(source), "--config.validationLevel=strict", "-s"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_theme_overrides_some_files_and_takes_the_rest_from_the_default_set(tmp_path):
    """A theme with only theme.mjml.j2 renders with its own look, the default partials, and kinds added to the default later."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    theme = folder / "themes" / "plain"
    theme.mkdir()
    (theme / "theme.mjml.j2").write_text((TEMPLATES / "theme.mjml.j2").read_text().replace("#0b1f33", "#123456"))
    templates = TemplateSet(theme)
    assert templates.path_of("sections/article.mjml.j2") == folder / "sections" / "article.mjml.j2"
    assert not templates.has_kind("digest")
    # A kind is a file pair (partial and schema): added to the default set, every theme has it.
    (folder / "sections" / "digest.mjml.j2").write_text((folder / "sections" / "links.mjml.j2").read_text())
    (folder / "sections" / "digest.yaml").write_text((folder / "sections" / "links.yaml").read_text())
    assert templates.has_kind("digest")
    assert "digest" in load_section_kinds(theme).names
    html = EditionLayout(load_edition(EDITION), templates).compile_document(["editors-note"])
    assert "background:#123456" in html and "What changed in this newsletter" in html


def test_an_error_in_a_fallback_partial_names_the_file_it_came_from(tmp_path):
    """A broken default partial used by a theme is reported at the default file, not at a path inside the theme."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    partial = folder / "sections" / "links.mjml.j2"
    partial.write_text(partial.read_text().replace('font-size="19px"', 'font-sise="19px"', 1))
    with pytest.raises(TemplateError) as caught:
        EditionLayout(load_edition(EDITION), TemplateSet(folder / "themes" / "magazine"))
    assert f"{partial}:3: " in str(caught.value)


def test_a_theme_overriding_a_partial_keeps_the_default_schema_or_its_own(tmp_path):
    """A theme's own section partial uses the default set's schema, unless the theme carries one beside it."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    theme = folder / "themes" / "briefing"
    assert not (theme / "sections" / "article.yaml").exists()
    kinds = load_section_kinds(theme)
    assert kinds["article"].schema_path == folder / "sections" / "article.yaml"
    assert set(load_section_kinds(folder).names) == set(kinds.names)
    (theme / "sections" / "article.yaml").write_text((folder / "sections" / "article.yaml").read_text()
                                                      + "  kicker: {type: text, max_chars: 20}\n")
    assert "kicker" in [f.name for f in load_section_kinds(theme)["article"].fields]
    assert "kicker" not in [f.name for f in load_section_kinds(folder)["article"].fields]
