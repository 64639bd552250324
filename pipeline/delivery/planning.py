"""Planning a send: choose each reader's sections and record them in the ledger."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.audience.directory import load_profiles
from pipeline.content.selection import select_sections
from pipeline.delivery.ledger import PlannedEntry, SendLedger
from pipeline.delivery.preparation import PreparedEdition

__all__ = ["PlanReport", "plan_readers"]


@dataclass
class PlanReport:
    """What planning a chunk of readers found."""

    readers: int = 0
    variants: Counter = field(default_factory=Counter)
    sections: Counter = field(default_factory=Counter)

    def add(self, other: PlanReport) -> None:
        """Fold another chunk's report into this one."""
        self.readers += other.readers
        self.variants.update(other.variants)
        self.sections.update(other.sections)


def plan_readers(prepared: PreparedEdition, ledger: SendLedger, audience_id: int, reader_ids: Sequence[int],
                 *, today: dt.date, record: bool = True) -> PlanReport:
    """Select sections for `reader_ids` and, unless `record` is false (dry run), store the plan."""
    report = PlanReport()
    entries = []
    for profile in load_profiles(ledger.db, reader_ids):
        selection = select_sections(prepared.edition, profile, today=today)
        variant_id = selection.variant_id
        if record:
            entries.append(PlannedEntry(profile.reader_id, variant_id,
                                        [[p.section_id, p.reason] for p in selection.picks]))
        else:
            prepared.layout.variant(selection.section_ids)  # a dry run still renders every variant
        report.readers += 1
        report.variants[variant_id] += 1
        report.sections.update(selection.section_ids)
    if record:
        ledger.record_plan(audience_id, entries)
    return report
