"""Reader focus: is a section about what the reader needs, or about the sender?

"It's not about you, it's about what the other person needs." A section earns its place by
the reader's outcome (what you can do, learn, save, avoid), not by the sender's news, pride or
offer. This module scores each section from its own words, with no model and no network, so
`readerfirst check` can flag sender-centred sections with the sentence that gave them away.

The score, from -1 (all about the sender) to +1 (all about the reader), counts words and
phrases in three groups:

- reader signals: second person (`you`, `your`...) and the reader's outcomes (`how to`,
  `you can`, `save you`, `step by step`...);
- sender signals: first person plural (`we`, `our`, `us`...) and the sender's occasions
  (`we are excited`, `proud to announce`, `our new`...);
- promotional language: calls to buy and pressure (`buy now`, `limited time`, `% off`,
  `book a demo`...), which count as sender signals twice and are always flagged.

score = (reader - sender) / (reader + sender + 2): the +2 pulls short texts towards 0. A
section below SENDER_FIRST_BELOW with at least MIN_SENDER_SIGNALS sender signals is
sender-centred (a single `we` in a report about someone else is not);
an edition where most sections are is refused by `check` unless the editor says
`--allow-sender-first`. `I`/`my` are not counted: an editor's letter in the first person
singular is a voice, not a sales pitch.

Sponsor sections (kinds with `role: sponsor`) are promotional by design, and they are always
labelled: their schema requires the sponsor's name and a disclosure, and their template shows
"Sponsored" beside them. So they are scored and their promotional sentences still reported
(as `promotional (sponsored)`), but they do not count towards the sender-first share: that share
is about the editor's own sections, and a labelled advertisement is capped per copy
(`max_sponsor`) and never first instead. Promotion in any other kind is unlabelled and counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.content.edition import Edition, Section

__all__ = ["FocusFlag", "SectionFocus", "EditionFocus", "score_text", "score_section", "score_edition",
           "section_words", "edition_focus",
           "SENDER_FIRST_BELOW", "MIN_SENDER_SIGNALS"]

SENDER_FIRST_BELOW = -0.2
# One `we` in a report about someone else ("we read the meter data") is not a pitch.
MIN_SENDER_SIGNALS = 2

_READER_WORDS = r"you|your|yours|yourself|yourselves|you'll|you're|you've|you'd|youre|youll"
_READER_PHRASES = [
    r"how to", r"how you", r"you can", r"you could", r"you'll (?:learn|get|find|save|see)", r"help(?:s|ing)? you",
    r"save(?:s)? you", r"step[- ]by[- ]step", r"checklist", r"what (?:to|you) (?:do|need|know)", r"your (?:team|next|own)",
    r"use (?:it|this|them) (?:to|on|for)", r"template you", r"for you",
]
_SENDER_WORDS = r"we|our|ours|us|ourselves|we're|we've|we'll|we'd|were(?= excited| proud| thrilled| delighted)"
_SENDER_PHRASES = [
    r"(?:we are|we're|we were) (?:so |very )?(?:excited|thrilled|proud|delighted|pleased|happy) to",
    r"proud to (?:announce|share|introduce)", r"(?:announce|announcing|introducing) (?:our|the new)",
    r"our (?:new|latest|company|team|product|products|service|services|platform|brand|mission|award|anniversary)",
    r"(?:the|our) company", r"award[- ]winning", r"industry[- ]leading", r"world[- ]class", r"best[- ]in[- ]class",
]
_PROMOTIONAL = [
    r"buy (?:now|today|it now)", r"order (?:now|today)", r"shop (?:now|today|the)", r"limited[- ]time",
    r"\d+\s?% off", r"discount(?:s|ed)?", r"(?:on )?sale(?: now| ends)?", r"exclusive (?:offer|deal)",
    r"free trial", r"book a (?:demo|call)", r"(?:sign|subscribe) up (?:now|today)", r"upgrade (?:now|today|to)",
    r"act (?:now|fast)", r"don't miss (?:out|this)", r"last chance", r"while (?:stocks|supplies) last",
    r"use (?:the )?code", r"promo(?:tion(?:al)?)? code", r"(?:special|introductory) (?:offer|price|pricing)",
    r"add to cart", r"get yours", r"only \$?\d", r"call to book",
]


def _compile(words: str, phrases: list[str]) -> re.Pattern[str]:
    alternatives = [f"(?:{p})" for p in phrases] + ([f"(?:{words})"] if words else [])
    return re.compile(r"(?<![\w'])(?:" + "|".join(alternatives) + r")(?![\w'])", re.IGNORECASE)


_READER = _compile(_READER_WORDS, _READER_PHRASES)
_SENDER = _compile(_SENDER_WORDS, _SENDER_PHRASES)
_PROMO = _compile("", _PROMOTIONAL)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
# Markdown links and images keep their words and lose their addresses; emphasis marks go.
_MARKDOWN = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|[*_`#>]+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


@dataclass(frozen=True)
class FocusFlag:
    """Why a section was flagged, with the sentence that triggered it."""

    reason: str  # "promotional" or "sender-centred"
    sentence: str
    phrases: tuple[str, ...]


@dataclass
class SectionFocus:
    """One section's reader-focus score and what was found in it."""

    section_id: str
    score: float
    reader: int
    sender: int
    flags: list[FocusFlag] = field(default_factory=list)
    sponsored: bool = False  # a labelled sponsor section: outside the sender-first share

    @property
    def sender_first(self) -> bool:
        """True when an unlabelled section is mostly about the sender (and says so more than once)."""
        return not self.sponsored and self.score < SENDER_FIRST_BELOW and self.sender >= MIN_SENDER_SIGNALS


