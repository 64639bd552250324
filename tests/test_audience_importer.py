"""Importing audiences: all or nothing, rejected rows kept, learned data and unsubscribes never undone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, update

from pipeline.audience.importer import import_audience
from pipeline.audience.sample import write_sample_csv
from pipeline.errors import InvalidAudience
from pipeline.store.models import Audience, Reader, ReaderInterest, ReaderNeed

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "audiences" / "sample.csv"
TODAY = dt.date(2026, 12, 1)
HEADER = "email,first_name,last_name,interests,needs,needs_until,timezone,status,tags"


def write_csv(folder: Path, *rows: str, header: str = HEADER, name: str = "readers.csv") -> Path:
    """A CSV audience file with `header` and `rows`."""
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8", newline="")
    return path


def snapshot(db) -> dict[str, list[tuple]]:
    """Every row of the audience tables, to compare the database before and after."""
    with db.session() as session:
        return {
            "audiences": sorted(session.execute(select(Audience.id, Audience.name)).all()),
            "readers": sorted(session.execute(select(
                Reader.id, Reader.audience_id, Reader.public_id, Reader.email, Reader.first_name, Reader.last_name,
                Reader.timezone, Reader.status, Reader.tags, Reader.suppressed_reason)).all()),
            "interests": sorted(session.execute(select(
                ReaderInterest.reader_id, ReaderInterest.topic, ReaderInterest.declared_weight,
                ReaderInterest.learned_clicks, ReaderInterest.learned_exposures, ReaderInterest.opted_out)).all()),
            "needs": sorted(session.execute(select(ReaderNeed.reader_id, ReaderNeed.topic, ReaderNeed.until)).all()),
        }


def reader(db, email: str) -> Reader:
    """The reader with `email`."""
    with db.session() as session:
        return session.scalars(select(Reader).where(Reader.email == email)).one()


def interests(db, email: str) -> dict[str, tuple]:
    """Topic -> (declared weight, learned clicks, learned exposures) of the reader with `email`."""
    with db.session() as session:
        rows = session.execute(select(ReaderInterest.topic, ReaderInterest.declared_weight,
                                      ReaderInterest.learned_clicks, ReaderInterest.learned_exposures)
                               .join(Reader, Reader.id == ReaderInterest.reader_id)
                               .where(Reader.email == email)).all()
    return {topic: (weight, clicks, exposures) for topic, weight, clicks, exposures in rows}


def needs(db, email: str) -> dict[str, dt.date]:
    """Topic -> until of the reader with `email`."""
    with db.session() as session:
        rows = session.execute(select(ReaderNeed.topic, ReaderNeed.until)
                               .join(Reader, Reader.id == ReaderNeed.reader_id).where(Reader.email == email)).all()
    return dict(rows)


# -- importing ---------------------------------------------------------------------------------

def test_csv_import_creates_readers(db, tmp_path):
    """A CSV import stores each reader with lower-cased email, names, tags, interests and needs."""
    path = write_csv(tmp_path,
                     "Ann@Example.COM,Ann,Lee,climate:0.8;hiring,ai,,Europe/London,,founder;vip",
                     "bob@example.com,Bob,,,,,,unsubscribed,")
    report = import_audience(db, path, "weekly", today=TODAY)
    assert (report.created, report.updated, report.rejected, report.imported) == (2, 0, 0, 2)
    ann = reader(db, "ann@example.com")
    assert (ann.first_name, ann.last_name, ann.timezone, ann.status, ann.tags) == (
        "Ann", "Lee", "Europe/London", "subscribed", ["founder", "vip"])
    assert len(ann.public_id) == 32
    assert interests(db, "ann@example.com") == {"climate": (0.8, 0.0, 0.0), "hiring": (1.0, 0.0, 0.0)}
    assert needs(db, "ann@example.com") == {"ai": TODAY + dt.timedelta(days=45)}
    assert reader(db, "bob@example.com").status == "unsubscribed"


def test_jsonl_import_creates_readers(db, tmp_path):
    """A JSONL import stores readers like a CSV import does."""
    path = tmp_path / "readers.jsonl"
    path.write_text('{"email": "Ann@example.com", "interests": {"ai": 0.5}, "needs": ["data"], '
                    '"needs_until": "2026-12-24"}\n{"email": "bob@example.com", "tags": ["x"]}\n', encoding="utf-8")
    report = import_audience(db, path, "weekly", today=TODAY)
    assert report.created == 2
    assert interests(db, "ann@example.com") == {"ai": (0.5, 0.0, 0.0)}
    assert needs(db, "ann@example.com") == {"data": dt.date(2026, 12, 24)}
    assert reader(db, "bob@example.com").tags == ["x"]


def test_mailchimp_export_imports(db, tmp_path):
    """A Mailchimp export stated to be of subscribed people imports with its tags, its extra columns ignored."""
    path = write_csv(tmp_path,
                     'ann@example.com,Ann,Lee,5,2024-01-02,"""Customer"",""VIP"""',
                     header='Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,TAGS')
    report = import_audience(db, path, "weekly", today=TODAY, status="subscribed")
    assert report.created == 1
    ann = reader(db, "ann@example.com")
    assert (ann.first_name, ann.last_name, ann.tags, ann.status) == ("Ann", "Lee", ["Customer", "VIP"], "subscribed")


def test_needs_default_to_45_days_after_today(db, tmp_path):
    """A need without needs_until lasts 45 days from the `today` of the import."""
    path = write_csv(tmp_path, "ann@example.com,,,,hiring;funding,,,,")
    import_audience(db, path, "weekly", today=dt.date(2027, 3, 1))
    assert needs(db, "ann@example.com") == {"hiring": dt.date(2027, 4, 15), "funding": dt.date(2027, 4, 15)}


# -- all or nothing ----------------------------------------------------------------------------

BAD_ROWS = [
    ("ann@example.com,Ann,,,,,,,", None),
    ("not-an-email,,,,,,,,", "email"),
    ("bob@example.com,,,climate:1.5,,,,,", "interests"),
    ("cy@example.com,,,climate:lots,,,,,", "interests"),
    ("dee@example.com,,,,hiring,2026-13-01,,,", "needs_until"),
    ("eve@example.com,,,,hiring,2026-11-30,,,", "needs_until"),
    ("ANN@example.com,Ann again,,,,,,,", "email"),
    ("fay@example.com,,,,,,,active,", "status"),
    ('gus@example.com,"Gus\r\nBcc: x@example.com",,,,,,,', "first_name"),
    ("hal@example.com,,,,,,Mars/Base,,", "timezone"),
    ("ivy@example.com,Ivy,,,,,,,", None),
]


def bad_lines() -> list[tuple[int, str]]:
    """(first line, field) of each bad row of BAD_ROWS, counting the extra line of the multi-line cell."""
    found, line = [], 2
    for row, field in BAD_ROWS:
        if field:
            found.append((line, field))
        line += row.replace("\r\n", "\n").count("\n") + 1
    return found


def test_invalid_file_raises_listing_every_bad_row_and_imports_nothing(db, tmp_path):
    """One InvalidAudience lists every bad row as FILE:LINE, and the database is left exactly as it was."""
    import_audience(db, write_csv(tmp_path, "zed@example.com,Zed,,ai:0.5,,,,,", name="first.csv"), "weekly",
                    today=TODAY)
    before = snapshot(db)
    path = write_csv(tmp_path, *(row for row, _ in BAD_ROWS))
    with pytest.raises(InvalidAudience) as caught:
        import_audience(db, path, "weekly", today=TODAY)
    expected = bad_lines()
    assert expected[-1] == (12, "timezone")
    assert [(p.line, p.field) for p in caught.value.problems] == expected
    message = str(caught.value)
    assert message.splitlines()[0] == f"{len(expected)} problems in audience file; nothing was changed:"
    for line, _ in expected:
        assert f"  {path}:{line}: " in message
    assert snapshot(db) == before


def test_invalid_file_into_a_new_audience_creates_nothing(db, tmp_path):
    """A refused import does not even create the audience it named."""
    path = write_csv(tmp_path, "ann@example.com,,,,,,,,", "bad,,,,,,,,")
    with pytest.raises(InvalidAudience):
        import_audience(db, path, "weekly", today=TODAY)
    assert snapshot(db) == {"audiences": [], "readers": [], "interests": [], "needs": []}


def test_an_import_pauses_the_cycle_collector_and_restores_it_even_when_refused(db, tmp_path, monkeypatch):
    """Rows are staged with Python's cycle collector off (it took a third of the importer's CPU walking
    acyclic rows); it is back on after the import, also after a refused one."""
    import gc

    from pipeline.audience.staging import ImportStaging

    seen: list[bool] = []
    add = ImportStaging.add
    monkeypatch.setattr(ImportStaging, "add", lambda staging, records: (seen.append(gc.isenabled()), add(staging, records)))
    assert gc.isenabled()
    report = import_audience(db, write_csv(tmp_path, "ann@example.com,,,,,,,,", name="good.csv"), "weekly", today=TODAY)
    assert report.created == 1 and seen == [False] and gc.isenabled()
    with pytest.raises(InvalidAudience):
        import_audience(db, write_csv(tmp_path, "bob@example.com,,,,,,,,", "bad,,,,,,,,"), "weekly", today=TODAY)
    assert seen == [False, False] and gc.isenabled()


@pytest.mark.parametrize("header", ["email,first_name,favourite_colour", "first_name,last_name"])
def test_header_problem_is_refused_even_with_skip_invalid(db, tmp_path, header):
    """An unknown column or a missing email column refuses the whole file, even with skip_invalid."""
    path = write_csv(tmp_path, "ann@example.com,Ann", header=header)
    with pytest.raises(InvalidAudience) as caught:
        import_audience(db, path, "weekly", skip_invalid=True, today=TODAY)
    assert [p.line for p in caught.value.problems] == [1]
    assert snapshot(db)["readers"] == []


def test_skip_invalid_with_no_good_rows_is_refused(db, tmp_path):
    """skip_invalid still refuses a file in which no row is good."""
    path = write_csv(tmp_path, "bad-one,,,,,,,,", "bad-two,,,,,,,,")
    with pytest.raises(InvalidAudience):
        import_audience(db, path, "weekly", skip_invalid=True, today=TODAY)
    assert snapshot(db)["readers"] == []


def test_blank_audience_name_is_refused(db, tmp_path):
    """An import needs an audience name."""
    with pytest.raises(InvalidAudience):
        import_audience(db, write_csv(tmp_path, "ann@example.com,,,,,,,,"), "  ", today=TODAY)


# -- skip_invalid --------------------------------------------------------------------------------

def test_skip_invalid_imports_good_rows_and_keeps_rejected_rows_as_written(db, tmp_path):
    """With skip_invalid the good rows are imported and the bad ones written, header first, as they were."""
    rows = [row for row, _ in BAD_ROWS]
    path = write_csv(tmp_path, *rows)
    report = import_audience(db, path, "weekly", skip_invalid=True, today=TODAY)
    good = [row for row, field in BAD_ROWS if field is None]
    bad = [row for row, field in BAD_ROWS if field is not None]
    assert (report.created, report.rejected) == (len(good), len(bad))
    assert report.rejected_file == tmp_path / "readers.rejected.csv"
    # Line endings inside the quoted cell are read with universal newlines, so CR/LF comes back as LF.
    written = [row.replace("\r\n", "\n") for row in bad]
    assert report.rejected_file.read_text(encoding="utf-8") == "\n".join([HEADER, *written]) + "\n"
    assert sorted(r[3] for r in snapshot(db)["readers"]) == ["ann@example.com", "ivy@example.com"]
    assert [p.line for p in report.problems] == [line for line, _ in bad_lines()]


def test_skip_invalid_writes_to_the_named_rejected_file(db, tmp_path):
    """A rejected_file argument says where the rejected rows go."""
    path = write_csv(tmp_path, "ann@example.com,,,,,,,,", "bad,,,,,,,,")
    out = tmp_path / "elsewhere" / "bad.csv"
    out.parent.mkdir()
    report = import_audience(db, path, "weekly", skip_invalid=True, rejected_file=out, today=TODAY)
    assert report.rejected_file == out
    assert out.read_text(encoding="utf-8") == f"{HEADER}\nbad,,,,,,,,\n"


def test_skip_invalid_jsonl_rejected_file_has_only_the_bad_lines(db, tmp_path):
    """For JSONL the rejected file holds the bad lines as written, with no header."""
    path = tmp_path / "readers.jsonl"
    bad = ['{"email": "nope"}', '{"email": "bob@example.com", "status": "paused"}']
    path.write_text('{"email": "ann@example.com"}\n' + "\n".join(bad) + "\n", encoding="utf-8")
    report = import_audience(db, path, "weekly", skip_invalid=True, today=TODAY)
    assert report.rejected_file == tmp_path / "readers.rejected.jsonl"
    assert report.rejected_file.read_text(encoding="utf-8") == "\n".join(bad) + "\n"
    assert report.created == 1


def test_rejected_multi_line_row_is_written_whole(db, tmp_path):
    """A rejected row whose quoted cell spans lines is written whole, and the next rows stay aligned."""
    path = write_csv(tmp_path, 'ann@example.com,"Ann\nLee",,,,,,,', "bad,,,,,,,,", "cy@example.com,,,,,,,,")
    report = import_audience(db, path, "weekly", skip_invalid=True, today=TODAY)
    assert report.rejected_file.read_text(encoding="utf-8") == (
        f'{HEADER}\nann@example.com,"Ann\nLee",,,,,,,\nbad,,,,,,,,\n')


def test_rejected_row_with_form_feed_is_written_as_it_was(db, tmp_path):
    """A row rejected for a form feed in a name is written as it was, and the next rejected row too."""
    path = write_csv(tmp_path, "ann@example.com,Ann\x0cLee,,,,,,,", "not-an-email,Bob,,,,,,,",
                     "cy@example.com,,,,,,,,")
    report = import_audience(db, path, "weekly", skip_invalid=True, today=TODAY)
    assert report.rejected_file.read_text(encoding="utf-8") == (
        f"{HEADER}\nann@example.com,Ann\x0cLee,,,,,,,\nnot-an-email,Bob,,,,,,,\n")


# -- re-import -----------------------------------------------------------------------------------

def test_reimport_updates_names_and_declared_interests_but_keeps_learned_columns(db, tmp_path):
    """A re-import restates names and declared interests and leaves learned clicks and exposures alone."""
    import_audience(db, write_csv(tmp_path, "ann@example.com,Ann,Lee,climate:0.8;ai:0.4,,,,,", name="one.csv"),
                    "weekly", today=TODAY)
    ann_id = reader(db, "ann@example.com").id
    with db.session() as session:
        session.execute(update(ReaderInterest).where(ReaderInterest.reader_id == ann_id, ReaderInterest.topic == "ai")
                        .values(learned_clicks=3.0, learned_exposures=7.5))
        session.execute(update(ReaderInterest).where(ReaderInterest.reader_id == ann_id,
                                                     ReaderInterest.topic == "climate")
                        .values(learned_clicks=1.0, learned_exposures=2.0))
    report = import_audience(db, write_csv(tmp_path, "ANN@example.com,Annie,Lee-Smith,climate:0.3;design,,,,,",
                                           name="two.csv"), "weekly", today=TODAY)
    assert (report.created, report.updated) == (0, 1)
    ann = reader(db, "ann@example.com")
    assert (ann.id, ann.first_name, ann.last_name) == (ann_id, "Annie", "Lee-Smith")
    assert interests(db, "ann@example.com") == {
        "climate": (0.3, 1.0, 2.0),
        "ai": (None, 3.0, 7.5),  # no longer declared, still learned
        "design": (1.0, 0.0, 0.0),
    }


def test_reimport_without_interests_leaves_declared_interests(db, tmp_path):
    """A re-import whose file says nothing about interests (empty cell) keeps the declared ones."""
    import_audience(db, write_csv(tmp_path, "ann@example.com,Ann,,climate:0.8,,,,,", name="one.csv"), "weekly",
                    today=TODAY)
    import_audience(db, write_csv(tmp_path, "ann@example.com,,Lee,,,,,,", name="two.csv"), "weekly", today=TODAY)
    ann = reader(db, "ann@example.com")
    assert (ann.first_name, ann.last_name) == ("Ann", "Lee")  # a blank name does not erase the stored one
    assert interests(db, "ann@example.com") == {"climate": (0.8, 0.0, 0.0)}


def test_reimport_never_resubscribes_an_unsubscribed_reader(db, tmp_path):
    """A reader who unsubscribed stays unsubscribed when the file says subscribed, and is counted."""
    import_audience(db, write_csv(tmp_path, "ann@example.com,Ann,,,,,,subscribed,", "bob@example.com,Bob,,,,,,,",
                                  name="one.csv"), "weekly", today=TODAY)
    with db.session() as session:
        session.execute(update(Reader).where(Reader.email == "ann@example.com").values(status="unsubscribed"))
    report = import_audience(db, write_csv(tmp_path, "ann@example.com,Ann,,,,,,subscribed,",
                                           "bob@example.com,Bob,,,,,,subscribed,", name="two.csv"),
                             "weekly", today=TODAY)
    assert report.kept_unsubscribed == 1
    assert reader(db, "ann@example.com").status == "unsubscribed"
    assert reader(db, "bob@example.com").status == "subscribed"


def test_reimport_never_lifts_a_suppression(db, tmp_path):
    """A suppressed reader keeps the suppression through a re-import that says subscribed."""
    path = write_csv(tmp_path, "ann@example.com,Ann,,,,,,subscribed,")
    import_audience(db, path, "weekly", today=TODAY)
    with db.session() as session:
        session.execute(update(Reader).where(Reader.email == "ann@example.com").values(suppressed_reason="bounce"))
    import_audience(db, path, "weekly", today=TODAY)
    ann = reader(db, "ann@example.com")
    assert (ann.status, ann.suppressed_reason) == ("subscribed", "bounce")


def test_reimport_can_unsubscribe(db, tmp_path):
    """A file saying unsubscribed does unsubscribe a subscribed reader."""
    import_audience(db, write_csv(tmp_path, "ann@example.com,,,,,,,,", name="one.csv"), "weekly", today=TODAY)
    report = import_audience(db, write_csv(tmp_path, "ann@example.com,,,,,,,unsubscribed,", name="two.csv"),
                             "weekly", today=TODAY)
    assert report.kept_unsubscribed == 0
    assert reader(db, "ann@example.com").status == "unsubscribed"


def test_reimport_in_another_case_updates_the_same_reader(db, tmp_path):
    """Addresses are stored in lower case, so a re-import in other case updates rather than duplicates."""
    import_audience(db, write_csv(tmp_path, "Ann@Example.com,Ann,,,,,,,", name="one.csv"), "weekly", today=TODAY)
    report = import_audience(db, write_csv(tmp_path, "ANN@EXAMPLE.COM,Annie,,,,,,,", name="two.csv"), "weekly",
                             today=TODAY)
    assert (report.created, report.updated) == (0, 1)
    assert [(r[3], r[4]) for r in snapshot(db)["readers"]] == [("ann@example.com", "Annie")]


def test_reimport_moves_a_need_date(db, tmp_path):
    """A re-import restates a need's end date."""
    import_audience(db, write_csv(tmp_path, "ann@example.com,,,,hiring,2026-12-10,,,", name="one.csv"), "weekly",
                    today=TODAY)
    import_audience(db, write_csv(tmp_path, "ann@example.com,,,,hiring,2027-01-10,,,", name="two.csv"), "weekly",
                    today=TODAY)
    assert needs(db, "ann@example.com") == {"hiring": dt.date(2027, 1, 10)}


