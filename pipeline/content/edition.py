"""Editions: this week's content, read from a YAML file and validated with line numbers.

The format is documented in `editions/README.md`. Every problem in a file is reported at
once, each as `FILE:LINE: field=value: reason`.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pipeline.content.topics import Taxonomy, load_taxonomy
from pipeline.content.yamlsource import LinedYaml, read_lined_yaml
from pipeline.errors import InputProblem, InvalidEdition
from pipeline.content.wording import inert_text

__all__ = ["Edition", "Section", "Image", "Link", "KINDS", "load_edition", "resolve_edition_path",
           "DEFAULT_SECTIONS_PER_READER"]

KINDS = ("lead", "article", "links", "event")
KINDS_NEEDING_IMAGE = ("lead", "article")
DEFAULT_SECTIONS_PER_READER = 5
DEFAULT_MAX_PER_TOPIC = 2

_EDITION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SECTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_EDITION_KEYS = {"id", "subject", "preheader", "language", "topics_file", "sections_per_reader", "max_per_topic",
                 "sections"}
# A BCP 47 tag as mail clients and screen readers use it: `en`, `de`, `pt-BR`, `zh-Hant`.
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")
_SECTION_KEYS = {"id", "kind", "title", "body", "url", "image", "topics", "pinned", "links", "event"}


@dataclass(frozen=True)
class Image:
    """An image with its alt text (required: readers with images off or screen readers see it)."""

    src: str
    alt: str


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


def _is_time_zone(name: object) -> bool:
    if not isinstance(name, str) or not name.strip():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, or a name too long
        return False
    return True


@dataclass(frozen=True)
class Section:
    """One candidate section of an edition."""

    id: str
    kind: str
    title: str
    body: str = ""
    url: str = ""
    image: Image | None = None
    topics: tuple[str, ...] = ()
    pinned: bool = False
    links: tuple[Link, ...] = ()
    event: EventDetails | None = None


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
    path: Path | None = None
    language: str = "en"  # the message's `<html lang>`, and the language dates are written in
    by_id: dict[str, Section] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {s.id: s for s in self.sections})

    def section(self, section_id: str) -> Section:
        """The section with that id."""
        return self.by_id[section_id]


def _is_web_url(value: object) -> bool:
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "." in (parts.hostname or "")


class _Checker:
    """Collects every problem of one edition file."""

    def __init__(self, path: Path, source: LinedYaml):
        self.path = path
        self.source = source
        self.problems: list[InputProblem] = []

    def problem(self, where: tuple, field_name: str, value: Any, reason: str) -> None:
        self.problems.append(InputProblem(str(self.path), self.source.line(*where), field_name, value, reason))

    def text(self, raw: dict, where: tuple, key: str, label: str, *, required: bool = True) -> str:
        value = raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.problem((*where, key), label, "", "is required")
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.problem((*where, key), label, value, "must be text")
            return ""
        # The editor's words are shown as written and never read as a merge tag (`%%rf:...%%`).
        return inert_text(str(value))

    def url(self, raw: dict, where: tuple, key: str, label: str, *, required: bool = True) -> str:
        value = raw.get(key)
        if value is None:
            if required:
                self.problem((*where, key), label, "", "is required")
            return ""
        if not _is_web_url(value):
            self.problem((*where, key), label, value, "is not an http(s) URL with a host name")
            return ""
        if "%%" in value:
            self.problem((*where, key), label, value, "'%%' is not valid in a URL (it would read as a merge tag); "
                                                       "write a literal % as %25")
            return ""
        return value


def _check_section(c: _Checker, raw: Any, index: int, taxonomy: Taxonomy, seen: dict[str, int]) -> Section | None:
    where = ("sections", index)
    if not isinstance(raw, dict):
        c.problem(where, f"sections[{index}]", raw, "each section is a mapping of fields")
        return None
    sid = raw.get("id")
    label = f"sections[{sid if isinstance(sid, str) else index}]"
    for key in sorted(set(raw) - _SECTION_KEYS, key=str):
        c.problem((*where, key), f"{label}.{key}", raw[key], f"unknown field; sections take {', '.join(sorted(_SECTION_KEYS))}")
    if not isinstance(sid, str) or not _SECTION_ID.match(sid):
        c.problem((*where, "id"), f"{label}.id", sid if sid is not None else "", "section ids are lowercase letters, digits and dashes")
    elif sid in seen:
        c.problem((*where, "id"), f"{label}.id", sid, f"duplicate section id (first used on line {seen[sid]})")
    else:
        seen[sid] = c.source.line(*where, "id")
    kind = raw.get("kind")
    if kind not in KINDS:
        c.problem((*where, "kind"), f"{label}.kind", kind if kind is not None else "", f"unknown kind; use one of {', '.join(KINDS)}")
    title = c.text(raw, where, "title", f"{label}.title")
    body = c.text(raw, where, "body", f"{label}.body", required=False)
    url = c.url(raw, where, "url", f"{label}.url", required=kind != "links")

    image = None
    image_raw = raw.get("image")
    if image_raw is None:
        if kind in KINDS_NEEDING_IMAGE:
            c.problem((*where, "image"), f"{label}.image", "", f"a {kind} section needs an image with alt text")
    elif not isinstance(image_raw, dict):
        c.problem((*where, "image"), f"{label}.image", image_raw, "expected a mapping with src and alt")
    else:
        src = c.url(image_raw, (*where, "image"), "src", f"{label}.image.src")
        alt = image_raw.get("alt")
        if not isinstance(alt, str) or not alt.strip():
            c.problem((*where, "image", "alt"), f"{label}.image.alt", alt if alt is not None else "",
                      "alt text is required: describe the image for readers who cannot see it")
        elif src:
            image = Image(src=src, alt=inert_text(alt.strip()))

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

    pinned = raw.get("pinned", False)
    if not isinstance(pinned, bool):
        c.problem((*where, "pinned"), f"{label}.pinned", pinned, "must be true or false")
        pinned = False

    links: list[Link] = []
    links_raw = raw.get("links")
    if kind == "links":
        if not isinstance(links_raw, list) or not links_raw:
            c.problem((*where, "links"), f"{label}.links", links_raw or "", "a links section needs a list of links")
        else:
            for l_index, link in enumerate(links_raw):
                lw = (*where, "links", l_index)
                if not isinstance(link, dict):
                    c.problem(lw, f"{label}.links[{l_index}]", link, "each link is a mapping with title and url")
                    continue
                l_title = c.text(link, lw, "title", f"{label}.links[{l_index}].title")
                l_url = c.url(link, lw, "url", f"{label}.links[{l_index}].url")
                note = c.text(link, lw, "note", f"{label}.links[{l_index}].note", required=False)
                if l_title and l_url:
                    links.append(Link(l_title, l_url, note))
    elif links_raw is not None:
        c.problem((*where, "links"), f"{label}.links", links_raw, "only links sections take links")

    event = None
    event_raw = raw.get("event")
    if kind == "event":
        if not isinstance(event_raw, dict):
            c.problem((*where, "event"), f"{label}.event", event_raw or "", "an event section needs event: {starts, location}")
        else:
            starts = event_raw.get("starts")
            if isinstance(starts, (dt.date, dt.datetime)):
                starts = starts.isoformat()
            elif isinstance(starts, str):
                try:
                    starts = dt.datetime.fromisoformat(starts).isoformat()
                except ValueError:
                    c.problem((*where, "event", "starts"), f"{label}.event.starts", starts, "not an ISO date or date-time")
                    starts = None
            else:
                c.problem((*where, "event", "starts"), f"{label}.event.starts", starts or "", "is required (ISO date or date-time)")
                starts = None
            location = c.text(event_raw, (*where, "event"), "location", f"{label}.event.location")
            tz = event_raw.get("tz", "")
            if tz != "" and not _is_time_zone(tz):
                c.problem((*where, "event", "tz"), f"{label}.event.tz", tz,
                          "unknown time zone; use an IANA name such as Europe/London")
                tz = ""
            if starts and location:
                event = EventDetails(starts=str(starts), location=location, tz=str(tz))
    elif event_raw is not None:
        c.problem((*where, "event"), f"{label}.event", event_raw, "only event sections take event details")

    if c.problems:
        return None
    return Section(id=sid, kind=kind, title=title, body=body, url=url, image=image, topics=tuple(topics),
                   pinned=pinned, links=tuple(links), event=event)


def load_edition(path: Path | str, *, taxonomy: Taxonomy | None = None) -> Edition:
    """Read and validate an edition file; raises InvalidEdition listing every problem."""
    from pipeline.rendering.subject import SubjectTemplate  # the subject is a template: check it compiles

    path = Path(path)
    try:
        source = read_lined_yaml(path)
    except FileNotFoundError:
        raise InvalidEdition([InputProblem(str(path), 1, "edition", str(path), "file not found")])
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        raise InvalidEdition([InputProblem(str(path), line, "edition", "", f"not valid YAML: {exc}")])
    raw = source.data
    c = _Checker(path, source)
    if not isinstance(raw, dict):
        raise InvalidEdition([InputProblem(str(path), 1, "edition", raw, "an edition is a mapping of fields")])
    for key in sorted(set(raw) - _EDITION_KEYS, key=str):
        c.problem((key,), key, raw[key], f"unknown field; editions take {', '.join(sorted(_EDITION_KEYS))}")

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
    language = raw.get("language", "en")
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        c.problem(("language",), "language", language, "must be a language tag such as en, de, fr or pt-BR")
        language = "en"

    limits = {}
    for key, default, low, high in (("sections_per_reader", DEFAULT_SECTIONS_PER_READER, 1, 30),
                                    ("max_per_topic", DEFAULT_MAX_PER_TOPIC, 1, 30)):
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
            section = _check_section(c, section_raw, index, taxonomy, seen)
            if section is not None and len(c.problems) == before:
                sections.append(section)
    if c.problems:
        raise InvalidEdition(c.problems)
    return Edition(id=str(edition_id), subject=subject, preheader=preheader, sections=tuple(sections),
                   taxonomy=taxonomy, path=path, language=language, **limits)


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
