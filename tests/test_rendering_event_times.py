"""Event times: the reader's zone, the edition's language, the zone's abbreviation, dates left as written."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from pipeline.content.edition import EventDetails, load_edition
from pipeline.rendering.event_times import event_start, event_times, format_event_time
from tests.conftest import EDITION

BERLIN = EventDetails(starts="2026-12-10T18:00", location="Online", tz="Europe/Berlin")


@pytest.mark.parametrize("language,zone,expected", [
    ("en", "Europe/London", "Thu 10 Dec 2026, 17:00\u00a0GMT"),
    ("en", "America/Los_Angeles", "Thu 10 Dec 2026, 09:00\u00a0PST"),
    ("en", "Australia/Sydney", "Fri 11 Dec 2026, 04:00\u00a0AEDT"),
    ("de", "", "Do., 10. Dez. 2026, 18:00 Uhr\u00a0CET"),
    ("fr", "Europe/Paris", "jeu. 10 déc. 2026, 18:00\u00a0CET"),
    ("es", "America/Mexico_City", "jue., 10 dic. 2026, 11:00\u00a0CST"),
    ("pt-BR", "Asia/Kolkata", "Thu 10 Dec 2026, 22:30\u00a0IST"),
])
def test_event_time_in_the_readers_zone_and_language(language, zone, expected):
    """A zoned start is shown in the reader's zone (else the event's), in the language, with the abbreviation."""
    assert format_event_time(event_start(BERLIN), language, zone) == expected


def test_offset_start_and_unknown_reader_zone():
    """An ISO offset is a zone too; a reader zone that no longer exists falls back to the event's own."""
    start = event_start(EventDetails(starts="2026-07-01T09:30+02:00", location="x"))
    assert format_event_time(start, "en", "Europe/London") == "Wed 1 Jul 2026, 08:30\u00a0BST"
    assert format_event_time(start, "en", "Nowhere/Gone") == "Wed 1 Jul 2026, 09:30\u00a0UTC+02:00"


def test_dates_and_unzoned_times_are_shown_as_written():
    """A date, or a time the editor gave without a zone, is never converted and shows no zone."""
    assert format_event_time(event_start(EventDetails(starts="2026-12-10", location="x")), "en",
                             "Asia/Tokyo") == "Thu 10 Dec 2026"
    assert format_event_time(dt.datetime(2026, 12, 10, 18), "en", "Asia/Tokyo") == "Thu 10 Dec 2026, 18:00"


def test_event_times_cover_only_the_readers_event_sections():
    """Merge values are made for the event sections among the reader's picks, and nothing else."""
    edition = load_edition(EDITION)
    values = event_times(edition, ["heat-pumps-offices", "hiring-clinic", "unknown"], "Asia/Tokyo")
    assert values == {"when:hiring-clinic": "Fri 11 Dec 2026, 03:00\u00a0JST"}
    german = dataclasses.replace(edition, language="de")
    assert event_times(german, ["security-meetup"], "") == {"when:security-meetup": "Di., 15. Dez. 2026, 18:30 Uhr\u00a0UTC"}
