"""Reading audience files: our CSV and JSONL, Mailchimp exports, and every row check with FILE:LINE."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from pipeline.audience.records import DEFAULT_NEED_DAYS, read_audience_file
from pipeline.errors import InputProblem, visible

TODAY = dt.date(2026, 12, 1)
HEADER = "email,first_name,last_name,interests,needs,needs_until,timezone,status,tags"


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "readers.csv") -> Path:
    """A CSV audience file with `header` and `rows` (each row one string, lines joined with \\n)."""
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8", newline="")
    return path


def write_jsonl(tmp_path: Path, *lines: object, name: str = "readers.jsonl") -> Path:
    """A JSONL audience file; dicts are dumped, strings written as they are."""
    path = tmp_path / name
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def one_problem(path: Path, field: str) -> InputProblem:
    """The only problem read_audience_file finds in `path`, checked to be about `field`."""
    result = read_audience_file(path, today=TODAY)
    assert [p.field for p in result.problems] == [field], [str(p) for p in result.problems]
    return result.problems[0]


def assert_at(problem: InputProblem, path: Path, line: int, field: str, value: str, reason_part: str) -> None:
    """`problem` reads `PATH:LINE: field=value: reason` with `reason_part` in the reason."""
    text = str(problem)
    shown = visible(value)  # one printable line, whatever the value holds
    assert text.startswith(f"{path}:{line}: {field}={shown}: "), text
    assert reason_part in problem.reason, text


# -- reading good files ------------------------------------------------------------------------

def test_csv_rows_become_records(tmp_path):
    """A CSV in our format gives one record per row, with interests, needs, tags and status parsed."""
    path = write_csv(tmp_path,
                     "Ann@Example.COM, Ann ,Lee,climate:0.8;hiring,hiring;ai,2026-12-24,Europe/London,"
                     "Subscribed,founder;vip",
                     "bob@example.com,Bob,,,,,,,")
    result = read_audience_file(path, today=TODAY)
    assert result.problems == [] and result.rejected == []
    ann, bob = result.records
    assert (ann.line, ann.email, ann.first_name, ann.last_name) == (2, "ann@example.com", "Ann", "Lee")
    assert ann.interests == {"climate": 0.8, "hiring": 1.0}
    assert ann.needs == {"hiring": dt.date(2026, 12, 24), "ai": dt.date(2026, 12, 24)}
    assert (ann.timezone, ann.status, ann.tags) == ("Europe/London", "subscribed", ["founder", "vip"])
    # Empty cells say nothing: no interests, no status, no tags.
    assert (bob.line, bob.interests, bob.needs, bob.status, bob.tags) == (3, None, {}, None, None)


def test_needs_default_to_45_days_after_today(tmp_path):
    """Needs without needs_until last DEFAULT_NEED_DAYS (45) days from `today`."""
    path = write_csv(tmp_path, "ann@example.com,,,,hiring,,,,")
    record, = read_audience_file(path, today=TODAY).records
    assert DEFAULT_NEED_DAYS == 45
    assert record.needs == {"hiring": dt.date(2027, 1, 15)}


def test_jsonl_rows_become_records(tmp_path):
    """A JSONL file takes interests as a mapping or list, needs and tags as lists; blank lines are skipped."""
    path = write_jsonl(tmp_path,
                       {"email": "Ann@example.com", "first_name": "Ann", "interests": {"climate": 0.5, "ai": 1},
                        "needs": ["hiring"], "needs_until": "2026-12-20", "tags": ["a", " b "]},
                       "",
                       {"email": "bob@example.com", "interests": ["design", "data"], "status": "unsubscribed"})
    result = read_audience_file(path, today=TODAY)
    assert result.problems == []
    ann, bob = result.records
    assert (ann.line, ann.email, ann.interests) == (1, "ann@example.com", {"climate": 0.5, "ai": 1.0})
    assert ann.needs == {"hiring": dt.date(2026, 12, 20)} and ann.tags == ["a", "b"]
    assert (bob.line, bob.interests, bob.status) == (3, {"design": 1.0, "data": 1.0}, "unsubscribed")
    assert result.source_format == "jsonl"


def test_mailchimp_export_is_read(tmp_path):
    """Mailchimp's headers map to ours, its quoted TAGS list is split and its other columns are ignored."""
    header = ('"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,'
              'LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS')
    path = write_csv(tmp_path,
                     'Ann@Example.com,Ann,Lee,4,"2024-01-02 10:00:00",1.2.3.4,,,,0,0,Europe/London,GB,,,123,abc,'
                     '"likes tea","""Customer"",""VIP"""',
                     'bob@example.com,Bob,,2,,,,,,,,,,,,,,,"""Customer"""',
                     header=header, name="subscribed_members_export_1a2b3c.csv")
    result = read_audience_file(path, today=TODAY)
    assert result.problems == []
    ann, bob = result.records
    assert (ann.email, ann.first_name, ann.last_name, ann.timezone) == ("ann@example.com", "Ann", "Lee",
                                                                       "Europe/London")
    assert ann.tags == ["Customer", "VIP"] and bob.tags == ["Customer"]
    assert ann.interests is None and ann.status == "subscribed"


