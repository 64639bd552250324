"""Edition layout: spliced variants equal a direct compile, links are tagged, sizes bounded, errors located."""

from __future__ import annotations

import dataclasses
import itertools
import random
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.content.ask import ask_topics, with_default_ask
from pipeline.content.edition import load_edition
from pipeline.content.kinds import load_section_kinds
from pipeline.errors import RenderError, TemplateError
from pipeline.rendering.layout import GMAIL_CLIP_BYTES, EditionLayout, section_marker
from pipeline.rendering.links import read_tag
from pipeline.rendering.merge import MAX_FIELD_CHARS, TAG_PATTERN, html_value, merge_tag
from pipeline.rendering.templates import TemplateSet

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
KINDS = load_section_kinds(TEMPLATES).names


@pytest.fixture(scope="module")
def edition():
    """The sample edition with the default ask, so every kind is spliced (loaded once; it is immutable)."""
    return with_default_ask(load_edition(Path(__file__).resolve().parent.parent / "editions" / "2026-12-07.yaml"))


@pytest.fixture(scope="module")
def layout(edition):
    """The sample edition compiled against the shipped templates."""
    return EditionLayout(edition, TemplateSet(TEMPLATES))


def spliced_html(layout: EditionLayout, ids) -> str:
    """The variant's HTML rebuilt from its parts: literals at even indexes, tag names re-wrapped at odd ones."""
    parts = layout.variant(tuple(ids)).html.parts
    return "".join(part if index % 2 == 0 else f"%%rf:{part}%%" for index, part in enumerate(parts))


class _Hrefs(HTMLParser):
    """Collects every href attribute (entities decoded) of an HTML text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.hrefs.extend(value for name, value in attrs if name == "href" and value is not None)


def hrefs(html: str) -> list[str]:
    """Every href in `html`."""
    parser = _Hrefs()
    parser.feed(html)
    parser.close()
    return parser.hrefs


def selections(edition, count: int = 400, seed: int = 1207) -> list[list[str]]:
    """One section of each kind for every non-empty set of kinds, then `count` random subsets in random order."""
    by_kind = {kind: [s.id for s in edition.sections if s.kind == kind] for kind in KINDS}
    rng = random.Random(seed)
    chosen = []
    for size in range(1, len(KINDS) + 1):
        for kinds in itertools.combinations(KINDS, size):
            ids = [rng.choice(by_kind[kind]) for kind in kinds]
            rng.shuffle(ids)
            chosen.append(ids)
    all_ids = [s.id for s in edition.sections]
    for _ in range(count):
        chosen.append(rng.sample(all_ids, rng.randint(1, 9)))
    return chosen


# -- THE splicing test ---------------------------------------------------------------------------

def test_spliced_variants_equal_a_direct_compile(edition, layout):
    """For hundreds of random section choices and orders, the spliced HTML is byte-identical to compiling it."""
    chosen = selections(edition)
    kind_sets = {frozenset(edition.section(s).kind for s in ids) for ids in chosen}
    assert len(kind_sets) == 2 ** len(KINDS) - 1  # every combination of kinds was exercised
    assert {len(ids) for ids in chosen} == set(range(1, 10))
    for ids in chosen:
        assert spliced_html(layout, ids) == layout.compile_document(ids), ids


def test_variant_tags_are_the_readers_fields_and_one_reason_per_section(edition, layout):
    """A variant's merge tags are the greeting, one reason per section in order, and the footer fields."""
    ids = ("ai-links", "heat-pumps-offices", "hiring-clinic")
    variant = layout.variant(ids)
    assert variant.section_ids == ids
    assert [t for t in variant.html.tags if t.startswith("why:")] == [f"why:{s}" for s in ids]
    assert set(variant.html.tags) == {"first_name", "email", "preferences_url", "unsubscribe_url",
                                      "web_version_url", "when:hiring-clinic", *(f"why:{s}" for s in ids)}
    assert [t for t in variant.text.tags if t.startswith("why:")] == [f"why:{s}" for s in ids]


def test_text_part_has_each_title_in_order(edition, layout):
    """For random selections, the text part carries each chosen section's title, in the chosen order."""
    for ids in selections(edition, count=150, seed=99):
        text = "".join(part for part in layout.variant(tuple(ids)).text.parts[0::2])
        positions = [text.find(edition.section(s).title.upper()) for s in ids]
        assert -1 not in positions, ids
        assert positions == sorted(positions), ids
        for other in set(s.id for s in edition.sections) - set(ids):
            assert edition.section(other).title.upper() not in text