def test_same_address_in_two_audiences_is_two_readers(db, tmp_path):
    """Audiences are separate: one address imported into two audiences makes two readers."""
    path = write_csv(tmp_path, "ann@example.com,Ann,,,,,,,")
    import_audience(db, path, "weekly", today=TODAY)
    import_audience(db, path, "monthly", today=TODAY)
    state = snapshot(db)
    assert [name for _, name in state["audiences"]] == ["weekly", "monthly"]
    assert len(state["readers"]) == 2


# -- the shipped sample ------------------------------------------------------------------------

def test_shipped_sample_audience_imports_cleanly(db):
    """audiences/sample.csv imports its 400 readers with no problem."""
    report = import_audience(db, SAMPLE, "sample", today=TODAY)
    assert (report.created, report.rejected, report.problems) == (400, 0, [])
    state = snapshot(db)
    assert len(state["readers"]) == 400
    assert {r[7] for r in state["readers"]} == {"subscribed", "unsubscribed"}
    assert state["interests"] and state["needs"]


def test_sample_generator_reproduces_the_shipped_file(tmp_path):
    """write_sample_csv(path, 400, seed=7) writes audiences/sample.csv byte for byte."""
    path = write_sample_csv(tmp_path / "sample.csv", 400, seed=7)
    assert path.read_bytes() == SAMPLE.read_bytes()