def test_csv_with_byte_order_mark_and_crlf_is_read(tmp_path):
    """A CSV saved by a spreadsheet (UTF-8 BOM, CRLF line ends) reads like any other."""
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffemail,first_name\r\nann@example.com,Ann\r\nbob@example.com,Bob\r\n".encode())
    result = read_audience_file(path, today=TODAY)
    assert result.problems == []
    assert [(r.line, r.email) for r in result.records] == [(2, "ann@example.com"), (3, "bob@example.com")]


# -- every check, with its file and line ---------------------------------------------------------

@pytest.mark.parametrize("email", ["not-an-email", "ann@", "ann@@example.com", "ann example@example.com"])
def test_bad_email_is_reported(tmp_path, email):
    """An address that is not an email address is reported at its line."""
    path = write_csv(tmp_path, "ok@example.com,,,,,,,,", f'"{email}",,,,,,,,')
    assert_at(one_problem(path, "email"), path, 3, "email", email, "")


def test_missing_email_is_reported(tmp_path):
    """A row with an empty email cell is reported as missing its email."""
    path = write_csv(tmp_path, ",Ann,,,,,,,")
    assert_at(one_problem(path, "email"), path, 2, "email", "", "is required")


@pytest.mark.parametrize("interests, shown, reason", [
    ("climate:1.5", "climate:1.5", "weight must be from 0 to 1"),
    ("climate:-0.1", "climate:-0.1", "weight must be from 0 to 1"),
    ("climate:nan", "climate:nan", "weight must be from 0 to 1"),
    ("climate:high", "climate:high", "weight must be a number from 0 to 1"),
    ("Climate Change", "Climate Change", "topics are lowercase letters, digits and dashes"),
])
def test_bad_interest_is_reported(tmp_path, interests, shown, reason):
    """An interest weight out of range or not a number, or a malformed topic, is reported at its line."""
    path = write_csv(tmp_path, f"ann@example.com,,,ai:0.5;{interests},,,,,")
    assert_at(one_problem(path, "interests"), path, 2, "interests", shown, reason)


def test_bad_weight_in_jsonl_is_reported(tmp_path):
    """A JSONL interest weight that is not a number is reported at its line."""
    path = write_jsonl(tmp_path, {"email": "a@example.com"}, {"email": "b@example.com", "interests": {"ai": "lots"}})
    assert_at(one_problem(path, "interests"), path, 2, "interests", "ai:lots", "weight must be a number")


@pytest.mark.parametrize("value", ["2026-02-30", "next week", "31/12/2026"])
def test_bad_needs_until_date_is_reported(tmp_path, value):
    """A needs_until that is not a YYYY-MM-DD date is reported at its line."""
    path = write_csv(tmp_path, f"ann@example.com,,,,hiring,{value},,,")
    assert_at(one_problem(path, "needs_until"), path, 2, "needs_until", value, "not a date; use YYYY-MM-DD")


def test_needs_until_in_the_past_is_reported(tmp_path):
    """A needs_until before today is reported, naming today."""
    path = write_csv(tmp_path, "ann@example.com,,,,hiring,2026-11-30,,,")
    assert_at(one_problem(path, "needs_until"), path, 2, "needs_until", "2026-11-30",
              "is in the past (today is 2026-12-01)")