def test_every_web_link_carries_edition_and_section(edition, layout):
    """Every http(s) href in a compiled document is tagged with the edition and the section it sits in.

    The ask's links are the reader's signed answer links (merge tags), one per offered topic and one
    for the free-text answer.
    """
    for ids in selections(edition, count=60, seed=5):
        html = layout.compile_document(ids)
        assert html.count("<!-- rf:section:") == len(ids) + 1  # each section plus the end marker
        starts = [html.index(section_marker(s)) for s in ids] + [html.index(section_marker("end"))]
        for section_id, start, end in zip(ids, starts, starts[1:]):
            links = [h for h in hrefs(html[start:end]) if h.startswith(("http://", "https://"))]
            if edition.section(section_id).kind == "ask":
                assert not links
                assert hrefs(html[start:end]) == [merge_tag(f"ask:{t}") for t in ask_topics(edition)] + [
                    merge_tag("ask_words")]
                continue
            assert links, section_id
            for href in links:
                assert read_tag(href) == (edition.id, section_id), href
        outside = hrefs(html[:starts[0]] + html[starts[-1]:])
        # Outside the sections only the intro's, the masthead's and the footer's merge-tag links,
        # which the reader's values fill in.
        assert sorted(outside) == sorted([merge_tag("preferences_url"), merge_tag("preferences_url"),
                                          merge_tag("unsubscribe_url"), merge_tag("web_version_url"),
                                          merge_tag("web_version_url")])


def test_links_section_tags_each_of_its_links(edition, layout):
    """Each entry of a links section is tagged with that section's id."""
    html = layout.compile_document(["data-reading-list"])
    tagged = [read_tag(h) for h in hrefs(html) if h.startswith("https://brief.example.com/data/")]
    assert tagged == [(edition.id, "data-reading-list")] * 3


def test_text_part_links_are_tagged(edition, layout):
    """The URLs written out in the text part are tagged too."""
    text = "".join(layout.variant(("editors-note", "climate-links")).text.parts[0::2])
    urls = [word.strip("<>") for word in text.split() if "://" in word]
    assert urls
    for url in urls:
        assert read_tag(url)[0] == edition.id
    assert {read_tag(u)[1] for u in urls} == {"editors-note", "climate-links"}


def test_section_content_is_escaped_in_html(tmp_path, edition):
    """Titles, alt text and link titles with markup characters are escaped, never markup."""
    sections = tuple(dataclasses.replace(s, title="Tips & <tricks>", fields={**s.fields, "body": "x < y & z"}) if s.id == "ai-evals" else s
                     for s in edition.sections)
    html = EditionLayout(dataclasses.replace(edition, sections=sections), TemplateSet(TEMPLATES)) \
        .compile_document(["ai-evals"])
    assert "Tips &amp; &lt;tricks&gt;" in html and "<tricks>" not in html
    assert "x &lt; y &amp; z" in html


# -- sizes -----------------------------------------------------------------------------------------

def test_worst_case_size_bounds_a_large_variant_with_the_longest_values(edition, layout):
    """The worst-case size is at least the real size of the largest variant merged with the longest values."""
    chunk_size = {s.id: len(layout.compile_document([s.id]).encode()) for s in edition.sections}
    largest = sorted(chunk_size, key=chunk_size.get, reverse=True)[:edition.sections_per_reader]
    variant = layout.variant(tuple(largest))
    # `'` escapes to 6 bytes (&#x27;), the most any character can take.
    longest = "'" * (MAX_FIELD_CHARS + 50)
    values = {tag: html_value(longest) for tag in variant.html.tags}
    actual = len(variant.html.merge(values).encode())
    assert actual > 20_000
    assert layout.worst_case_html_bytes >= actual


def test_sample_edition_fits_gmail(layout):
    """The sample edition's largest message is below Gmail's clipping threshold."""
    assert layout.worst_case_html_bytes < GMAIL_CLIP_BYTES
    layout.check_size()


