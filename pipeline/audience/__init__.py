"""Readers and their profiles: importing audiences, loading profiles, reader tokens."""

from __future__ import annotations

from pipeline.audience.addresses import display_address, lookup_address, stored_address
from pipeline.audience.importer import ImportReport, import_audience
from pipeline.audience.profile import Profile, TopicSignal
from pipeline.audience.records import ReaderRecord, read_audience_file

__all__ = ["ImportReport", "Profile", "ReaderRecord", "TopicSignal", "display_address", "import_audience",
           "lookup_address", "read_audience_file", "stored_address"]
