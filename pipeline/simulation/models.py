"""Reader models: YAML files that describe a simulated audience, read and validated with line numbers.

The format is documented in `audiences/reader-models/README.md`. A model says which topics
exist and how popular they are, how concentrated each reader's hidden preferences are, how
readers open, click, unsubscribe and complain, and whether some of them change their minds
(drift). Every problem in a file is reported at once, each as `FILE:LINE: field=value: reason`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.content.topics import TOPIC_PATTERN
from pipeline.content.yamlsource import LinedYaml, read_lined_yaml
from pipeline.errors import InputProblem, PipelineError

__all__ = [
    "Declared",
    "Drift",
    "EditionShape",
    "Engagement",
    "InvalidReaderModel",
    "Needs",
    "Propensity",
    "ReaderModel",
    "load_reader_model",
    "reader_model_yaml",
]

_TOP_KEYS = {"name", "description", "topics", "preferences", "declared", "engagement", "unsubscribe",
             "complaint", "drift", "needs", "edition"}


class InvalidReaderModel(PipelineError, ValueError):
    """A reader model file is invalid; every problem is listed, nothing was simulated."""

    def __init__(self, problems: list[InputProblem]):
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in reader model; nothing was simulated:"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))


@dataclass(frozen=True)
class Declared:
    """What readers said at sign-up: `share` of them declared their `topics` favourite hidden topics.

    `wrong_share` of those who declare name other topics instead (drawn by popularity among
    the ones that are not their favourites), with the same weights: a declaration that misleads.
    """

    share: float = 0.5
    topics: int = 2
    wrong_share: float = 0.0


@dataclass(frozen=True)
class Engagement:
    """How readers open and click."""

    open_rate: float = 0.45  # chance a reader reads a newsletter at all
    click_rate: float = 0.3  # chance of clicking a section on their favourite topic placed first, once read
    position_decay: float = 0.85  # each place further down multiplies the click chance by this
    machine_open_share: float = 0.35  # readers behind Apple Mail Privacy Protection (every message prefetched)


@dataclass(frozen=True)
class Propensity:
    """A per-newsletter chance (once read) that rises from `base` to `poorly_served` as the match falls to none."""

    base: float
    poorly_served: float


@dataclass(frozen=True)
class Drift:
    """From edition `at_edition` on, `share` of the readers have new hidden interests."""

    share: float
    at_edition: int


@dataclass(frozen=True)
class Needs:
    """`share` of the readers sign up with a need: one topic (by popularity), for editions 1 to `lasts`.

    While it lasts, the reader's affinity for that topic is at least `strength` (1 = as much as
    their favourite topic; 2 = twice as likely to be clicked); the audience file carries the need.
    """

    share: float
    lasts: int = 3
    strength: float = 2.0


@dataclass(frozen=True)
class EditionShape:
    """The shape of the editions the evaluation generates for this audience."""

    candidates: int = 36
    sections_per_reader: int = 5
    max_per_topic: int = 2


@dataclass(frozen=True)
class ReaderModel:
    """A simulated audience: topics with their popularity (shares summing to 1) and behaviour."""

    name: str
    topics: dict[str, float]
    concentration: float
    description: str = ""
    declared: Declared = field(default_factory=Declared)
    engagement: Engagement = field(default_factory=Engagement)
    unsubscribe: Propensity = field(default_factory=lambda: Propensity(0.002, 0.03))
    complaint: Propensity = field(default_factory=lambda: Propensity(0.0002, 0.002))
    drift: Drift | None = None
    edition: EditionShape = field(default_factory=EditionShape)
    path: Path | None = None
    needs: Needs | None = None

    @property
    def topic_names(self) -> tuple[str, ...]:
        """Topic slugs, in the file's order."""
        return tuple(self.topics)


