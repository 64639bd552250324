"""The holdout: its share, stable membership, the editorial copy it gets, and its mark in the send ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys

import pytest

from pipeline.audience.directory import load_profiles, sendable_reader_ids
from pipeline.audience.importer import import_audience
from pipeline.audience.profile import Profile
from pipeline.content.holdout import in_holdout
from pipeline.content.policy import editorial_sections
from pipeline.delivery.ledger import SendLedger
from pipeline.delivery.planning import (
    PlanSettings,
    choose_for_reader,
    plan_readers,
    plan_settings,
)
from pipeline.delivery.preparation import prepare_edition
from pipeline.errors import ConfigurationError
from tests.conftest import SAMPLE_AUDIENCE, TEMPLATES

TODAY = dt.date(2026, 12, 7)


def synthetic(count: int) -> list[Profile]:
    """`count` readers with random-looking public ids, as the importer makes them."""
    import hashlib

    return [Profile(reader_id=i, email=f"r{i}@example.com", public_id=hashlib.md5(str(i).encode()).hexdigest())
            for i in range(count)]


@pytest.fixture
def prepared(edition_path):
    """The sample edition, validated and compiled."""
    return prepare_edition(edition_path, TEMPLATES)


@pytest.fixture
def audience(db) -> list[int]:
    """The sample audience imported into the test database; returns its sendable reader ids."""
    import_audience(db, SAMPLE_AUDIENCE, "sample", today=TODAY)
    return sendable_reader_ids(db, 1)


def test_share_is_close_to_the_configured_share():
    """Over 10,000 readers the holdout holds the configured share, within three standard errors."""
    readers = synthetic(10_000)
    for share in (0.1, 0.25):
        members = sum(in_holdout(p, share) for p in readers)
        assert abs(members / len(readers) - share) < 3 * (share * (1 - share) / len(readers)) ** 0.5
    assert not any(in_holdout(p, 0.0) for p in readers)
    assert all(in_holdout(p, 1.0) for p in readers)


def test_membership_is_stable_across_processes_and_grows_with_the_share():
    """Another process (another hash seed) finds the same members, and a larger share only adds readers."""
    readers = synthetic(2_000)
    here = [p.reader_id for p in readers if in_holdout(p, 0.1)]
    code = ("import hashlib\n"
            "from pipeline.audience.profile import Profile\n"
            "from pipeline.content.holdout import in_holdout\n"
            "ps = [Profile(reader_id=i, email='x', public_id=hashlib.md5(str(i).encode()).hexdigest())\n"
            "      for i in range(2000)]\n"
            "print(' '.join(str(p.reader_id) for p in ps if in_holdout(p, 0.1)))\n")
    there = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONHASHSEED="987")).stdout.split()
    assert [int(r) for r in there] == here
    assert set(here) < {p.reader_id for p in readers if in_holdout(p, 0.2)}
    # Keyed by the public id: the same person under another row id keeps their place.
    assert [in_holdout(dataclasses.replace(p, reader_id=p.reader_id + 7), 0.1) for p in readers] == \
        [in_holdout(p, 0.1) for p in readers]


def test_holdout_readers_get_the_editorial_selection(edition_path, prepared):
    """A holdout reader gets the editor's copy whatever their interests; the others get their own."""
    edition = prepared.edition
    settings = PlanSettings(holdout_share=0.3)
    editorial = editorial_sections(edition)
    held, personal, followed = 0, 0, 0
    for profile in synthetic(300):
        profile = dataclasses.replace(profile, interests={"funding": 1.0, "design": 1.0})
        selection, holdout = choose_for_reader(edition, profile, today=TODAY, settings=settings)
        if holdout:
            held += 1
            assert selection == editorial
        else:
            personal += 1
            followed += "seed-terms" in selection.section_ids  # editorial order never reaches it
    assert held and personal
    assert followed > 0.8 * personal


def test_plan_readers_records_holdout_in_the_ledger(db, audience, prepared):
    """plan_readers marks holdout readers in the ledger, with the editorial picks, and the claim carries the mark."""
    ledger = SendLedger(db, prepared.edition.id)
    report = plan_readers(prepared, ledger, 1, audience, today=TODAY, holdout_share=0.3, seed=4)
    entries = ledger.entries()
    expected = {p.reader_id for p in load_profiles(db, audience) if in_holdout(p, 0.3)}
    assert [e.reader_id for e in entries] == audience
    assert {e.reader_id for e in entries if e.holdout} == expected
    assert report.holdout == len(expected) and 0.2 < len(expected) / len(audience) < 0.4
    editorial = [[p.section_id, p.reason] for p in editorial_sections(prepared.edition).picks]
    assert all(e.picks == editorial for e in entries if e.holdout)
    claimed = [entry for i, batch in enumerate(ledger.planned_batches(1000))
               for entry in ledger.claim(batch, f"batch-{i}", "outbox")[0]]
    assert sorted(c.reader_id for c in claimed) == audience
    assert {c.reader_id for c in claimed if c.holdout} == expected


def test_holdout_is_the_same_readers_in_every_edition(db, audience, prepared):
    """Two editions planned for the same audience hold out exactly the same readers."""
    marks = []
    for edition_id in ("2026-12-07", "2026-12-14"):
        ledger = SendLedger(db, edition_id)
        plan_readers(prepared, ledger, 1, audience, today=TODAY, holdout_share=0.1)
        marks.append({e.reader_id for e in ledger.entries() if e.holdout})
    assert marks[0] == marks[1] and marks[0]


def test_replanning_picks_the_same_sections(db, audience, prepared):
    """Planning the same readers again (a resumed send) records the same picks for everyone."""
    ledger = SendLedger(db, prepared.edition.id)
    plan_readers(prepared, ledger, 1, audience, today=TODAY, seed=11)
    first = ledger.entries()
    plan_readers(prepared, ledger, 1, audience, today=TODAY, seed=11)
    assert ledger.entries() == first
    plan_readers(prepared, ledger, 1, audience, today=TODAY, seed=12)
    assert ledger.entries() != first


def test_settings_come_from_the_environment(monkeypatch):
    """READERFIRST_* variables set the defaults, arguments win over them, and bad values name the variable."""
    monkeypatch.setenv("READERFIRST_HOLDOUT_SHARE", "0.25")
    monkeypatch.setenv("READERFIRST_EXPLORATION", "0.2")
    monkeypatch.setenv("READERFIRST_POLICY_SEED", "42")
    monkeypatch.setenv("READERFIRST_POLICY", "rule")
    assert plan_settings() == PlanSettings(policy="rule", seed=42, exploration=0.2, holdout_share=0.25)
    assert plan_settings(holdout_share=0.0, policy="thompson").holdout_share == 0.0
    monkeypatch.setenv("READERFIRST_HOLDOUT_SHARE", "10%")
    with pytest.raises(ConfigurationError, match="READERFIRST_HOLDOUT_SHARE='10%'"):
        plan_settings()
    monkeypatch.setenv("READERFIRST_HOLDOUT_SHARE", "1.5")
    with pytest.raises(ConfigurationError, match="READERFIRST_HOLDOUT_SHARE=1.5"):
        plan_settings()
    assert plan_settings(environ={}) == PlanSettings()