@dataclass
class EditionFocus:
    """Every section's focus, and whether the edition as a whole is about the sender."""

    sections: list[SectionFocus]

    @property
    def counted(self) -> list[SectionFocus]:
        """The sections the sender-first share is taken over: all but labelled sponsor sections."""
        return [s for s in self.sections if not s.sponsored]

    @property
    def sender_first_sections(self) -> list[SectionFocus]:
        """Sections below the threshold, in edition order."""
        return [s for s in self.sections if s.sender_first]

    @property
    def sender_first(self) -> bool:
        """True when more than half of the sections are about the sender."""
        return len(self.sender_first_sections) * 2 > len(self.counted)


def _plain(text: str) -> str:
    return _MARKDOWN.sub(lambda m: m.group(1) or " ", text.translate(_APOSTROPHES))


def _counts(text: str) -> tuple[int, int, list[str]]:
    promo = [m.group(0) for m in _PROMO.finditer(text)]
    return len(_READER.findall(text)), len(_SENDER.findall(text)) + 2 * len(promo), promo


def score_text(text: str) -> float:
    """The reader-focus score of a text, from -1 (about the sender) to +1 (about the reader)."""
    reader, sender, _ = _counts(_plain(text))
    return (reader - sender) / (reader + sender + 2)


def score_section(section_id: str, texts: Iterable[str], *, sponsored: bool = False) -> SectionFocus:
    """Score one section from its words (title, body, call to action...), flagging what gave it away."""
    text = _plain("\n".join(t for t in texts if t))
    reader, sender, _ = _counts(text)
    focus = SectionFocus(section_id=section_id, score=round((reader - sender) / (reader + sender + 2), 3),
                         reader=reader, sender=sender, sponsored=sponsored)
    worst: tuple[int, str, tuple[str, ...]] | None = None
    for match in _SENTENCE.finditer(text):
        sentence = " ".join(match.group(0).split())
        if not sentence:
            continue
        promo = tuple(m.group(0) for m in _PROMO.finditer(sentence))
        if promo:
            focus.flags.append(FocusFlag("promotional (sponsored)" if sponsored else "promotional", sentence, promo))
        found = tuple(m.group(0) for m in _SENDER.finditer(sentence))
        weight = len(found) - len(_READER.findall(sentence))
        if found and (worst is None or weight > worst[0]):
            worst = (weight, sentence, found)
    if focus.sender_first and worst is not None:
        focus.flags.append(FocusFlag("sender-centred", worst[1], worst[2]))
    return focus


def score_edition(sections: Iterable[tuple[str, Iterable[str]]]) -> EditionFocus:
    """Score every (section id, texts) of an edition."""
    return EditionFocus([score_section(section_id, texts) for section_id, texts in sections])


def section_words(section: Section) -> list[str]:
    """Everything a reader reads of a section: its title and every text of its kind's fields."""
    return section.words()


def edition_focus(edition: Edition) -> EditionFocus:
    """The reader focus of every section of `edition`, in editorial order (sponsor sections marked).

    The ask (pipeline/content/ask.py) is left out: it is the reader's own question about their
    needs, and READERFIRST_ASK=auto adds it to editions that never held it.
    """
    from pipeline.content.ask import ASK_KIND

    return EditionFocus([score_section(section.id, section_words(section), sponsored=section.role == "sponsor")
                         for section in edition.sections if section.kind != ASK_KIND])
