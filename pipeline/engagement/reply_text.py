"""A reply's own words: quoted text, signatures and mobile footers cut away; needs suggested from them.

`strip_quoted` keeps the lines a reader wrote above what their mail program added: it stops
at the first attribution line ("On Mon, 7 Dec 2026, readerfirst wrote:", also split over two
lines as Gmail does, and the French, German and Spanish forms), an Outlook separator or header
block, a `-- ` signature delimiter or a mobile footer ("Sent from my iPhone"), and drops every
`>` quoted line above it. It never raises and only ever removes lines.

`suggest_topics` finds the taxonomy's topics a reply names, by label, slug or synonym, as whole
words in any case (with a plural or -er, -ing, -ed ending): the first two, in the order the
reader wrote them.
"""

from __future__ import annotations

import re

from pipeline.content.topics import Taxonomy

__all__ = ["MAX_REPLY_CHARS", "strip_quoted", "suggest_topics"]

MAX_REPLY_CHARS = 20_000  # a reply kept longer than this is cut: an editor reads the start
_MAX_SUGGESTED = 2  # the ask is for two needs

_ATTRIBUTION = re.compile(
    r"^\s*(on\s.{0,300}\swrote:|le\s.{0,300}\sa\s+écrit\s*:|am\s.{0,300}\sschrieb\s.{0,200}:"
    r"|el\s.{0,300}\sescribió:)\s*$", re.IGNORECASE)
_ATTRIBUTION_START = re.compile(r"^\s*(on|le|am|el)\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"(wrote|a\s+écrit|schrieb.{0,200}|escribió)\s*:\s*$", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*(-{2,}\s*original message\s*-{2,}|_{10,}|-{5,}\s*forwarded message\s*-{5,})\s*$",
                        re.IGNORECASE)
_OUTLOOK_HEADER = re.compile(r"^\s*\*?(from|de|von):\*?\s", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(sent|date|to|subject|envoyé|gesendet|an|betreff):\*?\s", re.IGNORECASE)
_SIGNATURE = re.compile(r"^(--|-- |—|__)\s*$")
_FOOTER = re.compile(
    r"^\s*(sent from my \w+|sent from (mail|outlook|yahoo mail|gmail)\b.*|get outlook for \w+.*"
    r"|envoyé de mon \w+|von meinem \w+ gesendet|enviado desde mi \w+|sent from proton mail.*)\s*$",
    re.IGNORECASE)


def _cut_at(lines: list[str]) -> int:
    """Index of the first line that starts what the mail program added (len(lines) when none)."""
    for i, line in enumerate(lines):
        if _ATTRIBUTION.match(line) or _SEPARATOR.match(line) or _SIGNATURE.match(line) or _FOOTER.match(line):
            return i
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if _ATTRIBUTION_START.match(line) and len(line) < 300 and _ATTRIBUTION_END.search(following):
            return i
        if _OUTLOOK_HEADER.match(line) and _OUTLOOK_NEXT.match(following):
            return i
    return len(lines)


def strip_quoted(text: str) -> str:
    """The reader's own words of a reply body: everything above the quote, signature or footer."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = [line.rstrip() for line in lines[:_cut_at(lines)] if not line.lstrip().startswith(">")]
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join(kept)[:MAX_REPLY_CHARS]


def _patterns(taxonomy: Taxonomy) -> tuple[tuple[str, re.Pattern[str]], ...]:
    found = []
    for slug, label in taxonomy.labels.items():
        words = {label, slug, slug.replace("-", " "), *taxonomy.synonyms.get(slug, ())}
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True) if w.strip())
        # Common English endings too: "designer", "hiring managers", "investors".
        found.append((slug, re.compile(rf"(?<!\w)(?:{alternatives})(?:s|es|er|ers|ing|ed)?(?!\w)", re.IGNORECASE)))
    return tuple(found)


def suggest_topics(text: str, taxonomy: Taxonomy) -> list[str]:
    """Up to two topics the reply names (label, slug or synonym), first mentioned first."""
    hits = []
    for slug, pattern in _patterns(taxonomy):
        match = pattern.search(text)
        if match:
            hits.append((match.start(), slug))
    return [slug for _, slug in sorted(hits)[:_MAX_SUGGESTED]]
