"""Hostile templates against the MJML validator: it reports, it never raises, and it stays linear."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InvalidTemplates
from pipeline.rendering.mjml_rules import mjml_problems
from pipeline.rendering.templates import MjmlPart, check_mjml

# Pieces that steer random documents into the validator's corners: raw content, comments,
# CDATA, script-like elements, quotes left open, stray and misnested closing tags.
_PIECES = ["<mjml>", "</mjml>", "<mj-head>", "</mj-head>", "<mj-body>", "</mj-body>", "<mj-section>",
           "</mj-section>", "<mj-column>", "</mj-column>", "<mj-text>", "</mj-text>", "<mj-raw>", "</mj-raw>",
           '<mj-image src="x" />', "<mj-image>", "<mj-attributes>", "<mj-all padding=\"0\"/>", "<mj-bogus>",
           "</mj-colum>", "<!--", "-->", "<![CDATA[", "]]>", "<style>", "</style>", "<script>", "<p>", "</p>",
           "</br>", "<br>", "<", ">", "/", "=", '"', "'", " padding=", '"1px"', " color=red", "\n", "text",
           "&amp;", "<?xml?>", "<!doctype html>", "<MJ-TEXT>", "</MJ-TEXT >", "\x00", "\u2028", "é"]


def _assert_sane(text: str, problems) -> None:
    for problem in problems:
        assert 0 <= problem.offset <= len(text)
        assert 1 <= problem.line <= text.count("\n") + 1
        assert isinstance(problem.reason, str) and problem.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_validator_never_raises_on_arbitrary_text(text):
    """Any text at all yields a list of problems with positions inside the text, never an exception."""
    _assert_sane(text, mjml_problems(text))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=60))
def test_validator_never_raises_on_mjml_like_text(pieces):
    """Documents stitched from MJML and HTML fragments are reported on, never crash the validator."""
    text = "".join(pieces)
    _assert_sane(text, mjml_problems(text))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["layout.mjml.j2", "sections/a.mjml.j2", "missing/b.mjml.j2"]),
                          st.lists(st.sampled_from(_PIECES), max_size=12).map("".join),
                          st.integers(min_value=0, max_value=3)), min_size=1, max_size=5))
def test_template_check_raises_only_invalid_templates(tmp_path, parts):
    """Mapping problems back to templates (some missing on disk) raises InvalidTemplates with file:line, nothing else."""
    (tmp_path / "sections").mkdir(exist_ok=True)
    (tmp_path / "layout.mjml.j2").write_text("<mjml>\n<mj-body>\n{{ sections }}\n</mj-body>\n</mjml>\n")
    (tmp_path / "sections" / "a.mjml.j2").write_text("<mj-section>\n<mj-column>\n</mj-column>\n</mj-section>\n")
    try:
        check_mjml([MjmlPart(name, text, first_line=first) for name, text, first in parts], tmp_path)
    except InvalidTemplates as exc:
        for problem in exc.problems:
            assert Path(problem.file).parent.is_relative_to(tmp_path) and problem.line >= 1
            assert "\n" not in str(problem)


@pytest.mark.parametrize("text", [
    "<mjml><mj-body>" + "<mj-section>" * 20_000,  # deeper than Python's recursion limit
    "<mjml><mj-body><mj-section><mj-column><mj-text>" + "<mj-text>" * 20_000,  # nested raw content
    "<mjml><mj-body>" + "<mj-section>" * 10_000 + "</nope>" * 10_000,  # stray closes under a deep stack
    '<mjml><mj-body><mj-section padding="' + "1" * 100_000 + 'x"></mj-section></mj-body></mjml>',
    "<mj-text " + 'b="' * 50_000,  # a tag and its quotes never end
    "<" * 100_000,
])
def test_pathological_documents_are_reported(text):
    """Inputs built to exhaust recursion or backtracking still get a verdict (pytest-timeout guards the time)."""
    problems = mjml_problems(text)
    assert problems and problems == sorted(problems, key=lambda p: p.offset)
