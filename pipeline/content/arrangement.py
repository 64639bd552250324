"""The editor's layout rules, applied to each reader's picks after selection.

Selection decides *what* a reader gets; these rules decide the order an editor would accept:

1. Sponsor sections (kinds with `role: sponsor`) are capped per copy (`max_sponsor`, default 1):
   extra ones give their place to the next section in editorial order that fits the reader
   (no opted-out topic, the per-topic cap kept). A copy with nothing but sponsors has none.
2. The lead story (kinds with `role: lead`) comes first among the reader's picks; pinned
   sections, the editor's choice for everyone, stay before it in their own order.
3. A sponsor section is never first.
4. No two neighbouring sections share a kind when an order that keeps rules 2 and 3 exists:
   the earliest section that keeps such an order possible goes next, so a copy that already
   follows the rules keeps its order exactly (a small reorder, stable otherwise).

Only the order and the sponsors change: the reasons stay those selection gave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from pipeline.audience.profile import Profile
from pipeline.content.edition import Edition, Section
from pipeline.content.selection import REASON_FILL, Pick, Selection

__all__ = ["arrange_copy", "cap_sponsors", "order_sections", "LEAD", "SPONSOR"]

LEAD = "lead"
SPONSOR = "sponsor"


def cap_sponsors(edition: Edition, picks: Sequence[Pick], profile: Profile | None = None) -> list[Pick]:
    """`picks` with at most `edition.max_sponsor` sponsor sections, the freed places filled in editorial order."""
    sections = edition.by_id
    kept: list[Pick] = []
    sponsors = 0
    for pick in picks:
        if sections[pick.section_id].role == SPONSOR:
            sponsors += 1
            if sponsors > edition.max_sponsor:
                continue
        kept.append(pick)
    if not any(sections[p.section_id].role != SPONSOR for p in kept):
        return []  # a newsletter that is only an advertisement is not sent as one
    freed = len(picks) - len(kept)
    if freed:
        kept += _fill(edition, kept, freed, profile)
    return kept


def _fill(edition: Edition, kept: list[Pick], places: int, profile: Profile | None) -> list[Pick]:
    opted = profile.opted_out if profile is not None else frozenset()
    taken = {p.section_id for p in kept}
    per_topic = Counter(t for p in kept for t in edition.by_id[p.section_id].topics)
    added: list[Pick] = []
    for section in edition.sections:
        if len(added) >= places:
            break
        if section.id in taken or section.role == SPONSOR or opted.intersection(section.topics):
            continue
        if any(per_topic[t] >= edition.max_per_topic for t in section.topics):
            continue
        added.append(Pick(section.id, 0.0, REASON_FILL))
        per_topic.update(section.topics)
    return added


def _possible(counts: Counter, after: str | None) -> bool:
    """Whether sections of these kinds can follow a section of kind `after` with no two neighbours alike.

    n sections can be laid out that way when no kind has more than ceil(n/2) of them, and
    the kind just before them at most floor(n/2) (they cannot start with it).
    """
    n = sum(counts.values())
    if n == 0:
        return True
    if max(counts.values()) > (n + 1) // 2:
        return False
    return after is None or counts.get(after, 0) <= n // 2


def order_sections(sections: Sequence[Section]) -> list[Section]:
    """`sections` in the order the layout rules want (lead first after pinned, sponsor not first, kinds alternate)."""
    fixed = [s for s in sections if s.pinned]
    rest = [s for s in sections if not s.pinned]
    if not any(s.role == LEAD for s in fixed):
        lead = next((s for s in rest if s.role == LEAD), None)
        if lead is not None:
            rest.remove(lead)
            fixed.append(lead)
    if fixed and fixed[0].role == SPONSOR:
        first = next((s for s in fixed if s.role != SPONSOR), None)
        if first is not None:
            fixed.remove(first)
            fixed.insert(0, first)
        else:  # only pinned sponsors: the first other section of the copy opens it instead
            first = next((s for s in rest if s.role != SPONSOR), None)
            if first is not None:
                rest.remove(first)
                fixed.insert(0, first)
    return fixed + _alternate(rest, fixed[-1].kind if fixed else None, opening=not fixed)


def _alternate(rest: list[Section], after: str | None, *, opening: bool) -> list[Section]:
    """`rest` with no two neighbouring sections of one kind when possible, else as few changes as the rule needs."""
    remaining = list(rest)
    counts = Counter(s.kind for s in remaining)
    ordered: list[Section] = []

    def allowed(section: Section) -> bool:
        # The opening place is never a sponsor's while another section could take it.
        return not (opening and not ordered and section.role == SPONSOR
                    and any(s.role != SPONSOR for s in remaining))

    while remaining:
        choice = None
        for index, section in enumerate(remaining):
            if section.kind == after or not allowed(section):
                continue
            counts[section.kind] -= 1
            if _possible(+counts, section.kind):
                choice = index
            counts[section.kind] += 1
            if choice is not None:
                break
        if choice is None:  # no order avoids every pair of neighbours: avoid the next one if we can
            choice = next((i for i, s in enumerate(remaining) if s.kind != after and allowed(s)),
                          next(i for i, s in enumerate(remaining) if allowed(s)))
        section = remaining.pop(choice)
        counts[section.kind] -= 1
        ordered.append(section)
        after = section.kind
    return ordered


@lru_cache(maxsize=4096)
def _ordered(sections: tuple[Section, ...]) -> tuple[Section, ...]:
    # The order depends on the sections alone, and a send's readers share a few thousand picks
    # at most: worked out once per set of picks, not once per reader (a fifth of planning's time).
    return tuple(order_sections(sections))


def arrange_copy(edition: Edition, selection: Selection, profile: Profile | None = None) -> Selection:
    """The reader's selection under the layout rules: sponsors capped, lead first, sponsor never first, kinds alternating."""
    picks = cap_sponsors(edition, selection.picks, profile)
    by_id = {p.section_id: p for p in picks}
    ordered = _ordered(tuple(edition.by_id[p.section_id] for p in picks))
    arranged = tuple(by_id[s.id] for s in ordered)
    return selection if arranged == selection.picks else Selection(arranged)
