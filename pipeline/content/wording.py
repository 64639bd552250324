"""The editor's wording as readers see it: text that can never act as a merge tag."""

from __future__ import annotations

import re
import datetime as dt

__all__ = ["inert_text", "need_reason", "shown_words", "MAX_SHOWN_WORDS"]

# Every `%` followed by another: a zero-width space between them leaves the text as readers see
# it, and leaves no `%%` that our merge or SendGrid's substitutions could read as the start of a tag.
_DOUBLED_PERCENT = re.compile(r"%(?=%)")


def inert_text(text: str) -> str:
    """`text` as it reads, but with no `%%` left in it: it can never act as a merge tag or substitution key.

    For text that is not a reader value: an editor's titles and bodies, topic labels, the subject.
    """
    return _DOUBLED_PERCENT.sub("%\u200b", text) if "%%" in text else text


MAX_SHOWN_WORDS = 60  # a why line is one short line; longer words stay on file and the topic's label is shown
# What never goes back into a newsletter from a reader's free text, however short: addresses and
# links (a reader may paste someone's email or a URL), markup and template or merge syntax.
_UNSAFE_WORDS = re.compile(r"@|://|www\.|[<>{}%\\`]")


def shown_words(words: str | None) -> str | None:
    """The reader's own words for a need, as a why line may quote them, or None when they must not be.

    Short (at most MAX_SHOWN_WORDS characters once runs of spaces are one), printable, and with
    no address, link, markup or template syntax; anything else is kept on file but never mailed.
    """
    if not words:
        return None
    text = " ".join(words.split())
    if not text or len(text) > MAX_SHOWN_WORDS or not text.isprintable() or _UNSAFE_WORDS.search(text):
        return None
    return text


def need_reason(label: str, until: dt.date, words: str | None = None) -> str:
    """The why line of a section picked for a need: in the reader's words when they are short and safe."""
    quoted = shown_words(words)
    what = f"\u201c{quoted}\u201d" if quoted else label
    return f"you said you need help with {what} until {until.isoformat()}"
