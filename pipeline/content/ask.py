"""The ask: "What are the two things you need in the next 30-60 days?", in the newsletter.

An `ask` section is not chosen by the policy: it is added, last, to the copy of every reader
whose needs are missing or run out within ASK_WINDOW_DAYS (the next edition's window), and to
nobody else, so a reader who answered is not asked again until a need is about to expire.
Holdout readers are asked by the same rule: the ask is a question, not a choice of content,
and the report compares how often each arm answers it.

With READERFIRST_ASK=auto an edition that has no `ask` section gets the default one
(`with_default_ask`); with `off` no copy carries one (`without_ask`). The one-click answers
are the edition's topics in editorial order (at most ASK_MAX_TOPICS), unless the editor's
ask section lists its own topics.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import weakref
from collections.abc import Sequence

from pipeline.audience.profile import Profile
from pipeline.content.edition import Edition, Section
from pipeline.content.selection import Pick, Selection

__all__ = ["ASK_KIND", "ASK_SOURCE", "ASK_MODES", "ASK_QUESTION", "ASK_WINDOW_DAYS", "ASK_MAX_TOPICS", "REASON_ASK",
           "ask_section", "ask_topics", "asks", "is_due", "with_default_ask", "without_ask", "selectable",
           "add_ask", "asked_in", "edition_for_mode"]

ASK_KIND = "ask"
ASK_SOURCE = "ask"  # reader_needs.source of a need stated in answer to the ask
ASK_MODES = ("auto", "off")
ASK_QUESTION = "What are the two things you need in the next 30-60 days?"
ASK_WINDOW_DAYS = 14  # a need that runs out before the next edition or so is asked about again
ASK_MAX_TOPICS = 8  # one-click answers; more is a form, and the free-text answer covers the rest
REASON_ASK = "we put what you need first, so we ask"
_DEFAULT_ID = "ask"


def ask_section(edition: Edition) -> Section | None:
    """The edition's ask section (the first, if an editor wrote several), or None."""
    return next((s for s in edition.sections if s.kind == ASK_KIND), None)


def asks(section_kind: str) -> bool:
    """Whether sections of this kind are the ask (added by rule, never chosen by the policy)."""
    return section_kind == ASK_KIND


def ask_topics(edition: Edition) -> tuple[str, ...]:
    """The topics the ask offers as one-click answers."""
    section = ask_section(edition)
    if section is not None and section.topics:
        return section.topics[:ASK_MAX_TOPICS]
    topics: list[str] = []
    for s in edition.sections:
        topics.extend(t for t in s.topics if t not in topics and s.kind != ASK_KIND)
    return tuple(topics[:ASK_MAX_TOPICS])


def with_default_ask(edition: Edition) -> Edition:
    """The edition with the default ask section appended, unless it has one (READERFIRST_ASK=auto)."""
    if ask_section(edition) is not None:
        return edition
    taken = set(edition.by_id)
    section_id = next(i for i in (_DEFAULT_ID, "ask-needs", *(f"ask-{n}" for n in range(2, 1000))) if i not in taken)
    default = Section(id=section_id, kind=ASK_KIND, title=ASK_QUESTION,
                      fields={"body": "Tell us and we put it first in your next editions."})
    return dataclasses.replace(edition, sections=(*edition.sections, default))


def without_ask(edition: Edition) -> Edition:
    """The edition without its ask sections (READERFIRST_ASK=off)."""
    if ask_section(edition) is None:
        return edition
    return dataclasses.replace(edition, sections=tuple(s for s in edition.sections if s.kind != ASK_KIND))


def edition_for_mode(edition: Edition, mode: str) -> Edition:
    """The edition as READERFIRST_ASK (`auto` or `off`) wants it sent."""
    if mode not in ASK_MODES:
        raise ValueError(f"ask mode {mode!r}: use one of {', '.join(ASK_MODES)}")
    return with_default_ask(edition) if mode == "auto" else without_ask(edition)


_SELECTABLE: dict[int, tuple[weakref.ref, Edition]] = {}  # id(edition) -> (edition, it without the ask)


def selectable(edition: Edition) -> Edition:
    """What the policy chooses from: the edition without its ask (the same object when it has none)."""
    if ask_section(edition) is None:
        return edition
    found = _SELECTABLE.get(id(edition))
    if found is not None and found[0]() is edition:
        return found[1]
    # Kept per edition object, so the policy's per-edition index is built once per send, not per reader.
    chosen = without_ask(edition)
    if len(_SELECTABLE) > 64:
        _SELECTABLE.clear()
    _SELECTABLE[id(edition)] = (weakref.ref(edition), chosen)
    return chosen


def is_due(profile: Profile, today: dt.date, *, window_days: int = ASK_WINDOW_DAYS) -> bool:
    """Whether to ask this reader: no need running, or one that runs out within the window."""
    current = profile.current_needs(today)
    return not current or min(current.values()) < today + dt.timedelta(days=window_days)


def asked_in(edition: Edition, section_ids: Sequence[str]) -> bool:
    """Whether a copy with these sections carries the ask."""
    return any(asks(edition.by_id[s].kind) for s in section_ids if s in edition.by_id)


def add_ask(selection: Selection, edition: Edition, profile: Profile, today: dt.date) -> Selection:
    """`selection` with the edition's ask appended when the reader is due to be asked."""
    section = ask_section(edition)
    if section is None or not is_due(profile, today) or profile.opted_out.intersection(section.topics):
        return selection
    picks: Sequence[Pick] = selection.picks
    return Selection((*picks, Pick(section.id, 0.0, REASON_ASK)))