class _Checker:
    """Collects every problem of one reader model file."""

    def __init__(self, path: Path, source: LinedYaml):
        self.path, self.source = path, source
        self.problems: list[InputProblem] = []

    def problem(self, where: tuple, name: str, value: Any, reason: str) -> None:
        self.problems.append(InputProblem(str(self.path), self.source.line(*where), name, value, reason))

    def block(self, raw: dict, key: str, allowed: set[str]) -> dict:
        """The mapping under `key` (empty when absent), with unknown keys reported."""
        value = raw.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem((key,), key, value, "expected a mapping of fields")
            return {}
        for extra in sorted(set(value) - allowed, key=str):
            self.problem((key, extra), f"{key}.{extra}", value[extra],
                         f"unknown field; {key} takes {', '.join(sorted(allowed))}")
        return value

    def number(self, raw: dict, where: tuple, default: float | None, low: float, high: float, *,
               low_open: bool = False) -> float:
        """A number in [low, high] (or (low, high] with `low_open`), else a problem and the default."""
        name = ".".join(str(p) for p in where)
        value = raw.get(where[-1], default)
        if value is None:
            self.problem(where, name, "", "is required")
            return default or 0.0
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and (value < low or value > high or (low_open and value == low)):
            ok = False
        if not ok:
            bracket = "(" if low_open else "["
            self.problem(where, name, value, f"must be a number in {bracket}{low:g}, {high:g}]")
            return default if default is not None else low
        return float(value)

    def whole(self, raw: dict, where: tuple, default: int | None, low: int, high: int) -> int:
        """A whole number in [low, high], else a problem and the default."""
        name = ".".join(str(p) for p in where)
        value = raw.get(where[-1], default)
        if value is None:
            self.problem(where, name, "", "is required")
            return low
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.problem(where, name, value, f"must be a whole number from {low} to {high}")
            return default if default is not None else low
        return value


def _topics(c: _Checker, raw: dict) -> dict[str, float]:
    value = raw.get("topics")
    if not isinstance(value, dict) or len(value) < 2:
        c.problem(("topics",), "topics", value if value is not None else "",
                  "expected a mapping of at least two topic slugs to their popularity (a positive number)")
        return {}
    popularity: dict[str, float] = {}
    for slug, weight in value.items():
        if not isinstance(slug, str) or not TOPIC_PATTERN.match(slug):
            c.problem(("topics", slug), "topics", slug, "topic slugs are lowercase letters, digits and dashes")
        elif isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            c.problem(("topics", slug), f"topics.{slug}", weight, "popularity must be a number above 0")
        else:
            popularity[slug] = float(weight)
    total = sum(popularity.values())
    return {slug: weight / total for slug, weight in popularity.items()} if total else {}


def _propensity(c: _Checker, raw: dict, key: str, default: Propensity) -> Propensity:
    block = c.block(raw, key, {"base", "poorly_served"})
    base = c.number(block, (key, "base"), default.base, 0.0, 1.0)
    poor = c.number(block, (key, "poorly_served"), default.poorly_served, 0.0, 1.0)
    if poor < base:
        c.problem((key, "poorly_served"), f"{key}.poorly_served", poor,
                  f"must be at least {key}.base ({base:g}): a poor newsletter never makes readers stay")
    return Propensity(base, poor)


