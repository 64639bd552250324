"""Hostile text on the command line: reader data never leaks into errors, user text is never interpreted."""

from __future__ import annotations

import io
import sqlite3
from contextlib import redirect_stderr

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError, OperationalError

from pipeline.cli.console import fail
from pipeline.cli.failures import explain

_DRIVER_MESSAGES = ["attempt to write a readonly database", "unable to open database file", "database is locked",
                    "disk I/O error", "connection failed: Connection refused"]
_SECRET_LOOKING = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=6, max_size=40)


# `home` only sets environment variables, the same for every example.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_SECRET_LOOKING, reason=st.sampled_from(_DRIVER_MESSAGES), integrity=st.booleans())
def test_database_errors_never_repeat_the_statement_or_its_parameters(value, reason, integrity, home):
    """Whatever a reader's name or address holds, the explained database error names neither it nor the SQL."""
    kind = IntegrityError if integrity else OperationalError
    error = kind(f"INSERT INTO readers (email, first_name) VALUES ('{value}', ?)", {"first_name": value},
                 sqlite3.OperationalError(reason))
    message = explain(error).message
    assert value not in message and "INSERT" not in message
    assert "\n" not in message


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200))
@example(text="ai:abc;climate:cd :smile: [bold]x[/] " + "long " * 40)
@example(text="ends with a backslash \\")
def test_error_lines_print_user_text_exactly_as_written(text):
    """Emoji codes, markup, backslashes and long lines in a value reach a pipe unchanged, on one line."""
    out = io.StringIO()
    with redirect_stderr(out), pytest.raises(SystemExit):  # not a terminal, as when a script reads it
        fail(f"audience.csv:2: first_name={text}: too long")
    assert out.getvalue() == f"error: audience.csv:2: first_name={text}: too long\n"
