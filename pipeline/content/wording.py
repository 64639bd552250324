"""The editor's wording as readers see it: text that can never act as a merge tag."""

from __future__ import annotations

import re

__all__ = ["inert_text"]

# Every `%` followed by another: a zero-width space between them leaves the text as readers see
# it, and leaves no `%%` that our merge or SendGrid's substitutions could read as the start of a tag.
_DOUBLED_PERCENT = re.compile(r"%(?=%)")


def inert_text(text: str) -> str:
    """`text` as it reads, but with no `%%` left in it: it can never act as a merge tag or substitution key.

    For text that is not a reader value: an editor's titles and bodies, topic labels, the subject.
    """
    return _DOUBLED_PERCENT.sub("%\u200b", text) if "%%" in text else text