def test_sample_generator_depends_on_its_seed(tmp_path):
    """Another seed gives another audience, and the same seed the same one again."""
    one = write_sample_csv(tmp_path / "a.csv", 50, seed=8).read_bytes()
    assert write_sample_csv(tmp_path / "b.csv", 50, seed=8).read_bytes() == one
    assert write_sample_csv(tmp_path / "c.csv", 50, seed=7).read_bytes() != one


# -- streaming: batches, staging and the set-based merge ------------------------------------------

def check_bad_row_late_in_a_long_file_imports_nothing(db, folder: Path) -> None:
    """Shared with the PostgreSQL tests: batches already staged are dropped when a later row is bad."""
    path = write_sample_csv(folder / "long.csv", 260, seed=5)
    with path.open("a", encoding="utf-8") as file:
        file.write("not-an-address,Late,,,,,,,\n")
    before = snapshot(db)
    with pytest.raises(InvalidAudience) as refused:
        import_audience(db, path, "weekly", today=TODAY, batch_size=50)
    assert [str(p) for p in refused.value.problems] == [
        f"{path}:262: email=not-an-address: An email address must have an @-sign."]
    assert snapshot(db) == before


def check_duplicates_across_batches_name_the_first_line(db, folder: Path, workers: int = 1) -> None:
    """Shared with the PostgreSQL tests: an address seen batches earlier is reported with that line."""
    rows = [f"r{i}@example.com,R{i},,,,,,," for i in range(120)] + ["R7@Example.com,Again,,,,,,,"]
    path = write_csv(folder, *rows)
    with pytest.raises(InvalidAudience) as refused:
        import_audience(db, path, "weekly", today=TODAY, batch_size=25, workers=workers)
    assert [str(p) for p in refused.value.problems] == [
        f"{path}:122: email=r7@example.com: duplicate of line 9 (addresses compare case-insensitively)"]
    report = import_audience(db, path, "weekly", today=TODAY, batch_size=25, skip_invalid=True, workers=workers)
    assert (report.created, report.rejected) == (120, 1)
    assert report.rejected_file.read_text(encoding="utf-8") == f"{HEADER}\nR7@Example.com,Again,,,,,,,\n"
    assert reader(db, "r7@example.com").first_name == "R7"