def _check(c: _Checker, raw: dict, path: Path) -> ReaderModel:
    for key in sorted(set(raw) - _TOP_KEYS, key=str):
        c.problem((key,), key, raw[key], f"unknown field; reader models take {', '.join(sorted(_TOP_KEYS))}")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        c.problem(("name",), "name", name if name is not None else "", "must be text")
        name = path.stem
    description = raw.get("description", "")
    if not isinstance(description, str):
        c.problem(("description",), "description", description, "must be text")
        description = ""
    topics = _topics(c, raw)

    prefs = c.block(raw, "preferences", {"concentration"})
    concentration = c.number(prefs, ("preferences", "concentration"), 1.0, 0.0, 1000.0, low_open=True)

    declared_raw = c.block(raw, "declared", {"share", "topics", "wrong_share"})
    # Bounded by the topics the file names, valid or not, so one bad topic is reported once.
    named = max(1, len(raw["topics"])) if isinstance(raw.get("topics"), dict) else 1
    declared = Declared(c.number(declared_raw, ("declared", "share"), Declared.share, 0.0, 1.0),
                        c.whole(declared_raw, ("declared", "topics"), min(Declared.topics, named), 0, named),
                        c.number(declared_raw, ("declared", "wrong_share"), 0.0, 0.0, 1.0))

    eng = c.block(raw, "engagement", {"open_rate", "click_rate", "position_decay", "machine_open_share"})
    engagement = Engagement(
        open_rate=c.number(eng, ("engagement", "open_rate"), Engagement.open_rate, 0.0, 1.0, low_open=True),
        click_rate=c.number(eng, ("engagement", "click_rate"), Engagement.click_rate, 0.0, 1.0),
        position_decay=c.number(eng, ("engagement", "position_decay"), Engagement.position_decay, 0.0, 1.0,
                                low_open=True),
        machine_open_share=c.number(eng, ("engagement", "machine_open_share"), Engagement.machine_open_share,
                                    0.0, 1.0))
    unsubscribe = _propensity(c, raw, "unsubscribe", Propensity(0.002, 0.03))
    complaint = _propensity(c, raw, "complaint", Propensity(0.0002, 0.002))

    drift = None
    if raw.get("drift") is not None:
        drift_raw = c.block(raw, "drift", {"share", "at_edition"})
        drift = Drift(c.number(drift_raw, ("drift", "share"), None, 0.0, 1.0),
                      c.whole(drift_raw, ("drift", "at_edition"), None, 2, 10_000))

    needs = None
    if raw.get("needs") is not None:
        needs_raw = c.block(raw, "needs", {"share", "lasts", "strength"})
        needs = Needs(c.number(needs_raw, ("needs", "share"), None, 0.0, 1.0),
                      c.whole(needs_raw, ("needs", "lasts"), Needs.lasts, 1, 52),
                      c.number(needs_raw, ("needs", "strength"), Needs.strength, 0.0, 5.0, low_open=True))

    shape = c.block(raw, "edition", {"candidates", "sections_per_reader", "max_per_topic"})
    per_reader = c.whole(shape, ("edition", "sections_per_reader"), EditionShape.sections_per_reader, 1, 30)
    edition = EditionShape(
        candidates=c.whole(shape, ("edition", "candidates"), EditionShape.candidates, max(per_reader, 2), 200),
        sections_per_reader=per_reader,
        max_per_topic=c.whole(shape, ("edition", "max_per_topic"), EditionShape.max_per_topic, 1, 30))
    return ReaderModel(name=name.strip(), topics=topics, concentration=concentration, description=description,
                       declared=declared, engagement=engagement, unsubscribe=unsubscribe, complaint=complaint,
                       drift=drift, edition=edition, path=path, needs=needs)


def load_reader_model(path: Path | str) -> ReaderModel:
    """Read and validate a reader model file; raises InvalidReaderModel listing every problem."""
    path = Path(path)
    try:
        source = read_lined_yaml(path)
    except FileNotFoundError:
        raise InvalidReaderModel([InputProblem(str(path), 1, "reader model", str(path), "file not found")]) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        raise InvalidReaderModel([InputProblem(str(path), line, "reader model", "", f"not valid YAML: {exc}")]) from None
    if not isinstance(source.data, dict):
        raise InvalidReaderModel([InputProblem(str(path), 1, "reader model", source.data,
                                               "a reader model is a mapping of fields")])
    checker = _Checker(path, source)
    model = _check(checker, source.data, path)
    if checker.problems:
        raise InvalidReaderModel(checker.problems)
    return model


def reader_model_yaml(model: ReaderModel) -> str:
    """`model` in the file format (popularity written as shares), e.g. to save a generated model."""
    data: dict[str, Any] = {
        "name": model.name,
        "description": model.description,
        "topics": {slug: round(share, 6) for slug, share in model.topics.items()},
        "preferences": {"concentration": model.concentration},
        "declared": {"share": model.declared.share, "topics": model.declared.topics,
                     **({"wrong_share": model.declared.wrong_share} if model.declared.wrong_share else {})},
        "engagement": vars(model.engagement).copy(),
        "unsubscribe": vars(model.unsubscribe).copy(),
        "complaint": vars(model.complaint).copy(),
        "edition": vars(model.edition).copy(),
    }
    if model.drift is not None:
        data["drift"] = vars(model.drift).copy()
    if model.needs is not None:
        data["needs"] = vars(model.needs).copy()
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
