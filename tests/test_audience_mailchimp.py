"""Mailchimp export files import with their people's real status, and never resubscribe anyone."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.audience.directory import audience_id, sendable_reader_ids
from pipeline.audience.importer import import_audience, next_status
from pipeline.audience.mailchimp import StatusUnclear, export_status
from pipeline.errors import InvalidAudience
from pipeline.store.models import Reader

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mailchimp"
SUBSCRIBED = FIXTURES / "subscribed_members_export_7c1f2e9a0b.csv"
UNSUBSCRIBED = FIXTURES / "unsubscribed_members_export_7c1f2e9a0b.csv"
CLEANED = FIXTURES / "cleaned_members_export_7c1f2e9a0b.csv"
NONSUBSCRIBED = FIXTURES / "nonsubscribed_members_export_7c1f2e9a0b.csv"
TODAY = dt.date(2026, 12, 1)


def statuses(db) -> dict[str, str]:
    """Every reader's address and status."""
    with db.session() as session:
        return dict(session.execute(select(Reader.email, Reader.status)).all())


def as_subscribed_export(sources: list[Path], target: Path) -> Path:
    """The people of `sources` written as one subscribed export (Mailchimp's subscribed header row)."""
    with SUBSCRIBED.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, header, extrasaction="ignore", lineterminator="\r\n")
        writer.writeheader()
        for source in sources:
            with source.open(encoding="utf-8", newline="") as f:
                writer.writerows(csv.DictReader(f))
    return target


def copy_as(source: Path, folder: Path, name: str) -> Path:
    """`source` saved under another file name, as a person renaming an export would."""
    target = folder / name
    shutil.copyfile(source, target)
    return target


@pytest.mark.parametrize(("path", "status", "count"), [
    (SUBSCRIBED, "subscribed", 3), (UNSUBSCRIBED, "unsubscribed", 2), (CLEANED, "cleaned", 1),
    (NONSUBSCRIBED, "nonsubscribed", 1),
])
def test_each_export_file_imports_with_its_status(db, path, status, count):
    """Each of Mailchimp's four export files imports its people with that file's status, and only subscribed are sendable."""
    report = import_audience(db, path, "main", today=TODAY)
    assert report.created == count
    assert set(statuses(db).values()) == {status}
    sendable = sendable_reader_ids(db, audience_id(db, "main"))
    assert len(sendable) == (count if status == "subscribed" else 0)


def test_full_export_keeps_names_tags_and_time_zones(db):
    """The real header rows map to our fields: names (accents kept), Mailchimp's quoted TAGS, TIMEZONE."""
    import_audience(db, SUBSCRIBED, "main", today=TODAY)
    with db.session() as session:
        ines = session.scalars(select(Reader).where(Reader.email == "ines.okafor@example.org")).one()
        tomas = session.scalars(select(Reader).where(Reader.email == "tomas.lindqvist@example.net")).one()
    assert (ines.first_name, ines.tags, ines.timezone) == ("Ines", ["Customer", "Early reader"], "Europe/London")
    assert (tomas.first_name, tomas.timezone) == ("Tomás", "Europe/Stockholm")


def test_reimports_never_resubscribe(db):
    """Subscribed file, then unsubscribed file, then subscribed file again: the reader who left stays unsubscribed."""
    import_audience(db, SUBSCRIBED, "main", today=TODAY)
    assert statuses(db)["mara.quint@example.com"] == "subscribed"
    import_audience(db, UNSUBSCRIBED, "main", today=TODAY)
    assert statuses(db)["mara.quint@example.com"] == "unsubscribed"
    again = import_audience(db, SUBSCRIBED, "main", today=TODAY)
    assert statuses(db)["mara.quint@example.com"] == "unsubscribed"
    assert again.kept_unsubscribed == 1
    assert statuses(db)["ines.okafor@example.org"] == "subscribed"


def test_cleaned_and_suppressed_readers_are_not_resubscribed(db, tmp_path):
    """A cleaned reader, and a suppressed one, stay out of every send when a subscribed export lists them again."""
    import_audience(db, CLEANED, "main", today=TODAY)
    import_audience(db, SUBSCRIBED, "main", today=TODAY)
    with db.write_transaction() as connection:
        connection.execute(Reader.__table__.update().where(Reader.email == "ines.okafor@example.org")
                           .values(suppressed_reason="bounce"))
    import_audience(db, as_subscribed_export([SUBSCRIBED, CLEANED], tmp_path / "subscribed_members_export_2.csv"),
                    "main", today=TODAY)
    assert statuses(db)["old.address@example.com"] == "cleaned"
    sendable = sendable_reader_ids(db, audience_id(db, "main"))
    with db.session() as session:
        sent_to = set(session.scalars(select(Reader.email).where(Reader.id.in_(sendable))))
    assert sent_to == {"tomas.lindqvist@example.net", "mara.quint@example.com"}


