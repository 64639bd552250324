"""Section kinds as files: a template plus a schema makes a kind, validated with FILE:LINE and did-you-mean."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from pipeline.content.edition import load_edition
from pipeline.content.kinds import load_section_kinds
from pipeline.content.reader_focus import edition_focus
from pipeline.errors import InvalidEdition, InvalidSectionKinds
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.templates import TemplateSet
from tests.conftest import TEMPLATES

HEADER = """\
id: kinds-test
subject: "This week"
sections:
"""

HERO_SCHEMA = """\
description: A full-bleed picture with a headline.
fields:
  url: {type: url, required: true}
  image: {type: image, required: true}
  kicker: {type: text, max_chars: 20}
"""

HERO_TEMPLATE = """\
<mj-section background-color="#ffffff" padding="0">
  <mj-column>
    <mj-image src="{{ section.image.src }}" alt="{{ section.image.alt }}" href="{{ section.url }}" padding="0" />
    <mj-text font-size="12px" padding="8px 24px 0 24px">{{ section.kicker }}</mj-text>
    <mj-text font-size="28px" padding="4px 24px"><a href="{{ section.url }}">{{ section.title }}</a></mj-text>
    <mj-text css-class="why" font-size="12px" padding="0 24px 16px 24px">Why you see this: {{ reason }}</mj-text>
  </mj-column>
</mj-section>
"""

HERO_SECTION = """\
  - id: big-picture
    kind: hero
    title: The big picture
    kicker: This week
    url: https://brief.example.com/big
    image: {src: "https://images.example.com/big.jpg", alt: "A wide view of a solar farm"}
    topics: [climate]
"""


@pytest.fixture
def templates_copy(tmp_path) -> Path:
    """A writable copy of the shipped templates."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    return folder


def write(folder: Path, text: str) -> Path:
    """An edition file beside the sample taxonomy in `folder`."""
    path = folder / "edition.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path, templates: Path = TEMPLATES) -> list[str]:
    """The problem lines load_edition reports for `path` (it must refuse it)."""
    with pytest.raises(InvalidEdition) as caught:
        load_edition(path, templates=templates)
    return [str(p) for p in caught.value.problems]


def test_shipped_kinds_are_the_files_in_templates_sections():
    """The shipped kinds are exactly the template/schema pairs, with lead and sponsor roles declared."""
    kinds = load_section_kinds(TEMPLATES)
    assert kinds.names == ("article", "ask", "event", "lead", "letter", "links", "pair", "quote", "sponsor")
    assert kinds.with_role("lead") == {"lead"} and kinds.with_role("sponsor") == {"sponsor"}
    assert kinds["sponsor"].field("disclosure").required
    assert kinds["pair"].field("stories").min_items == kinds["pair"].field("stories").max_items == 2


def test_adding_a_file_pair_makes_a_new_kind_valid_and_rendered(templates_copy, edition_dir):
    """A `hero` template and schema make `kind: hero` load, validate its fields and render."""
    path = write(edition_dir, HEADER + HERO_SECTION)
    assert any("kind=hero: unknown kind" in p for p in problems(path, templates_copy))
    (templates_copy / "sections" / "hero.mjml.j2").write_text(HERO_TEMPLATE, encoding="utf-8")
    (templates_copy / "sections" / "hero.yaml").write_text(HERO_SCHEMA, encoding="utf-8")
    edition = load_edition(path, templates=templates_copy)
    assert edition.section("big-picture").fields["kicker"] == "This week"
    layout = EditionLayout(edition, TemplateSet(templates_copy))
    html = layout.variant(("big-picture",)).html.merge({})
    assert "A wide view of a solar farm" in html and "This week" in html
    text = layout.variant(("big-picture",)).text.merge({})  # no text template: the generic one
    assert "THE BIG PICTURE" in text and "https://brief.example.com/big?" in text


def test_a_new_kinds_fields_are_checked_at_their_lines(templates_copy, edition_dir):
    """A too-long text and a misspelt field of the new kind are refused at their lines, with a hint."""
    (templates_copy / "sections" / "hero.mjml.j2").write_text(HERO_TEMPLATE, encoding="utf-8")
    (templates_copy / "sections" / "hero.yaml").write_text(HERO_SCHEMA, encoding="utf-8")
    section = HERO_SECTION.replace("kicker: This week", "kicker: This week and every week after").replace(
        "    url:", "    urll: https://brief.example.com/typo\n    url:")
    path = write(edition_dir, HEADER + section)
    found = problems(path, templates_copy)
    assert f"{path}:7: sections[big-picture].kicker=This week and every week after: is 30 characters; at most 20" in found
    assert any(p.startswith(f"{path}:8: sections[big-picture].urll=https://brief.example.com/typo: unknown field"
                            " (did you mean url?); hero sections take") for p in found)


def test_unknown_kind_gets_a_did_you_mean(edition_dir):
    """A misspelt kind names the closest shipped kind."""
    path = write(edition_dir, HEADER + HERO_SECTION.replace("kind: hero", "kind: qoute"))
    assert any("kind=qoute: unknown kind (did you mean quote?)" in p for p in problems(path))


def test_template_without_schema_is_refused_by_name(templates_copy):
    """A section template with no schema beside it is an error naming the file to add."""
    (templates_copy / "sections" / "hero.mjml.j2").write_text(HERO_TEMPLATE, encoding="utf-8")
    with pytest.raises(InvalidSectionKinds, match=r"hero\.mjml\.j2: a section template needs its schema beside it:"
                                                  r" sections/hero\.yaml"):
        load_section_kinds(templates_copy)