def by_address(db, audience: str) -> list[tuple]:
    """Every reader of `audience` with their interests and needs, keyed by address (ids and times left out)."""
    with db.session() as session:
        aid = session.scalar(select(Audience.id).where(Audience.name == audience))
        readers = session.execute(select(Reader.id, Reader.email, Reader.first_name, Reader.last_name, Reader.timezone,
                                         Reader.status, Reader.tags).where(Reader.audience_id == aid)).all()
        topics = session.execute(select(ReaderInterest.reader_id, ReaderInterest.topic, ReaderInterest.declared_weight,
                                        ReaderInterest.learned_clicks)).all()
        wanted = session.execute(select(ReaderNeed.reader_id, ReaderNeed.topic, ReaderNeed.until)).all()
    return sorted((email, first, last, zone, status, tuple(tags or ()),
                   sorted((t, w, c) for rid_, t, w, c in topics if rid_ == rid),
                   sorted((t, u) for rid_, t, u in wanted if rid_ == rid))
                  for rid, email, first, last, zone, status, tags in readers)


def check_small_batches_import_what_one_batch_imports(db, folder: Path) -> None:
    """Shared with the PostgreSQL tests: a file staged in many small batches imports what one batch imports.

    A first import, then a re-import that updates half the readers (names, interests, needs,
    statuses) and creates the others: the same counts and the same readers either way.
    """
    first = write_sample_csv(folder / "first.csv", 240, seed=11)
    second = write_sample_csv(folder / "second.csv", 300, seed=12)  # other names, interests and needs
    text = second.read_text(encoding="utf-8").splitlines()
    # Half the second file's addresses are the first file's, so the re-import updates and creates.
    addresses = [line.split(",", 1)[0] for line in first.read_text(encoding="utf-8").splitlines()[1:]]
    rows = [addresses[i] + "," + row.split(",", 1)[1] if i % 2 == 0 and i < len(addresses) else row
            for i, row in enumerate(text[1:])]
    second.write_text("\n".join([text[0], *rows]) + "\n", encoding="utf-8")
    reports = {}
    for audience, size in (("whole", 10_000), ("batched", 7)):
        made = import_audience(db, first, audience, today=TODAY, batch_size=size)
        again = import_audience(db, second, audience, today=TODAY, batch_size=size)
        reports[audience] = (made.created, made.updated, again.created, again.updated, again.kept_unsubscribed)
    assert reports["batched"] == reports["whole"]
    assert reports["whole"][:2] == (240, 0) and reports["whole"][3] >= 120  # (seeds may share a few addresses)
    assert by_address(db, "batched") == by_address(db, "whole")
    assert any(needs for *_, needs in by_address(db, "whole")) and any(topics for *_, topics, _ in by_address(db, "whole"))


