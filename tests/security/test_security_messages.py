"""Error lines quote what the user gave without letting it act on a terminal or split the line."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pipeline.errors import InputProblem


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=120))
def test_a_problem_is_one_printable_line_whatever_the_value(value):
    """Escape sequences, bidi overrides, zero-width and line-breaking characters in a value are shown escaped."""
    line = str(InputProblem("people.csv", 7, "first_name", value, "is too long"))
    assert line.isprintable()
    assert line.startswith("people.csv:7: first_name=") and line.endswith(": is too long")


def test_ordinary_unicode_stays_readable():
    """Letters of any script are shown as they are; only what a terminal would obey is escaped."""
    assert str(InputProblem("f.csv", 2, "email", "anna@münchen.de", "x")) == "f.csv:2: email=anna@münchen.de: x"
    assert str(InputProblem("f.csv", 2, "first_name", "A\x1b[2Jb\u202ec", "x")) == \
        "f.csv:2: first_name=A\\x1b[2Jb\\u202ec: x"
