"""Checking an audience file's rows in worker processes: the same problems, readers and order as checking here."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os

import pytest
from sqlalchemy import select

from pipeline.audience.checking import AUTO_WORKERS_FROM_BYTES, checking_workers
from pipeline.audience.importer import import_audience
from pipeline.content.topics import Taxonomy, default_taxonomy
from pipeline.errors import ImportInterrupted, InvalidAudience
from pipeline.store import open_database
from pipeline.store.models import Reader, ReaderInterest, ReaderNeed
from tests.test_audience_importer import TODAY, write_csv

ROWS = [
    "ana@example.com,Ana,Silva,ai:1;climate:0.5,data,2027-01-10,Europe/Lisbon,subscribed,a;b",
    "BEN@Example.com,Ben,,security,,,,,",
    '"cy@example.com","Cy, ""the"" one",Li,,,,Asia/Tokyo,,',
    "dee@example.com,Dee,,remote-work:0.2,,,America/New_York,unsubscribed,",
    '"eve@example.com","Eve",,,,,,,',
    "fay@example.com,Fay,,,product,,,,",
]
BAD = [
    "not-an-address,Bad,,,,,,,",
    "ana@EXAMPLE.com,Ana again,,,,,,,",  # a duplicate of line 2, several batches later
    "gus@example.com,Gus,,astrology,,,,,",
    "hal@example.com,Hal,,,,,Mars/Olympus,,",
    '"ivy@example.com","Ivy\nSecond line",,,,,,,',  # a quoted cell over two lines: one row, two lines
]


def readers_and_profiles(url: str) -> dict[str, list[tuple]]:
    """Every reader's fields, interests and needs by address (ids and public ids differ between runs)."""
    db = open_database(url)
    with db.session() as session:
        found = {
            "readers": sorted(session.execute(select(Reader.email, Reader.first_name, Reader.last_name,
                                                     Reader.timezone, Reader.status, Reader.tags)).all()),
            "interests": sorted(session.execute(select(Reader.email, ReaderInterest.topic,
                                                       ReaderInterest.declared_weight).join(Reader)).all()),
            "needs": sorted(session.execute(select(Reader.email, ReaderNeed.topic, ReaderNeed.until)
                                            .join(Reader)).all()),
        }
    db.dispose()
    return found


def many_rows(count: int) -> list[str]:
    """`count` valid rows after the fixed ones."""
    return [f"reader{n}@example.org,R{n},,ai:0.{n % 10},,,Europe/Paris,," for n in range(count)]


def test_worker_processes_import_exactly_what_this_process_imports(tmp_path):
    """With two checking processes and small batches, the database ends up as with checking here."""
    path = write_csv(tmp_path, *ROWS, *many_rows(40))
    found = {}
    for workers in (1, 2):
        url = f"sqlite:///{tmp_path / f'w{workers}.db'}"
        report = import_audience(open_database(url), path, "club", today=TODAY, batch_size=3, workers=workers)
        assert (report.created, report.updated, report.rejected) == (46, 0, 0)
        found[workers] = readers_and_profiles(url)
    assert found[1] == found[2]
    assert ("ben@example.com", "Ben", "", "", "subscribed", []) in found[2]["readers"]


def test_worker_processes_report_the_same_problems_in_file_order(tmp_path):
    """Every problem, with its line, is the same and in the same order whoever checked the rows."""
    path = write_csv(tmp_path, *ROWS, *many_rows(10), *BAD)
    messages = {}
    for workers in (1, 2):
        db = open_database(f"sqlite:///{tmp_path / f'w{workers}.db'}")
        with pytest.raises(InvalidAudience) as refused:
            import_audience(db, path, "club", today=TODAY, batch_size=2, workers=workers)
        messages[workers] = [str(problem) for problem in refused.value.problems]
        assert readers_and_profiles(f"sqlite:///{tmp_path / f'w{workers}.db'}")["readers"] == []
    assert messages[1] == messages[2]
    assert [m.split(":")[1] for m in messages[2]] == ["18", "19", "20", "21", "22"]
    assert "duplicate of line 2" in messages[2][1]