def test_nonsubscribed_contact_who_opts_in_is_subscribed_but_unsubscribed_is_not_demoted(db, tmp_path):
    """A non-subscribed contact later in the subscribed export is subscribed; an unsubscribed one never becomes non-subscribed."""
    import_audience(db, NONSUBSCRIBED, "main", today=TODAY)
    import_audience(db, copy_as(NONSUBSCRIBED, tmp_path, "subscribed_members_export_3.csv"), "main", today=TODAY)
    assert statuses(db)["shop.buyer@example.net"] == "subscribed"

    import_audience(db, UNSUBSCRIBED, "main", today=TODAY)
    as_nonsubscribed = as_subscribed_export([UNSUBSCRIBED], tmp_path / "nonsubscribed_members_export_4.csv")
    report = import_audience(db, as_nonsubscribed, "main", today=TODAY)
    assert statuses(db)["mara.quint@example.com"] == "unsubscribed" and report.kept_unsubscribed == 2


def test_renamed_subscribed_export_is_refused_until_status_is_stated(db, tmp_path):
    """A subscribed export saved as members.csv could be non-subscribed people: refused, and --status settles it."""
    renamed = copy_as(SUBSCRIBED, tmp_path, "members.csv")
    with pytest.raises(InvalidAudience) as caught:
        import_audience(db, renamed, "main", today=TODAY)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(renamed), 1, "status")
    assert "pass --status subscribed" in problem.reason and "\n" not in str(problem)
    assert statuses(db) == {}
    import_audience(db, renamed, "main", today=TODAY, status="subscribed")
    assert set(statuses(db).values()) == {"subscribed"}


def test_renamed_unsubscribed_export_is_told_by_its_columns(db, tmp_path):
    """An unsubscribed export under any name is unsubscribed: its UNSUB_* columns say so."""
    import_audience(db, copy_as(UNSUBSCRIBED, tmp_path, "export.csv"), "main", today=TODAY)
    assert set(statuses(db).values()) == {"unsubscribed"}


def test_columns_and_name_that_disagree_are_refused(db, tmp_path):
    """Unsubscribed people in a file named subscribed_… are refused; stating the columns' status imports them."""
    mislabelled = copy_as(UNSUBSCRIBED, tmp_path, "subscribed_members_export_9.csv")
    with pytest.raises(InvalidAudience, match="says subscribed but the columns say unsubscribed.*--status unsubscribed"):
        import_audience(db, mislabelled, "main", today=TODAY)
    with pytest.raises(InvalidAudience, match="--status subscribed contradicts the file's columns"):
        import_audience(db, mislabelled, "main", today=TODAY, status="subscribed")
    assert statuses(db) == {}
    import_audience(db, mislabelled, "main", today=TODAY, status="unsubscribed")
    assert set(statuses(db).values()) == {"unsubscribed"}


@pytest.mark.parametrize(("name", "headers", "stated", "expected"), [
    ("subscribed_members_export_1.csv", ["Email Address"], None, "subscribed"),
    ("Nonsubscribed_Members_Export_1.csv", ["Email Address"], None, "nonsubscribed"),
    ("cleaned_members_export_1.csv", ["Email Address", "CLEAN_TIME"], None, "cleaned"),
    ("x.csv", ["Email Address", "unsub_time"], None, "unsubscribed"),
    ("x.csv", ["Email Address", "CLEAN_TIME"], "cleaned", "cleaned"),
    ("x.csv", ["Email Address"], "nonsubscribed", "nonsubscribed"),
    ("unsubscribed_members_export_1.csv", ["Email Address"], "cleaned", "cleaned"),
    ("x.csv", ["Email Address"], None, StatusUnclear),
    ("x.csv", ["Email Address", "UNSUB_TIME", "CLEAN_TIME"], None, StatusUnclear),
    ("x.csv", ["Email Address", "UNSUB_TIME", "CLEAN_TIME"], "unsubscribed", StatusUnclear),
    ("cleaned_members_export_1.csv", ["Email Address", "UNSUB_TIME"], None, StatusUnclear),
    ("nonsubscribed_members_export_1.csv", ["Email Address"], "subscribed", StatusUnclear),
    ("x.csv", ["Email Address", "UNSUB_TIME"], "cleaned", StatusUnclear),
])
def test_export_status_rules(name, headers, stated, expected):
    """Columns decide, the name or --status fill in, and anything unclear or contradictory is refused."""
    if expected is StatusUnclear:
        with pytest.raises(StatusUnclear):
            export_status(Path(name), headers, stated)
    else:
        assert export_status(Path(name), headers, stated) == expected


@pytest.mark.parametrize(("current", "suppressed", "incoming", "expected"), [
    ("subscribed", False, "unsubscribed", "unsubscribed"),
    ("subscribed", False, "nonsubscribed", "nonsubscribed"),
    ("unsubscribed", False, "subscribed", None),
    ("cleaned", False, "subscribed", None),
    ("unsubscribed", False, "nonsubscribed", None),
    ("unsubscribed", False, "cleaned", "cleaned"),
    ("nonsubscribed", False, "subscribed", "subscribed"),
    ("nonsubscribed", True, "subscribed", None),
    ("subscribed", True, "subscribed", None),
    ("subscribed", False, None, None),
])
def test_next_status(current, suppressed, incoming, expected):
    """A file moves a reader away from the inbox, never back to it."""
    assert next_status(current, suppressed, incoming) == expected