def test_needs_until_more_than_a_year_ahead_is_reported(tmp_path):
    """A needs_until more than 366 days ahead is reported."""
    path = write_csv(tmp_path, "ann@example.com,,,,hiring,2028-01-01,,,")
    assert_at(one_problem(path, "needs_until"), path, 2, "needs_until", "2028-01-01", "more than 366 days ahead")


def test_needs_until_without_needs_is_reported(tmp_path):
    """A needs_until with no needs is reported."""
    path = write_csv(tmp_path, "ann@example.com,,,,,2026-12-20,,,")
    assert_at(one_problem(path, "needs_until"), path, 2, "needs_until", "2026-12-20", "given without any needs")


def test_duplicate_email_is_reported_case_insensitively(tmp_path):
    """A second row with the same address in another case is reported, naming the first line."""
    path = write_csv(tmp_path, "ann@example.com,Ann,,,,,,,", "bob@example.com,Bob,,,,,,,",
                     "ANN@Example.com,Ann2,,,,,,,")
    result = read_audience_file(path, today=TODAY)
    problem, = result.problems
    assert_at(problem, path, 4, "email", "ann@example.com", "duplicate of line 2")
    assert [r.email for r in result.records] == ["ann@example.com", "bob@example.com"]


def test_unknown_status_is_reported(tmp_path):
    """A status other than subscribed, unsubscribed or cleaned is reported, listing the statuses."""
    path = write_csv(tmp_path, "ann@example.com,,,,,,,active,")
    assert_at(one_problem(path, "status"), path, 2, "status", "active",
              "unknown status; use subscribed, unsubscribed, cleaned")


def test_unknown_column_in_our_format_is_reported_at_the_header(tmp_path):
    """A column readerfirst does not know (in its own format) is reported at line 1 and no row is read."""
    path = write_csv(tmp_path, "ann@example.com,Ann,x", header="email,first_name,frist_name")
    result = read_audience_file(path, today=TODAY)
    assert result.records == []
    problem, = result.problems
    assert_at(problem, path, 1, "header", "frist_name", "unknown column; use email, first_name")


def test_unknown_field_in_jsonl_is_reported(tmp_path):
    """A JSONL key readerfirst does not know is reported at its line."""
    path = write_jsonl(tmp_path, {"email": "ann@example.com", "phone": "123"})
    assert_at(one_problem(path, "phone"), path, 1, "phone", "123", "unknown field; use email")


def test_missing_email_column_is_reported(tmp_path):
    """A file with no email column (ours or Mailchimp's) is reported at line 1."""
    path = write_csv(tmp_path, "Ann,Lee", header="first_name,last_name")
    result = read_audience_file(path, today=TODAY)
    problem, = result.problems
    assert_at(problem, path, 1, "header", "first_name,last_name", "no email column")
    assert result.records == []


@pytest.mark.parametrize("cell, shown", [
    ('"Ann\tLee"', "Ann\tLee"),
    ('"Ann\nBcc: evil@example.com"', "Ann\nBcc: evil@example.com"),
    ('"Ann\r\nLee"', "Ann\nLee"),  # the file is read with universal newlines
    ('"Ann\x00"', "Ann\x00"),
])
def test_control_characters_in_names_are_reported(tmp_path, cell, shown):
    """A name with a tab, a line break or another control character is reported at the row's first line."""
    path = write_csv(tmp_path, f"ann@example.com,{cell},,,,,,,", "bob@example.com,Bob,,,,,,,")
    assert_at(one_problem(path, "first_name"), path, 2, "first_name", shown, "contains control characters")


def test_rows_after_a_multi_line_cell_keep_their_line_numbers(tmp_path):
    """A quoted cell spanning two lines moves the next row's line number down by one."""
    path = write_csv(tmp_path, 'ann@example.com,"Ann\nLee",,,,,,,', "not-an-email,Bob,,,,,,,")
    result = read_audience_file(path, today=TODAY)
    assert [(p.line, p.field) for p in result.problems] == [(2, "first_name"), (4, "email")]
    assert result.rejected == [(2, 'ann@example.com,"Ann\nLee",,,,,,,'), (4, "not-an-email,Bob,,,,,,,")]


def test_too_long_name_is_reported(tmp_path):
    """A name over 200 characters is reported."""
    path = write_csv(tmp_path, f"ann@example.com,,{'L' * 201},,,,,,")
    assert one_problem(path, "last_name").reason == "longer than 200 characters"