def test_edition_with_huge_sections_is_refused(edition):
    """An edition whose largest message could pass Gmail's clipping size fails check_size, naming Gmail."""
    body = ("A long paragraph about heat pumps. " * 3500)[:120_000]
    sections = tuple(dataclasses.replace(s, fields={**s.fields, "body": body}) if s.id == "heat-pumps-offices" else s
                     for s in edition.sections)
    layout = EditionLayout(dataclasses.replace(edition, sections=sections), TemplateSet(TEMPLATES))
    assert layout.worst_case_html_bytes > GMAIL_CLIP_BYTES
    with pytest.raises(RenderError) as caught:
        layout.check_size()
    message = str(caught.value)
    assert "Gmail" in message and "102 KB" in message
    assert str(edition.path) in message


def test_many_medium_sections_are_refused_together(edition):
    """Sections each small enough alone are refused when sections_per_reader of them together are too big."""
    body = "Twenty-four kilobytes of careful prose. " * 600
    sections = tuple(dataclasses.replace(s, fields={**s.fields, "body": body}) if s.kind == "article" else s for s in edition.sections)
    big = dataclasses.replace(edition, sections=sections)
    layout = EditionLayout(big, TemplateSet(TEMPLATES))
    assert len(layout.compile_document(["ai-evals"]).encode()) < GMAIL_CLIP_BYTES
    with pytest.raises(RenderError, match="Gmail"):
        layout.check_size()
    EditionLayout(dataclasses.replace(big, sections_per_reader=1), TemplateSet(TEMPLATES)).check_size()


# -- template errors -------------------------------------------------------------------------------

@pytest.fixture
def templates_copy(tmp_path) -> Path:
    """A writable copy of the shipped templates folder."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in the file at `path` by `new`."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("old, new", [
    ('    <mj-image src="{{ section.image.src }}" alt="{{ section.image.alt }}" href="{{ section.url }}" '
     'padding="8px 12px" />\n  </mj-column>\n',
     '    <mj-image src="{{ section.image.src }}" alt="{{ section.image.alt }}" href="{{ section.url }}" '
     'padding="8px 12px" />\n'),  # an unclosed <mj-column>
    ('Why you see this: {{ reason }}</mj-text>', 'Why you see this: {{ reason }}'),  # an unclosed <mj-text>
])
def test_broken_mjml_names_the_template_file(edition, templates_copy, old, new):
    """An unclosed MJML tag raises TemplateError naming the partial it came from, the line and what is unclosed."""
    partial = templates_copy / "sections" / "article.mjml.j2"
    edit(partial, old, new)
    with pytest.raises(TemplateError) as caught:
        EditionLayout(edition, TemplateSet(templates_copy))
    message = str(caught.value)
    assert f"{partial}:" in message and "not closed before" in message


def test_jinja_syntax_error_in_a_partial_names_template_and_line(edition, templates_copy):
    """A Jinja syntax error in a partial raises TemplateError with the template path and its line."""
    partial = templates_copy / "sections" / "links.mjml.j2"
    edit(partial, "{% endfor %}", "{% endfro %}")
    line = next(n for n, text in enumerate(partial.read_text().splitlines(), start=1) if "endfro" in text)
    with pytest.raises(TemplateError) as caught:
        EditionLayout(edition, TemplateSet(templates_copy))
    assert str(caught.value).startswith(f"{partial}:{line}: ")


def test_jinja_syntax_error_in_the_text_layout_names_it(edition, templates_copy):
    """A Jinja syntax error in the text layout names that template and line."""
    layout_txt = templates_copy / "text" / "layout.txt.j2"
    edit(layout_txt, "{{ links.unsubscribe }}", "{{ links.unsubscribe }")
    line = next(n for n, text in enumerate(layout_txt.read_text().splitlines(), start=1) if "links.unsubscribe" in text)
    with pytest.raises(TemplateError) as caught:
        EditionLayout(edition, TemplateSet(templates_copy))
    assert str(caught.value).startswith(f"{layout_txt}:{line}: ")


def test_undefined_variable_in_a_partial_names_the_template(edition, templates_copy):
    """A partial using a variable that does not exist names the template and the variable."""
    partial = templates_copy / "sections" / "event.mjml.j2"
    edit(partial, "{{ section.event.location }}", "{{ section.event.venue }}")
    with pytest.raises(TemplateError) as caught:
        EditionLayout(edition, TemplateSet(templates_copy))
    assert str(partial) in str(caught.value) and "venue" in str(caught.value)


def test_missing_partial_for_a_kind_is_reported(edition, templates_copy):
    """A template folder without a partial for a kind the edition uses is refused, naming the expected file."""
    (templates_copy / "sections" / "event.mjml.j2").unlink()
    with pytest.raises(TemplateError, match=r"no partial for section kind\(s\) event \(expected sections/event"):
        EditionLayout(edition, TemplateSet(templates_copy))


def test_layout_without_sections_placeholder_is_refused(edition, templates_copy):
    """A layout that does not place {{ sections }} exactly once is refused, naming layout.mjml.j2."""
    edit(templates_copy / "layout.mjml.j2", "{{ sections }}\n", "")
    with pytest.raises(TemplateError, match="layout.mjml.j2: must place"):
        EditionLayout(edition, TemplateSet(templates_copy))


def test_folder_without_layout_is_refused(tmp_path):
    """A folder that is not a templates folder is refused, pointing at READERFIRST_TEMPLATES."""
    with pytest.raises(TemplateError, match="READERFIRST_TEMPLATES"):
        TemplateSet(tmp_path)


def test_compiled_html_has_no_stray_merge_tags(edition, layout):
    """The only merge tags in compiled HTML are reader fields, reasons for the sections present and the ask's links."""
    ids = [s.id for s in edition.sections]
    names = set(TAG_PATTERN.findall(layout.compile_document(ids)))
    events = {f"when:{s.id}" for s in edition.sections if s.event}
    assert names == {"first_name", "email", "preferences_url", "unsubscribe_url", "web_version_url", *events,
                     *(f"why:{s}" for s in ids), *(f"ask:{t}" for t in ask_topics(edition)), "ask_words"}


