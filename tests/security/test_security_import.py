"""Hostile audience files: nothing an import accepts can fail a send, and one bad row imports nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pipeline.audience.importer import import_audience
from pipeline.audience.records import read_audience_file
from pipeline.emulator import validate_mail_send
from pipeline.errors import InvalidAudience
from pipeline.store.models import Audience, Reader, ReaderInterest, ReaderNeed

TODAY = dt.date(2026, 12, 1)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mailchimp"

# Characters that break things: controls, bidi overrides, zero-width, line and paragraph
# separators, full-width look-alikes of @ and dot, combining marks, astral-plane letters.
NASTY = "\x00\x01\t\n\r\x0b\x0c\x1b\x7f\x85\u200b\u200d\u202e\u2028\u2029\ufeff＠．\u0301\U0001d400"
LETTERS = "abcXYZ019.-_+'!#$%&*/=?^`{|}~\"(),:;<>[]\\ "
UNICODE = "üßéÅøæçñжфاδ中"
any_text = st.text(alphabet=st.sampled_from(LETTERS + UNICODE + NASTY + "@"), max_size=40)
label = st.text(alphabet=st.sampled_from("abz09-" + UNICODE + "ＡＢ"), min_size=1, max_size=20)
domain = st.builds(lambda labels, tld: ".".join([*labels, tld]),
                   st.lists(st.one_of(label, st.just("xn--mnchen-3ya"), st.just("xn--zz")), min_size=1, max_size=3),
                   st.sampled_from(["de", "com", "Com", "123", "xn--p1ai", "рф", "ＣＯＭ", "c0m", "-de", "a"]))
addresses = st.one_of(
    st.emails(),
    st.builds(lambda local, host: f"{local}@{host}", any_text, domain),
    st.builds(lambda local, host: f"{local}@{host}",
              st.text(alphabet=st.sampled_from("abcXYZ019.-_+" + UNICODE), min_size=1, max_size=70), domain),
    any_text,
)


def mail_send_body(address: str) -> dict:
    """The smallest mail-send body sending to `address`."""
    return {"personalizations": [{"to": [{"email": address}]}], "from": {"email": "news@example.com"},
            "subject": "Weekly", "content": [{"type": "text/plain", "value": "Hello"}]}


def read_jsonl(rows: list[dict]):
    """read_audience_file over a JSONL file holding `rows` (a fresh folder per call, as Hypothesis calls often)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "readers.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        return read_audience_file(path, today=TODAY)


@settings(max_examples=400, deadline=None)
@given(addresses)
def test_every_accepted_address_is_sendable(address):
    """Whatever address a row holds, the importer either refuses it or stores ASCII that SendGrid's rules accept."""
    result = read_jsonl([{"email": address}])
    assume(result.records)
    stored = result.records[0].email
    local, _, host = stored.rpartition("@")
    assert stored.isascii() and host == host.lower()
    assert validate_mail_send(mail_send_body(stored)) == []


@settings(max_examples=150, deadline=None)
@given(first=any_text, last=st.one_of(any_text, st.text(min_size=190, max_size=260)),
       tags=st.lists(any_text, max_size=4), timezone=st.one_of(any_text, st.sampled_from(["Europe/London", "Europe",
                                                                                          "../../etc/passwd"])))
def test_accepted_rows_hold_only_printable_bounded_text(first, last, tags, timezone):
    """Names, tags and time zones that are accepted are one printable line of at most 200 characters each."""
    result = read_jsonl([{"email": "ann@example.com", "first_name": first, "last_name": last, "tags": tags,
                          "timezone": timezone}])
    for problem in result.problems:
        assert "\n" not in str(problem) and "\r" not in str(problem)
    for record in result.records:
        for value in (record.first_name, record.last_name, record.timezone, *(record.tags or [])):
            assert value.isprintable() and len(value) <= 200


def snapshot(db) -> dict[str, list[tuple]]:
    """Every row of the audience tables."""
    with db.session() as session:
        return {
            "audiences": sorted(session.execute(select(Audience.id, Audience.name)).all()),
            "readers": sorted(session.execute(select(Reader.id, Reader.email, Reader.first_name, Reader.status,
                                                     Reader.tags)).all()),
            "interests": sorted(session.execute(select(ReaderInterest.reader_id, ReaderInterest.topic,
                                                       ReaderInterest.declared_weight)).all()),
            "needs": sorted(session.execute(select(ReaderNeed.reader_id, ReaderNeed.topic, ReaderNeed.until)).all()),
        }