def test_unknown_timezone_is_reported(tmp_path):
    """A time zone that is not an IANA name is reported at its line with an example."""
    path = write_csv(tmp_path, "ann@example.com,,,,,,Mars/Olympus_Mons,,")
    assert_at(one_problem(path, "timezone"), path, 2, "timezone", "Mars/Olympus_Mons",
              "unknown time zone; use an IANA name such as Europe/London")


@pytest.mark.parametrize("zone", ["Europe", "America"])
def test_timezone_naming_a_folder_is_reported(tmp_path, zone):
    """A time zone naming a region folder of the tz database (not a zone) is reported, not raised."""
    path = write_csv(tmp_path, f"ann@example.com,,,,,,{zone},,")
    assert_at(one_problem(path, "timezone"), path, 2, "timezone", zone, "unknown time zone")


def test_more_cells_than_columns_is_reported(tmp_path):
    """A row with extra cells is reported at its line."""
    path = write_csv(tmp_path, "ann@example.com,Ann,Lee", header="email,first_name")
    assert_at(one_problem(path, "row"), path, 2, "row", "Lee", "more cells than there are columns")


def test_invalid_json_line_is_reported(tmp_path):
    """A JSONL line that is not JSON, or not an object, is reported at its line with its text."""
    path = write_jsonl(tmp_path, {"email": "ann@example.com"}, '{"email": "bob@example.com",', '["a list"]')
    result = read_audience_file(path, today=TODAY)
    assert [(p.line, p.field) for p in result.problems] == [(2, "line"), (3, "line")]
    assert result.problems[0].reason.startswith("not valid JSON")
    assert result.problems[1].reason == "each line must be a JSON object"
    assert result.rejected == [(2, '{"email": "bob@example.com",'), (3, '["a list"]')]


def test_every_bad_row_is_reported_not_just_the_first(tmp_path):
    """Each bad row gives its own problem, and a row with two bad fields gives two."""
    path = write_csv(tmp_path,
                     "ann@example.com,Ann,,,,,,,",
                     "bad-one,,,,,,,,",
                     "bob@example.com,,,ai:2,,,Nowhere/Town,,",
                     "cy@example.com,,,,,,,gone,")
    result = read_audience_file(path, today=TODAY)
    assert [(p.line, p.field) for p in result.problems] == [(3, "email"), (4, "timezone"), (4, "interests"),
                                                              (5, "status")]
    assert [line for line, _ in result.rejected] == [3, 4, 5]
    assert [r.email for r in result.records] == ["ann@example.com"]


def test_empty_file_is_reported(tmp_path):
    """A file with a header and no readers is reported as empty."""
    path = write_csv(tmp_path)
    problem, = read_audience_file(path, today=TODAY).problems
    assert (problem.field, problem.reason) == ("file", "no readers in this file")


def test_file_that_is_not_utf8_is_reported_with_its_line(tmp_path):
    """A Latin-1 file is reported as not UTF-8 at the line with the first bad byte."""
    path = tmp_path / "latin1.csv"
    path.write_bytes("email,first_name\nann@example.com,Ann\nzoe@example.com,Zoë\n".encode("latin-1"))
    problem, = read_audience_file(path, today=TODAY).problems
    assert (problem.line, problem.field) == (3, "file")
    assert "UTF-8" in problem.reason


def test_missing_file_is_reported(tmp_path):
    """A path that does not exist is reported as `FILE: no such file`, with no line number."""
    path = tmp_path / "nope.csv"
    problem, = read_audience_file(path, today=TODAY).problems
    assert (problem.file, problem.field, problem.reason) == (str(path), "file", "no such file")
    assert str(problem) == f"{path}: no such file"


def test_folder_and_empty_file_are_reported_as_such(tmp_path):
    """A folder given as the audience file, and a file with nothing in it, each get their own plain reason."""
    empty = tmp_path / "empty.csv"
    empty.write_text(" \n")
    assert [str(p) for p in read_audience_file(tmp_path, today=TODAY).problems] == [
        f"{tmp_path}: is a folder; give the audience file (CSV or JSONL)"]
    assert [str(p) for p in read_audience_file(empty, today=TODAY).problems] == [
        f"{empty}: the file is empty; export the audience again"]


