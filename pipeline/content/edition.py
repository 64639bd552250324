"""Editions: this week's content, read from a YAML file and validated with line numbers.

The format is documented in `editions/README.md`. Every problem in a file is reported at
once, each as `FILE:LINE: field=value: reason`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.content.kinds import SectionKinds, did_you_mean, load_section_kinds
from pipeline.content.section_fields import FieldChecker, Image, check_kind_fields, is_time_zone as _is_time_zone  # noqa: F401
from pipeline.content.topics import Taxonomy, load_taxonomy
from pipeline.content.yamlsource import read_lined_yaml
from pipeline.errors import InputProblem, InvalidEdition

__all__ = ["Edition", "Section", "Image", "Link", "EventDetails", "load_edition", "resolve_edition_path",
           "DEFAULT_SECTIONS_PER_READER", "DEFAULT_MAX_SPONSOR"]

DEFAULT_SECTIONS_PER_READER = 5
DEFAULT_MAX_PER_TOPIC = 2
DEFAULT_MAX_SPONSOR = 1  # sponsor sections per reader's copy (issue 16: the reader comes first)

_EDITION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SECTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_EDITION_KEYS = {"id", "subject", "preheader", "language", "topics_file", "sections_per_reader", "max_per_topic",
                 "max_sponsor", "intro", "sign_off", "sections"}
_LONG_TEXT = 4000  # characters of an edition's intro or sign-off
# A BCP 47 tag as mail clients and screen readers use it: `en`, `de`, `pt-BR`, `zh-Hant`.
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")


@dataclass(frozen=True)
class Link:
    """One entry of a `links` section."""

    title: str
    url: str
    note: str = ""


@dataclass(frozen=True)
class EventDetails:
    """When and where an `event` section happens."""

    starts: str  # ISO date, or date-time (with an offset when the editor gave one)
    location: str
    tz: str = ""  # IANA zone of a local `starts` without an offset, e.g. Europe/London


@dataclass(frozen=True)
class Section:
    """One candidate section of an edition: the common fields, and its kind's declared ones in `fields`."""

    id: str
    kind: str
    title: str
    topics: tuple[str, ...] = ()
    pinned: bool = False
    # Declared by the kind's schema (templates/sections/<kind>.yaml), checked by its types.
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)
    role: str = "section"  # the kind's role in the layout: section, lead or sponsor

    @property
    def body(self) -> str:
        """The Markdown body, if the kind has one."""
        return self.fields.get("body") or ""

    @property
    def url(self) -> str:
        """The section's own link, if the kind has one."""
        return self.fields.get("url") or ""

    @property
    def image(self) -> Image | None:
        """The section's image, if any."""
        return self.fields.get("image")

    @property
    def links(self) -> tuple[Link, ...]:
        """The entries of a `links` field, if the kind has one."""
        return tuple(Link(item["title"], item["url"], item.get("note") or "") for item in self.fields.get("links") or ())

    @property
    def event(self) -> EventDetails | None:
        """When and where, for a kind with an `event` group."""
        found = self.fields.get("event")
        return EventDetails(found["starts"], found["location"], found.get("tz") or "") if found else None

    @property
    def first_url(self) -> str:
        """The section's own URL, else the first URL among its fields (a list's first link, a pair's first story)."""
        if self.url:
            return self.url

        def walk(value: Any) -> str:
            if isinstance(value, str):
                return value if _is_link_value(value) else ""
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
            return next((found for found in map(walk, items) if found), "")

        return walk(dict(self.fields))

    def words(self) -> list[str]:
        """Every text and Markdown value of the section, title first (what a reader reads)."""
        found = [self.title]

        def walk(value: Any) -> None:
            if isinstance(value, str) and not _is_link_value(value):
                found.append(value)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    walk(item)

        walk(dict(self.fields))
        return found


def _is_link_value(value: str) -> bool:
    return value.startswith(("http://", "https://")) and " " not in value