def test_worker_processes_keep_the_same_rejected_rows(tmp_path):
    """With --skip-invalid the rejected-rows file is the same, row for row, as when checking here."""
    path = write_csv(tmp_path, *ROWS, *BAD, *many_rows(7))
    kept = {}
    for workers in (1, 2):
        rejected = tmp_path / f"rejected-{workers}.csv"
        report = import_audience(open_database(f"sqlite:///{tmp_path / f'w{workers}.db'}"), path, "club",
                                 today=TODAY, skip_invalid=True, rejected_file=rejected, batch_size=4,
                                 workers=workers)
        assert (report.created, report.rejected) == (13, 5)
        kept[workers] = rejected.read_text(encoding="utf-8")
    assert kept[1] == kept[2] and kept[2].count("\n") == 7  # the header, five rows, one of them on two lines


def test_how_many_processes_check_rows():
    """A setting wins; otherwise a small file is checked here, a big one by the cores the importer and the
    database leave (up to four), and here again when they leave fewer than two."""
    assert checking_workers(3, 10) == 3
    assert checking_workers(1, AUTO_WORKERS_FROM_BYTES * 100) == 1
    assert checking_workers(0, AUTO_WORKERS_FROM_BYTES - 1) == 1
    spare = len(os.sched_getaffinity(0)) - 2
    assert checking_workers(0, AUTO_WORKERS_FROM_BYTES) == (min(spare, 4) if spare > 1 else 1)


class _DyingTaxonomy(Taxonomy):
    """A taxonomy that kills the checking process that looks up the topic `boom` (the parent never does)."""

    def __contains__(self, topic: object) -> bool:
        if topic == "boom" and multiprocessing.parent_process() is not None:
            os._exit(9)
        return super().__contains__(topic)


def test_a_killed_checking_process_imports_nothing(tmp_path):
    """A worker that dies mid-import stops it with a one-line error and leaves the database as it was."""
    base = default_taxonomy()
    taxonomy = _DyingTaxonomy({**base.labels, "boom": "Boom"}, base.synonyms)
    path = write_csv(tmp_path, *many_rows(30), "x@example.com,X,,boom,,,,,")
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    with pytest.raises(ImportInterrupted) as stopped:
        import_audience(open_database(url), path, "club", today=TODAY, taxonomy=taxonomy, batch_size=5, workers=2)
    assert str(stopped.value).startswith(f"{path}: a process checking its rows stopped")
    assert "\n" not in str(stopped.value)
    assert readers_and_profiles(url)["readers"] == []


def test_the_day_rows_are_checked_on_travels_to_the_workers(tmp_path):
    """A need's default expiry comes from the import's day, also when another process checks the row."""
    path = write_csv(tmp_path, "ida@example.com,Ida,,,data,,,,", *many_rows(5))
    url = f"sqlite:///{tmp_path / 'day.db'}"
    import_audience(open_database(url), path, "club", today=dt.date(2030, 1, 1), batch_size=2, workers=2)
    assert readers_and_profiles(url)["needs"] == [("ida@example.com", "data", dt.date(2030, 2, 15))]


def test_checking_processes_are_gone_after_the_import(tmp_path):
    """No checking process outlives its import."""
    path = write_csv(tmp_path, *many_rows(20))
    import_audience(open_database(f"sqlite:///{tmp_path / 'gone.db'}"), path, "club", today=TODAY, batch_size=4,
                    workers=2)
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_that_cannot_be_read_past_a_line_is_refused_either_way(tmp_path, workers):
    """A quote left open stops the import at its line, whoever checks the rows before it."""
    path = write_csv(tmp_path, *many_rows(6), '"zed@example.com,Zed,,,,,,,', *many_rows(3))
    with pytest.raises(InvalidAudience) as refused:
        import_audience(open_database(f"sqlite:///{tmp_path / 'open.db'}"), path, "club", today=TODAY,
                        batch_size=2, workers=workers)
    assert [str(p).split(":")[1] for p in refused.value.problems] == ["8"]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_import_stopped_midway_leaves_nothing_and_no_checking_process(tmp_path, workers):
    """Interrupted after its first batches were staged, an import leaves the database as it was.

    The interrupt reaches the importer from its progress callback; the checking processes stop with it.
    """
    path = write_csv(tmp_path, *many_rows(60))
    url = f"sqlite:///{tmp_path / 'stopped.db'}"
    merged: list[int] = []

    def interrupt(done: int, total: int) -> None:
        merged.append(done)
        if len(merged) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_audience(open_database(url), path, "club", today=TODAY, batch_size=5, workers=workers,
                        progress=interrupt)
    assert len(merged) == 2
    assert readers_and_profiles(url)["readers"] == []
    assert multiprocessing.active_children() == []
