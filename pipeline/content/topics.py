"""The topic taxonomy: the topics sections and readers may name, with their labels and synonyms.

`topics.yaml` holds `topics: {slug: Label}` and, optionally, `synonyms: {slug: [word, ...]}`:
the words a reader may use for a topic in a reply ("recruiting" for hiring), from which
replies suggest needs. A file without `synonyms:` reads as before.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from pipeline.errors import InputProblem, InvalidEdition
from pipeline.content.wording import inert_text
from pipeline.settings import PROJECT_ROOT

__all__ = ["Taxonomy", "load_taxonomy", "default_taxonomy", "TOPIC_PATTERN", "DEFAULT_TOPICS_FILE"]

# The taxonomy the sample edition uses; audience imports check topics against it unless told otherwise.
DEFAULT_TOPICS_FILE = PROJECT_ROOT / "editions" / "topics.yaml"

TOPIC_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Taxonomy:
    """Known topics, slug to human label, in the editor's order."""

    labels: dict[str, str]
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)  # slug -> other words for it

    def __contains__(self, topic: object) -> bool:
        return topic in self.labels

    def label(self, topic: str) -> str:
        """The label readers see for `topic` (the slug itself if unknown)."""
        return self.labels.get(topic, topic)

    def suggest(self, topic: str) -> str:
        """A 'did you mean' hint for an unknown topic, or an empty string."""
        close = difflib.get_close_matches(topic, list(self.labels), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def unknown_reason(self, topic: str) -> str:
        """Why `topic` was refused, with a hint."""
        return f"unknown topic{self.suggest(topic)}; known topics are listed in the taxonomy file"


def load_taxonomy(path: Path) -> Taxonomy:
    """Read a `topics.yaml` (`topics: {slug: Label}`); raises InvalidEdition naming the line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InvalidEdition([InputProblem(str(path), 1, "topics", str(path), "taxonomy file not found")])
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        raise InvalidEdition([InputProblem(str(path), line, "topics", "", f"not valid YAML: {exc}")])
    topics = data.get("topics") if isinstance(data, dict) else None
    if not isinstance(topics, dict) or not topics:
        raise InvalidEdition([InputProblem(str(path), 1, "topics", topics, "expected a mapping of topic slug to label")])
    problems = [
        InputProblem(str(path), 1, "topics", slug, "topic slugs are lowercase letters, digits and dashes")
        for slug in topics
        if not isinstance(slug, str) or not TOPIC_PATTERN.match(slug)
    ]
    if problems:
        raise InvalidEdition(problems)
    synonyms = data.get("synonyms") or {}
    if not isinstance(synonyms, dict):
        raise InvalidEdition([InputProblem(str(path), 1, "synonyms", synonyms, "expected a mapping of topic slug to words")])
    problems = [InputProblem(str(path), 1, "synonyms", slug, "not a topic of this file (or its words are not a list)")
                for slug, words in synonyms.items()
                if slug not in topics or not isinstance(words, list) or not all(isinstance(w, str) for w in words)]
    if problems:
        raise InvalidEdition(problems)
    return Taxonomy({slug: inert_text(str(label)) for slug, label in topics.items()},
                    {slug: tuple(w.strip() for w in words if w.strip()) for slug, words in synonyms.items()})


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The taxonomy in `editions/topics.yaml` of the checkout (read once)."""
    return load_taxonomy(DEFAULT_TOPICS_FILE)