@dataclass(frozen=True)
class Edition:
    """One issue of the newsletter: its subject and the candidate sections, in editorial order."""

    id: str
    subject: str
    preheader: str
    sections: tuple[Section, ...]
    taxonomy: Taxonomy
    sections_per_reader: int = DEFAULT_SECTIONS_PER_READER
    max_per_topic: int = DEFAULT_MAX_PER_TOPIC
    max_sponsor: int = DEFAULT_MAX_SPONSOR
    intro: str = ""  # Markdown above the sections, the same for every reader
    sign_off: str = ""  # Markdown below them
    path: Path | None = None
    language: str = "en"  # the message's `<html lang>`, and the language dates are written in
    by_id: dict[str, Section] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {s.id: s for s in self.sections})

    def section(self, section_id: str) -> Section:
        """The section with that id."""
        return self.by_id[section_id]


def _check_section(c: FieldChecker, raw: Any, index: int, taxonomy: Taxonomy, kinds: SectionKinds,
                   seen: dict[str, int]) -> Section | None:
    where = ("sections", index)
    if not isinstance(raw, dict):
        c.problem(where, f"sections[{index}]", raw, "each section is a mapping of fields")
        return None
    before = len(c.problems)
    sid = raw.get("id")
    label = f"sections[{sid if isinstance(sid, str) else index}]"
    if not isinstance(sid, str) or not _SECTION_ID.match(sid):
        c.problem((*where, "id"), f"{label}.id", sid if sid is not None else "", "section ids are lowercase letters, digits and dashes")
    elif sid in seen:
        c.problem((*where, "id"), f"{label}.id", sid, f"duplicate section id (first used on line {seen[sid]})")
    else:
        seen[sid] = c.source.line(*where, "id")
    kind_name = raw.get("kind")
    kind = kinds.by_name.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        where_from = f" (templates: {kinds.folder})" if kinds.folder else ""
        c.problem((*where, "kind"), f"{label}.kind", kind_name if kind_name is not None else "",
                  f"unknown kind{did_you_mean(kind_name, kinds.names)}; use one of {', '.join(kinds.names)}{where_from}")
    title = c.text(raw, where, "title", f"{label}.title")
    topics_raw = raw.get("topics", [])
    if isinstance(topics_raw, str):
        topics_raw = [topics_raw]
    topics: list[str] = []
    if not isinstance(topics_raw, list):
        c.problem((*where, "topics"), f"{label}.topics", topics_raw, "expected a list of topics")
    else:
        for t_index, topic in enumerate(topics_raw):
            if topic not in taxonomy:
                c.problem((*where, "topics", t_index), f"{label}.topics", topic, taxonomy.unknown_reason(str(topic)))
            elif topic not in topics:
                topics.append(topic)
    pinned = c.flag(raw, where, "pinned", f"{label}.pinned")
    fields = check_kind_fields(c, kind, raw, where, label) if kind is not None else {}
    if len(c.problems) > before:
        return None
    return Section(id=sid, kind=kind.name, title=title, topics=tuple(topics), pinned=pinned, fields=fields,
                   role=kind.role)