bad_cells = st.one_of(
    st.tuples(st.just("email"), st.sampled_from(["jürgen@example.com", "a@b", "x\n@example.com", "", "@" * 300])),
    st.tuples(st.just("first_name"), st.sampled_from(["A\x00B", "x" * 201, "\u202eevil", "line\u2028break"])),
    st.tuples(st.just("interests"), st.sampled_from(["climat", "ai:2", "ai:nan", "ai:-0.1", "Climate", "a i"])),
    st.tuples(st.just("needs"), st.sampled_from(["gardening", "hirring", "HIRING"])),
    st.tuples(st.just("status"), st.sampled_from(["resubscribed", "subscribed\x00"])),
    st.tuples(st.just("timezone"), st.sampled_from(["Mars/Olympus", "Europe", "/etc/localtime"])),
    st.tuples(st.just("tags"), st.sampled_from(["a\x1b[31mred", "t" * 201])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=st.integers(min_value=1, max_value=6), position=st.integers(min_value=0, max_value=6), bad=bad_cells)
def test_one_bad_row_anywhere_imports_nothing(db, good, position, bad):
    """A file of good rows with one bad row anywhere is refused whole: the database is unchanged, the bad line named."""
    import_audience(db, FIXTURES / "subscribed_members_export_7c1f2e9a0b.csv", "main", today=TODAY)
    before = snapshot(db)
    field_name, value = bad
    rows = [{"email": f"reader{i}@example.com", "first_name": f"R{i}", "interests": "climate:0.5",
             "status": "unsubscribed"} for i in range(good)]
    spot = min(position, good)
    rows.insert(spot, {"email": "bad@example.com", field_name: value})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "readers.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, ["email", "first_name", "interests", "needs", "status", "timezone", "tags"])
            writer.writeheader()
            writer.writerows(rows)
        with pytest.raises(InvalidAudience) as caught:
            import_audience(db, path, "main", today=TODAY)
        # The reported line is the bad row's own line in the file (2 for the first row).
        assert [p.line for p in caught.value.problems][:1] == [spot + 2]
    assert snapshot(db) == before


@pytest.mark.parametrize(("text", "field", "line"), [
    ("email,first_name\na@example.com," + "x" * 200_000 + "\n", "file", 2),
    ("email," + "h" * 200_000 + "\na@example.com,A\n", "file", 1),
    ("email,Email\na@example.com,b@example.com\n", "header", 1),
    ("email,EMAIL \na@example.com,b@example.com\n", "header", 1),
    ("email\x00,first_name\na@example.com,A\n", "header", 1),
    ("Email Address,status\na@example.com,subscribed\n", "status", 1),
    ("Email Address,UNSUB_TIME,CLEAN_TIME\na@example.com,,\n", "status", 1),
])
def test_header_and_size_tricks_are_reported_not_crashed_on(tmp_path, text, field, line):
    """Over-long cells, repeated or disguised columns and Mailchimp files whose status is unclear are refused cleanly."""
    path = tmp_path / "tricky.csv"
    path.write_text(text, encoding="utf-8")
    result = read_audience_file(path, today=TODAY)
    assert result.records == []
    assert [(p.field, p.line) for p in result.problems][:1] == [(field, line)]
    assert all(len(str(p)) < 400 for p in result.problems)


def test_a_status_column_cannot_subscribe_people_in_a_mailchimp_export(db, tmp_path):
    """Adding a `status` column to an unsubscribed export changes nothing: Mailchimp files ignore it, the columns rule."""
    source = (FIXTURES / "unsubscribed_members_export_7c1f2e9a0b.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(source)))
    rows = [[*rows[0], "status"], *([*row, "subscribed"] for row in rows[1:])]
    path = tmp_path / "members.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)
    import_audience(db, path, "main", today=TODAY)
    with db.session() as session:
        assert set(session.scalars(select(Reader.status))) == {"unsubscribed"}


ascii_domain = st.builds(lambda labels, tld: ".".join([*labels, tld]),
                         st.lists(st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True),
                                  min_size=1, max_size=3),
                         st.sampled_from(["de", "com", "CoM", "test", "invalid", "local", "localhost", "arpa",
                                          "onion", "example", "a1", "xn--p1ai", "xn--zz", "museum"]))
dot_atoms = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30}(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,30}){0,2}",
                          fullmatch=True)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.builds(lambda local, host: f"{local}@{host}", dot_atoms, ascii_domain), addresses))
def test_the_fast_address_check_agrees_with_email_validators_full_check(address):
    """The per-domain shortcut for plain addresses stores, or refuses, exactly what the full check does."""
    from pipeline.audience.addresses import AddressRefused, stored_address, validated_address

    def outcome(check):
        try:
            return check(address.strip())
        except AddressRefused as exc:
            return ("refused", str(exc))

    assert outcome(stored_address) == outcome(validated_address)