STATUS_CASES = [(current, suppressed, incoming)
                for current in ("subscribed", "unsubscribed", "cleaned", "nonsubscribed")
                for suppressed in (False, True)
                for incoming in ("", "subscribed", "unsubscribed", "cleaned", "nonsubscribed")]


def check_reimport_statuses_follow_next_status(db, folder: Path) -> None:
    """Shared with the PostgreSQL tests: the merge's SQL gives every reader the status `next_status` gives."""
    from pipeline.audience.importer import next_status

    emails = [f"p{i}@example.com" for i in range(len(STATUS_CASES))]
    first = [f"{e},P,,,,,,{current}," for e, (current, _, _) in zip(emails, STATUS_CASES)]
    import_audience(db, write_csv(folder, *first, name="first.csv"), "weekly", today=TODAY)
    with db.session() as session:
        for email, (_, suppressed, _) in zip(emails, STATUS_CASES):
            if suppressed:
                session.execute(update(Reader).where(Reader.email == email).values(suppressed_reason="bounce"))
    second = [f"{e},,,,,,,{incoming}," for e, (_, _, incoming) in zip(emails, STATUS_CASES)]
    report = import_audience(db, write_csv(folder, *second, name="second.csv"), "weekly", today=TODAY, batch_size=7)
    expected, kept = [], 0
    for current, suppressed, incoming in STATUS_CASES:
        new = next_status(current, suppressed, incoming or None)
        expected.append(new or current)
        kept += new is None and incoming not in ("", current)
    with db.session() as session:
        found = dict(session.execute(select(Reader.email, Reader.status)).all())
    assert [found[e] for e in emails] == expected
    assert (report.updated, report.kept_unsubscribed) == (len(emails), kept)
    assert {reader(db, e).first_name for e in emails} == {"P"}  # an empty cell keeps the name


def test_bad_row_late_in_a_long_file_imports_nothing(db, tmp_path):
    """A bad last row, after batches were already staged, leaves the database as it was."""
    check_bad_row_late_in_a_long_file_imports_nothing(db, tmp_path)


def test_duplicates_across_batches_name_the_first_line(db, tmp_path):
    """A duplicate address batches after its first row is refused, naming that row's line."""
    check_duplicates_across_batches_name_the_first_line(db, tmp_path)


def test_small_batches_import_what_one_batch_imports(db, tmp_path):
    """Seven-row batches give the readers, interests, needs and counts one batch of the whole file gives."""
    check_small_batches_import_what_one_batch_imports(db, tmp_path)


def test_reimport_statuses_follow_next_status(db, tmp_path):
    """Every combination of current status, suppression and file status ends as next_status says."""
    check_reimport_statuses_follow_next_status(db, tmp_path)


def test_progress_reports_every_batch_up_to_the_file_size(db, tmp_path):
    """The progress callback hears once per batch, never backwards, and ends at the file's size."""
    path = write_sample_csv(tmp_path / "readers.csv", 100, seed=5)
    seen: list[tuple[int, int]] = []
    import_audience(db, path, "weekly", today=TODAY, batch_size=30, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == 4
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)