# -- what every message carries: language, colour scheme, preheader, identity, whole pixels ------------

def test_document_head_carries_language_colour_scheme_and_preheader_padding(edition):
    """`<html lang>` is the edition's language; the colour-scheme metas are there; the preheader is followed by its spacer."""
    from pipeline.rendering.identity import SenderIdentity
    from pipeline.rendering.layout import PREHEADER_SPACER

    german = dataclasses.replace(edition, language="de")
    layout = EditionLayout(german, TemplateSet(TEMPLATES),
                           identity=SenderIdentity("The Weekly Brief", "Brief Media Ltd", "1 Quay St, Leeds"))
    html = layout.compile_document([s.id for s in edition.sections])
    assert html.startswith('<!doctype html><html lang="de"')
    assert '<meta name="color-scheme" content="light dark"' in html
    assert '<meta name="supported-color-schemes" content="light dark"' in html
    assert f"{edition.preheader}{PREHEADER_SPACER}</div>" in html
    masthead = html[html.index("<body"):]
    assert "The Weekly Brief" in masthead and "readerfirst" not in masthead.split("%%")[0]
    assert "Brief Media Ltd, 1 Quay St, Leeds" in html
    assert html.count(merge_tag("web_version_url")) == 2  # above the masthead and in the footer


def test_widths_are_whole_pixels_as_the_reference_writes_them(layout, edition):
    """No fractional width survives: columns' Outlook cells round (201.6 -> 202), images truncate (177.6 -> 177)."""
    import re

    html = layout.compile_document([s.id for s in edition.sections])
    assert not re.findall(r'width[=:]"?\d+\.\d+', html)
    assert "vertical-align:top;width:202px" in html and 'width="177"' in html


def test_whole_pixel_rounding_leaves_text_alone():
    """Only td and img tags change: a section whose text talks about widths keeps its words."""
    from pipeline.rendering.templates import whole_pixel_widths

    html = ('<td style="vertical-align:top;width:374.5px;"><img width="177.6" style="width:100%">'
            "<div>set width:177.6px or width=\"1.5\"</div>")
    assert whole_pixel_widths(html) == ('<td style="vertical-align:top;width:375px;"><img width="177" style="width:100%">'
                                        "<div>set width:177.6px or width=\"1.5\"</div>")


def test_images_fill_the_width_on_phones_and_why_lines_use_their_font(layout, edition):
    """Every image is fluid under 480 px, and each why line's font is set on the element, over the serif mj-all."""
    html = layout.compile_document([s.id for s in edition.sections])
    images = html.count("<img ")
    assert images > 0 and html.count('class="mj-full-width-mobile"') == 2 * images
    why_lines = html.split('class="why"')[1:]
    assert why_lines and all(part.split(">", 2)[1].startswith('<div style="font-family:Helvetica, Arial, sans-serif;')
                             for part in why_lines)