def load_edition(path: Path | str, *, taxonomy: Taxonomy | None = None, kinds: SectionKinds | None = None,
                 templates: Path | str | None = None) -> Edition:
    """Read and validate an edition file; raises InvalidEdition listing every problem.

    Its sections' kinds are those of the template folder `templates` (or `kinds` already
    loaded from one); by default the templates of the project the file is in, else the
    packaged ones (`pipeline.project.project_templates`).
    """
    from pipeline.project import project_templates
    from pipeline.rendering.subject import SubjectTemplate  # the subject is a template: check it compiles

    if kinds is None:
        kinds = load_section_kinds(templates if templates is not None else project_templates(Path(path).parent))

    path = Path(path)
    try:
        source = read_lined_yaml(path)
    except FileNotFoundError:
        raise InvalidEdition([InputProblem(str(path), 1, "edition", str(path), "file not found")])
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        raise InvalidEdition([InputProblem(str(path), line, "edition", "", f"not valid YAML: {exc}")])
    raw = source.data
    c = FieldChecker(path, source)
    if not isinstance(raw, dict):
        raise InvalidEdition([InputProblem(str(path), 1, "edition", raw, "an edition is a mapping of fields")])
    for key in sorted(set(raw) - _EDITION_KEYS, key=str):
        c.problem((key,), key, raw[key],
                  f"unknown field{did_you_mean(key, sorted(_EDITION_KEYS))}; editions take {', '.join(sorted(_EDITION_KEYS))}")

    if taxonomy is None:
        topics_file = path.parent / str(raw.get("topics_file", "topics.yaml"))
        taxonomy = load_taxonomy(topics_file)

    edition_id = raw.get("id")
    if isinstance(edition_id, dt.date):  # YAML reads an unquoted 2026-12-07 as a date
        edition_id = edition_id.isoformat()
    if not isinstance(edition_id, (str, int)) or not _EDITION_ID.match(str(edition_id)):
        c.problem(("id",), "id", edition_id or "", "edition ids are letters, digits, '.', '_' and '-' (at most 100)")
    subject = c.text(raw, (), "subject", "subject")
    if subject:
        problem = SubjectTemplate.check(subject)
        if problem:
            c.problem(("subject",), "subject", subject, problem)
    preheader = c.text(raw, (), "preheader", "preheader", required=False)
    intro = c.markdown(raw, (), "intro", "intro", max_chars=_LONG_TEXT)
    sign_off = c.markdown(raw, (), "sign_off", "sign_off", max_chars=_LONG_TEXT)
    language = raw.get("language", "en")
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        c.problem(("language",), "language", language, "must be a language tag such as en, de, fr or pt-BR")
        language = "en"

    limits = {}
    for key, default, low, high in (("sections_per_reader", DEFAULT_SECTIONS_PER_READER, 1, 30),
                                    ("max_per_topic", DEFAULT_MAX_PER_TOPIC, 1, 30),
                                    ("max_sponsor", DEFAULT_MAX_SPONSOR, 0, 30)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            c.problem((key,), key, value, f"must be a whole number from {low} to {high}")
            value = default
        limits[key] = value

    sections: list[Section] = []
    sections_raw = raw.get("sections")
    if not isinstance(sections_raw, list) or not sections_raw:
        c.problem(("sections",), "sections", sections_raw or "", "an edition needs a list of sections")
    else:
        seen: dict[str, int] = {}
        for index, section_raw in enumerate(sections_raw):
            before = len(c.problems)
            section = _check_section(c, section_raw, index, taxonomy, kinds, seen)
            if section is not None and len(c.problems) == before:
                sections.append(section)
        if sections and all(s.role == "sponsor" for s in sections) and not c.problems:
            c.problem(("sections",), "sections", f"{len(sections)} sponsor sections",
                      "an edition needs at least one section that is not a sponsor")
    if c.problems:
        raise InvalidEdition(c.problems)
    return Edition(id=str(edition_id), subject=subject, preheader=preheader, sections=tuple(sections),
                   taxonomy=taxonomy, path=path, intro=intro, sign_off=sign_off, language=language, **limits)


def resolve_edition_path(path: Path | str) -> Path:
    """`path` itself, or for a folder its newest edition file (by name, e.g. `2026-12-07.yaml`).

    A scheduled deployment points at `editions/` and so always sends the latest edition;
    the send ledger makes a second run of the same edition send to nobody twice.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    candidates = sorted(p for p in path.glob("*.y*ml") if p.name not in ("topics.yaml", "topics.yml"))
    if not candidates:
        raise InvalidEdition([InputProblem(str(path), 0, "edition", str(path), "no edition files (*.yaml) in this folder")])
    return candidates[-1]
