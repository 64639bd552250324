"""Preparing an edition for sending: validate, compile once, check sizes. Pure and cached."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from pipeline.content.ask import ASK_KIND, ask_topics, edition_for_mode
from pipeline.content.edition import Edition, load_edition
from pipeline.rendering.identity import SenderIdentity
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.subject import SubjectTemplate
from pipeline.rendering.templates import TemplateSet, theme_fallbacks

__all__ = ["PreparedEdition", "prepare_edition"]


@dataclass(frozen=True)
class PreparedEdition:
    """An edition validated and compiled, ready to select for and render."""

    edition: Edition
    layout: EditionLayout
    subject: SubjectTemplate

    @cached_property
    def ask_topics(self) -> tuple[str, ...]:
        """The ask's one-click topics (worked out once: every asked reader's copy needs them)."""
        return ask_topics(self.edition)


def _fingerprint(folder: Path) -> tuple:
    # A theme's files and those of the sets it falls back to: a change to any of them recompiles.
    folders = (folder, *theme_fallbacks(folder))
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for f in folders for p in f.rglob("*") if p.is_file()))


@lru_cache(maxsize=8)
def _prepare(path: str, mtime: int, templates: str, templates_fingerprint: tuple, identity: SenderIdentity,
             ask: str) -> PreparedEdition:
    template_set = TemplateSet(Path(templates))
    edition = load_edition(Path(path), templates=Path(templates))  # its kinds are the templates' kinds
    # A project made before the ask has no partial for it: `auto` then asks nobody rather than refuse to send.
    edition = edition_for_mode(edition, ask if template_set.has_kind(ASK_KIND) else "off")
    layout = EditionLayout(edition, template_set, identity=identity)
    layout.check_size()
    return PreparedEdition(edition=edition, layout=layout, subject=SubjectTemplate(edition.subject))


def prepare_edition(path: Path | str, templates: Path | str, *, newsletter_name: str = "readerfirst",
                    identity: SenderIdentity | None = None, ask: str = "off") -> PreparedEdition:
    """Load, validate and compile the edition at `path` (cached while neither file changes).

    The masthead and footer come from `identity`, or sample values with `newsletter_name`.
    `ask` is READERFIRST_ASK: `auto` adds the default ask section when the edition has none,
    `off` sends no ask (pipeline/content/ask.py).
    """
    identity = identity or SenderIdentity(newsletter_name=newsletter_name)
    path = Path(path).resolve()
    templates = Path(templates).resolve()
    mtime = path.stat().st_mtime_ns if path.exists() else 0
    return _prepare(str(path), mtime, str(templates), _fingerprint(templates), identity, ask)