def test_jsonl_line_with_unicode_line_separator_keeps_line_numbers(tmp_path):
    """A raw U+2028 inside a JSON string does not split the line, so the next line keeps its number."""
    path = tmp_path / "readers.jsonl"
    first = json.dumps({"email": "ann@example.com", "last_name": "Lee\u2028Smith"}, ensure_ascii=False)
    path.write_text(first + "\n" + json.dumps({"email": "not-an-email"}) + "\n", encoding="utf-8")
    result = read_audience_file(path, today=TODAY)
    assert [p.field for p in result.problems if p.field == "line"] == []
    bad = [p for p in result.problems if p.field == "email"]
    assert [p.line for p in bad] == [2]
    assert (2, '{"email": "not-an-email"}') in result.rejected


# -- topics must be in the taxonomy ----------------------------------------------------------------

def test_unknown_topics_are_refused_with_a_suggestion(tmp_path):
    """Interests and needs outside editions/topics.yaml are refused at their line, with the edition's did-you-mean."""
    path = write_csv(tmp_path,
                     "ann@example.com,,,climat:0.5;ai,,,,,",
                     "bob@example.com,,,,hirring;remote-work,,,,",
                     "cy@example.com,,,gardening,,,,,")
    result = read_audience_file(path, today=TODAY)
    assert [str(p) for p in result.problems] == [
        f"{path}:2: interests=climat: unknown topic (did you mean 'climate'?); known topics are listed in the taxonomy file",
        f"{path}:3: needs=hirring: unknown topic (did you mean 'hiring'?); known topics are listed in the taxonomy file",
        f"{path}:4: interests=gardening: unknown topic; known topics are listed in the taxonomy file",
    ]
    assert result.records == [] and [line for line, _ in result.rejected] == [2, 3, 4]


def test_topics_are_checked_against_the_taxonomy_given(tmp_path):
    """With another taxonomy (a simulated audience's), its topics are the known ones and the sample's are not."""
    from pipeline.content.topics import Taxonomy

    taxonomy = Taxonomy({"gardening": "Gardening", "ai": "AI"})
    path = write_jsonl(tmp_path, {"email": "ann@example.com", "interests": {"gardening": 1}, "needs": ["ai"]},
                       {"email": "bob@example.com", "interests": ["climate"]})
    result = read_audience_file(path, today=TODAY, taxonomy=taxonomy)
    assert [(p.line, p.field, p.value) for p in result.problems] == [(2, "interests", "climate")]
    assert result.records[0].interests == {"gardening": 1.0} and result.records[0].needs == {"ai": TODAY + dt.timedelta(days=DEFAULT_NEED_DAYS)}


def test_a_file_with_one_unknown_topic_imports_nothing(db, tmp_path):
    """One misspelt topic among good rows makes the whole import refuse, changing nothing."""
    from sqlalchemy import func, select

    from pipeline.audience.importer import import_audience
    from pipeline.errors import InvalidAudience
    from pipeline.store.models import Reader

    path = write_csv(tmp_path, "ann@example.com,,,climate,,,,,", "bob@example.com,,,desing,,,,,")
    with pytest.raises(InvalidAudience, match=r":3: interests=desing: unknown topic \(did you mean 'design'\?\)"):
        import_audience(db, path, "main", today=TODAY)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Reader)) == 0


def test_repeated_column_is_refused(tmp_path):
    """Two headers for one field (email and Email) are refused at line 1, as csv would silently keep one."""
    path = write_csv(tmp_path, "a@example.com,b@example.com", header="email,Email")
    assert_at(one_problem(path, "header"), path, 1, "header", "Email", "a second column for the same field")


def test_stated_status_fills_rows_without_one_and_refuses_contradictions(tmp_path):
    """In our format --status is the status of rows that state none; a row stating another is reported."""
    path = write_csv(tmp_path, "ann@example.com,,,,,,,,", "bob@example.com,,,,,,,unsubscribed,",
                     "cy@example.com,,,,,,,subscribed,")
    result = read_audience_file(path, today=TODAY, status="unsubscribed")
    assert [(r.email, r.status) for r in result.records] == [("ann@example.com", "unsubscribed"),
                                                             ("bob@example.com", "unsubscribed")]
    [problem] = result.problems
    assert_at(problem, path, 4, "status", "subscribed", "contradicts --status unsubscribed")
