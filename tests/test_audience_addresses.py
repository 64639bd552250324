"""Readers' addresses: stored as SendGrid takes them (IDNA domains), shown and found in Unicode too."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pipeline.audience.addresses import AddressRefused, display_address, lookup_address, stored_address
from pipeline.audience.directory import audience_id, find_reader_id
from pipeline.audience.importer import import_audience
from pipeline.audience.records import read_audience_file
from pipeline.errors import UnknownReader
from pipeline.store.models import Reader

TODAY = dt.date(2026, 12, 1)


@pytest.mark.parametrize(("typed", "stored"), [
    ("anna@münchen.de", "anna@xn--mnchen-3ya.de"),
    ("plain@xn--mnchen-3ya.de", "plain@xn--mnchen-3ya.de"),
    ("Anna@MÜNCHEN.DE", "anna@xn--mnchen-3ya.de"),
    ("x@faß.de", "x@xn--fa-hia.de"),
    ("  Ann@Example.COM ", "ann@example.com"),
])
def test_stored_address_is_ascii_with_idna_domain(typed, stored):
    """Whatever form is typed, the stored address is lower-case ASCII with the domain in IDNA form."""
    assert stored_address(typed) == stored


def test_non_ascii_local_part_is_refused_with_a_reason():
    """jürgen@example.com has no form SendGrid accepts, and the reason says what to do."""
    with pytest.raises(AddressRefused, match="non-ASCII characters, which SendGrid does not accept"):
        stored_address("jürgen@example.com")


def test_display_address_shows_the_unicode_domain():
    """A stored IDNA domain is shown in Unicode; plain and malformed A-labels are shown as stored."""
    assert display_address("anna@xn--mnchen-3ya.de") == "anna@münchen.de"
    assert display_address("ann@example.com") == "ann@example.com"
    assert display_address("a@xn--zz.de") == "a@xn--zz.de"


def test_import_stores_idna_and_refuses_non_ascii_local_part(tmp_path):
    """The importer stores anna@münchen.de as anna@xn--mnchen-3ya.de and reports jürgen@ at its line."""
    path = tmp_path / "people.csv"
    path.write_text("email\nanna@münchen.de\nplain@xn--mnchen-3ya.de\njürgen@example.com\n", encoding="utf-8")
    result = read_audience_file(path, today=TODAY)
    assert [r.email for r in result.records] == ["anna@xn--mnchen-3ya.de", "plain@xn--mnchen-3ya.de"]
    [problem] = result.problems
    assert str(problem).startswith(f"{path}:4: email=jürgen@example.com: the part before the @ has non-ASCII")


def test_both_forms_in_one_file_are_duplicates(tmp_path):
    """anna@münchen.de and anna@xn--mnchen-3ya.de are one mailbox: the second is a duplicate of the first."""
    path = tmp_path / "people.csv"
    path.write_text("email\nanna@münchen.de\nANNA@xn--mnchen-3ya.de\n", encoding="utf-8")
    [problem] = read_audience_file(path, today=TODAY).problems
    assert (problem.line, problem.field) == (3, "email") and "duplicate of line 2" in problem.reason


def test_reimport_and_lookups_find_the_reader_in_either_form(db, tmp_path):
    """A re-import in the other form updates the same reader, and find_reader_id finds them by either form."""
    first = tmp_path / "first.csv"
    first.write_text("email,first_name\nanna@münchen.de,Anna\n", encoding="utf-8")
    second = tmp_path / "second.csv"
    second.write_text("email,first_name\nAnna@XN--MNCHEN-3YA.DE,Anne\n", encoding="utf-8")
    import_audience(db, first, "main", today=TODAY)
    report = import_audience(db, second, "main", today=TODAY)
    assert (report.created, report.updated) == (0, 1)
    with db.session() as session:
        assert session.execute(select(Reader.email, Reader.first_name)).all() == [("anna@xn--mnchen-3ya.de", "Anne")]
    audience = audience_id(db, "main")
    ids = {find_reader_id(db, audience, typed)
           for typed in ("anna@münchen.de", "ANNA@MÜNCHEN.DE", "anna@xn--mnchen-3ya.de")}
    assert len(ids) == 1
    with pytest.raises(UnknownReader):
        find_reader_id(db, audience, "jürgen@münchen.de")
    assert lookup_address("jürgen@münchen.de") == "jürgen@münchen.de"
