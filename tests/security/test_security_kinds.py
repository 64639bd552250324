"""Hostile schemas, field values and Markdown: refused with a line, never a crash, never a merge tag."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import mjml
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.content.edition import load_edition
from pipeline.content.kinds import load_section_kinds
from pipeline.content.section_fields import control_character
from pipeline.content.wording import inert_text
from pipeline.errors import InvalidEdition, InvalidSectionKinds
from pipeline.rendering.markdown import READER_LINKS, render_markdown
from pipeline.rendering.merge import MergeTemplate
from tests.conftest import ROOT, TEMPLATES

# YAML-shaped data an editor (or an attacker with write access to a template folder) could write.
YAML_DATA = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_markdown_body_is_well_formed_html_with_only_reader_link_tags(body):
    """Whatever a body says, MRML compiles its HTML inside mj-text, and it holds no merge tag but a reader link's."""
    assume(control_character(body) is None)  # refused when the edition loads (next test)
    html = render_markdown(inert_text(body), lambda url: url)
    mjml.mjml2html(f"<mjml><mj-body><mj-section><mj-column><mj-text>{html}</mj-text></mj-column></mj-section>"
                   "</mj-body></mjml>")
    assert set(MergeTemplate.parse(str(html)).tags) <= set(READER_LINKS.values())


def test_control_character_in_a_body_is_refused_at_its_line(edition_dir):
    """A control character (invisible, and fatal to MRML) in a body is refused naming the field and the character."""
    text = (edition_dir / "2026-12-07.yaml").read_text(encoding="utf-8").replace(
        "quote: Hire for the problems", 'quote: "Hire\\x1f for the problems')
    text = text.replace("not the ones you had last quarter.\n", 'not the ones you had last quarter."\n', 1)
    path = edition_dir / "control.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidEdition) as caught:
        load_edition(path)
    (problem,) = caught.value.problems
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "quote: " in row)
    assert str(problem).startswith(f"{path}:{line}: sections[quote-of-the-week].quote=Hire\\x1f for")
    assert problem.reason == "holds the control character U+001F; remove it"


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> Path:
    """A writable copy of the shipped templates, reused by the schema examples."""
    folder = tmp_path_factory.mktemp("kinds") / "templates"
    shutil.copytree(TEMPLATES, folder)
    (folder / "sections" / "odd.mjml.j2").write_text("<mj-section><mj-column><mj-text>{{ reason }}</mj-text>"
                                                      "</mj-column></mj-section>\n", encoding="utf-8")
    return folder


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=YAML_DATA)
def test_any_schema_file_loads_or_is_refused_with_lines(hostile_folder, data):
    """A schema of any shape either loads or is refused as InvalidSectionKinds naming the file, never a crash."""
    schema = hostile_folder / "sections" / "odd.yaml"
    schema.write_text(yaml.safe_dump({"fields": data}) if data is not None else "", encoding="utf-8")
    try:
        kinds = load_section_kinds(hostile_folder)
    except InvalidSectionKinds as caught:
        assert all(p.file == str(schema) and str(p).startswith(str(schema)) for p in caught.problems)
    else:
        assert "odd" in kinds


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["lead", "article", "links", "event", "letter", "pair", "quote", "sponsor"]),
       fields=st.dictionaries(st.sampled_from(["url", "body", "image", "links", "event", "stories", "quote",
                                               "attribution", "signature", "sponsor", "disclosure", "cta",
                                               "author", "pinned", "extra"]), YAML_DATA, max_size=6))
def test_any_field_values_load_or_are_refused_at_a_line(tmp_path_factory, kind, fields):
    """Random values in a section of any kind are either valid or refused as FILE:LINE problems, never a crash."""
    folder = tmp_path_factory.mktemp("edition")
    shutil.copy(ROOT / "editions" / "topics.yaml", folder / "topics.yaml")
    section = {"id": "s", "kind": kind, "title": "A title", **fields}
    path = folder / "edition.yaml"
    path.write_text(textwrap.dedent("""\
        id: hostile
        subject: Hello
        """) + yaml.safe_dump({"sections": [section]}), encoding="utf-8")
    try:
        edition = load_edition(path, templates=TEMPLATES)
    except InvalidEdition as caught:
        assert caught.problems and all(p.file == str(path) and p.line >= 1 for p in caught.problems)
    else:
        assert edition.section("s").kind == kind


def test_merge_tag_typed_in_a_field_stays_text(edition_dir):
    """`%%rf:email%%` in a quote, signature or sponsor name never reaches the merge as a tag."""
    text = (edition_dir / "2026-12-07.yaml").read_text(encoding="utf-8").replace(
        "attribution: A founder in our hiring clinic", "attribution: '%%rf:email%% says hi'")
    path = edition_dir / "tagged.yaml"
    path.write_text(text, encoding="utf-8")
    quote = load_edition(path).section("quote-of-the-week")
    assert "%%" not in quote.fields["attribution"]