def test_bad_schema_is_refused_at_its_lines(templates_copy):
    """An unknown type and an unknown schema key are reported at their lines, with hints."""
    (templates_copy / "sections" / "hero.mjml.j2").write_text(HERO_TEMPLATE, encoding="utf-8")
    (templates_copy / "sections" / "hero.yaml").write_text(
        "fields:\n  url: {type: link}\n  kicker: {type: text, max_char: 20}\n", encoding="utf-8")
    with pytest.raises(InvalidSectionKinds) as caught:
        load_section_kinds(templates_copy)
    text = [str(p) for p in caught.value.problems]
    schema = templates_copy / "sections" / "hero.yaml"
    assert any(t.startswith(f"{schema}:2: fields.url.type=link: unknown type") for t in text), text
    assert any(t.startswith(f"{schema}:3: fields.kicker.max_char=20: unknown schema key (did you mean max_chars?)")
               for t in text), text


# -- the new fields ----------------------------------------------------------------------------

LETTER = """\
  - id: note
    kind: letter
    title: From the editor
    signature: Ana
    body: |
      Hello.

      ![A chart of this week's signups]({src})

      [Change your topics]({link}) any time.
"""


def test_markdown_image_without_alt_is_refused_at_its_line(edition_dir):
    """An image in a body needs alt text: refused at the body's own line, not the section's."""
    path = write(edition_dir, HEADER + LETTER.format(src="https://images.example.com/c.png", link="reader:preferences")
                 .replace("![A chart of this week's signups]", "![]"))
    assert problems(path) == [f"{path}:11: sections[note].body=https://images.example.com/c.png: an image needs"
                              " alt text: ![what it shows](address)"]


def test_unknown_reader_link_is_refused_with_a_hint(edition_dir):
    """`reader:preference` is refused with the names that exist."""
    path = write(edition_dir, HEADER + LETTER.format(src="https://images.example.com/c.png", link="reader:preference"))
    (found,) = problems(path)
    assert found.startswith(f"{path}:13: sections[note].body=reader:preference: unknown reader link"
                            " (did you mean preferences?)")


def test_images_render_as_tags_and_reader_links_as_the_readers_own(edition_dir):
    """A body image becomes a well-formed img with its alt; `reader:preferences` becomes the reader's link."""
    path = write(edition_dir, HEADER + LETTER.format(src="https://images.example.com/c.png", link="reader:preferences"))
    layout = EditionLayout(load_edition(path), TemplateSet(TEMPLATES))
    variant = layout.variant(("note",))
    html = variant.html.merge({"preferences_url": "https://brief.example.com/p/TOKEN"})
    assert '<img src="https://images.example.com/c.png" alt="A chart of this week&#39;s signups"' in html \
        or '<img src="https://images.example.com/c.png" alt="A chart of this week\'s signups"' in html
    assert 'href="https://brief.example.com/p/TOKEN"' in html
    assert "preferences_url" in variant.text.tags


def test_editor_text_cannot_write_a_merge_tag_through_a_link_or_text(edition_dir):
    """Only the three `reader:` links become merge tags: `%%rf:...%%` typed in a body, as text or link, stays inert."""
    def tags(link: str, hello: str) -> list[str]:
        body = LETTER.format(src="https://images.example.com/c.png", link=link).replace("Hello.", hello)
        layout = EditionLayout(load_edition(write(edition_dir, HEADER + body)), TemplateSet(TEMPLATES))
        return list(layout.variant(("note",)).html.tags)

    clean = tags("reader:preferences", "Hello.")
    hostile = tags("https://brief.example.com/%%rf:email%%", "Hello %%rf:email%% and %%rf:why:note%%.")
    assert sorted(hostile + ["preferences_url"]) == sorted(clean)  # the same tags, less the reader link


def test_intro_and_sign_off_frame_every_copy(edition_path):
    """The sample's intro comes before the first section and its sign-off after the last, in HTML and text."""
    layout = EditionLayout(load_edition(edition_path), TemplateSet(TEMPLATES))
    variant = layout.variant(("editors-note", "ai-evals"))
    html = variant.html.merge({})
    assert html.index("Five things picked for") < html.index("What changed in this newsletter") \
        < html.index("Evaluating AI features") < html.index("we read every reply")
    text = variant.text.merge({})
    assert text.index("Five things picked for") < text.index("WHAT CHANGED") < text.index("That's the week")


def test_sponsor_is_labelled_and_outside_the_sender_first_share(edition_path):
    """The sponsor section shows 'Sponsored' and its sponsor; the focus share leaves it out."""
    edition = load_edition(edition_path)
    layout = EditionLayout(edition, TemplateSet(TEMPLATES))
    html = layout.variant(("heat-pumps-offices", "sponsor-audit-kit")).html.merge({})
    assert "SPONSORED BY NORTHWIND COMPLIANCE" in html and "Sponsored. Northwind Compliance paid" in html
    focus = edition_focus(edition)
    assert [s.section_id for s in focus.sections if s.sponsored] == ["sponsor-audit-kit"]
    assert len(focus.counted) == len(edition.sections) - 1


def test_check_lists_the_kinds_and_their_fields(tmp_path, edition_path):
    """`readerfirst check` lists every kind with its fields, and `--json` gives them to a script."""
    from tests.test_cli import run

    text = run(tmp_path, "check", str(edition_path)).stdout
    assert "  sponsor [sponsor]: sponsor: text, disclosure: text, url: url" in text
    assert "  pair: stories: list of {title, url, body?, image?, cta?}" in text
    data = json.loads(run(tmp_path, "check", str(edition_path), "--json").stdout)
    kinds = {k["kind"]: k for k in data["kinds"]}
    assert set(kinds) == {"article", "ask", "event", "lead", "letter", "links", "pair", "quote", "sponsor"}
    assert {"name": "url", "type": "url", "required": True} in kinds["lead"]["fields"]
    assert data["valid"] is True and data["max_sponsor"] == 1
