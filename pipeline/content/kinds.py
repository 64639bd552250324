"""Section kinds as files: a template and a schema beside it make a kind an edition can use.

A kind `<kind>` is `sections/<kind>.mjml.j2` plus `sections/<kind>.yaml` in the template
folder (and, optionally, `text/sections/<kind>.txt.j2` for the plain-text part). The schema
names the fields the kind takes beyond the ones every section has (id, kind, title, topics,
pinned), each with a type, whether it is required, and its limits; and the kind's role in
the layout (`lead`: first among a reader's picks; `sponsor`: capped per copy, never first,
labelled). The format is documented in `editions/README.md` ("Section kinds").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.content.yamlsource import LinedYaml, read_lined_yaml
from pipeline.errors import InputProblem, InvalidSectionKinds

__all__ = ["FieldSpec", "SectionKind", "SectionKinds", "load_section_kinds", "did_you_mean",
           "FIELD_TYPES", "ROLES", "COMMON_FIELDS", "SCHEMA_FILE", "TEXT_TEMPLATE"]

SCHEMA_FILE = "sections/{kind}.yaml"
TEXT_TEMPLATE = "text/sections/{kind}.txt.j2"
FIELD_TYPES = ("text", "markdown", "url", "image", "date", "timezone", "bool", "number", "group", "list")
ROLES = ("section", "lead", "sponsor")
# What every section has, whatever its kind (validated by the edition loader itself).
COMMON_FIELDS = ("id", "kind", "title", "topics", "pinned")
_SCHEMA_KEYS = {"description", "role", "fields"}
_FIELD_KEYS = {"type", "required", "max_chars", "min_items", "max_items", "min", "max", "default", "fields",
               "description"}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")
_MAX_CHARS_LIMIT = 100_000


def did_you_mean(value: object, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' when `value` is close to one of `choices`, else ''."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass(frozen=True)
class FieldSpec:
    """One declared field of a kind: its type, whether it is required, and its limits."""

    name: str
    type: str
    required: bool = False
    max_chars: int | None = None
    min_items: int = 0
    max_items: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None
    description: str = ""
    fields: tuple[FieldSpec, ...] = ()  # of each item (list) or of the group

    def field(self, name: str) -> FieldSpec | None:
        """The sub-field `name` of a group or list, if declared."""
        return next((f for f in self.fields if f.name == name), None)

    def describe(self) -> str:
        """One line: type, required or not, limits (for `readerfirst check`)."""
        parts = [self.type, "required" if self.required else "optional"]
        if self.max_chars:
            parts.append(f"at most {self.max_chars} characters")
        if self.type == "list":
            parts.append(f"{self.min_items}-{self.max_items if self.max_items is not None else 'any'} items")
        if self.default is not None:
            parts.append(f"default {self.default!r}")
        text = ", ".join(parts)
        if self.fields:
            text += " of {" + ", ".join(f.name + ("" if f.required else "?") for f in self.fields) + "}"
        return text

    def as_json(self) -> dict:
        """The field as plain data (for `readerfirst check --json`)."""
        data: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        for key, value in (("max_chars", self.max_chars), ("max_items", self.max_items),
                           ("min", self.minimum), ("max", self.maximum), ("default", self.default)):
            if value is not None:
                data[key] = value
        if self.type == "list":
            data["min_items"] = self.min_items
        if self.description:
            data["description"] = self.description
        if self.fields:
            data["fields"] = [f.as_json() for f in self.fields]
        return data


@dataclass(frozen=True)
class SectionKind:
    """A kind of section: its name, role in the layout, and declared fields."""

    name: str
    role: str = "section"
    description: str = ""
    fields: tuple[FieldSpec, ...] = ()
    schema_path: Path | None = None

    @property
    def field_names(self) -> tuple[str, ...]:
        """Every field a section of this kind takes: the common ones, then the declared ones."""
        return (*COMMON_FIELDS, *(f.name for f in self.fields))

    def field(self, name: str) -> FieldSpec | None:
        """The declared field `name`, if any."""
        return next((f for f in self.fields if f.name == name), None)

    def as_json(self) -> dict:
        """The kind as plain data (for `readerfirst check --json`)."""
        return {"kind": self.name, "role": self.role, "description": self.description,
                "schema": str(self.schema_path) if self.schema_path else None,
                "fields": [f.as_json() for f in self.fields]}


@dataclass(frozen=True)
class SectionKinds:
    """Every kind a template folder defines, by name."""

    folder: Path | None
    by_name: Mapping[str, SectionKind] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __iter__(self) -> Iterator[SectionKind]:
        return iter(self.by_name[name] for name in sorted(self.by_name))

    def __getitem__(self, name: str) -> SectionKind:
        return self.by_name[name]

    @property
    def names(self) -> tuple[str, ...]:
        """Kind names, sorted."""
        return tuple(sorted(self.by_name))

    def with_role(self, role: str) -> frozenset[str]:
        """Names of the kinds with that role."""
        return frozenset(k.name for k in self.by_name.values() if k.role == role)


class _SchemaReader:
    """Reads one kind's schema file, collecting every problem with its line."""

    def __init__(self, path: Path, source: LinedYaml):
        self.path, self.source = path, source
        self.problems: list[InputProblem] = []

    def problem(self, where: tuple, label: str, value: Any, reason: str) -> None:
        self.problems.append(InputProblem(str(self.path), self.source.line(*where), label, value, reason))

    def whole(self, raw: dict, where: tuple, key: str, label: str, low: int, high: int) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.problem((*where, key), label, value, f"must be a whole number from {low} to {high}")
            return None
        return value

    def fields(self, raw: Any, where: tuple, prefix: str, *, nested: bool) -> tuple[FieldSpec, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.problem(where, prefix or "fields", raw, "expected a mapping of field name to {type, required, ...}")
            return ()
        specs = []
        for name, spec_raw in raw.items():
            spec = self.field(name, spec_raw, (*where, name), f"{prefix}{name}", nested=nested)
            if spec is not None:
                specs.append(spec)
        return tuple(specs)

    def field(self, name: Any, raw: Any, where: tuple, label: str, *, nested: bool) -> FieldSpec | None:
        before = len(self.problems)
        if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS or name[0].isdigit():
            self.problem(where, label, name, "field names are lowercase letters, digits and '_'")
        elif not nested and name in COMMON_FIELDS:
            self.problem(where, label, name, f"every section has {', '.join(COMMON_FIELDS)}: do not declare them")
        if isinstance(raw, str):  # shorthand: `author: text`
            raw = {"type": raw}
        if not isinstance(raw, dict):
            self.problem(where, label, raw, "expected {type: ..., required: ...}")
            return None
        for key in sorted(set(raw) - _FIELD_KEYS, key=str):
            self.problem((*where, key), f"{label}.{key}", raw[key],
                         f"unknown schema key{did_you_mean(key, sorted(_FIELD_KEYS))}; fields take {', '.join(sorted(_FIELD_KEYS))}")
        kind = raw.get("type")
        if kind not in FIELD_TYPES:
            self.problem((*where, "type"), f"{label}.type", kind if kind is not None else "",
                         f"unknown type{did_you_mean(kind, FIELD_TYPES)}; use one of {', '.join(FIELD_TYPES)}")
        required = raw.get("required", False)
        if not isinstance(required, bool):
            self.problem((*where, "required"), f"{label}.required", required, "must be true or false")
        sub: tuple[FieldSpec, ...] = ()
        if kind in ("group", "list"):
            if nested:
                self.problem((*where, "type"), f"{label}.type", kind, "groups and lists hold plain fields only")
            sub = self.fields(raw.get("fields"), (*where, "fields"), f"{label}.", nested=True)
            if not sub and "fields" not in raw:
                self.problem(where, f"{label}.fields", "", f"a {kind} declares the fields of its items")
        elif "fields" in raw:
            self.problem((*where, "fields"), f"{label}.fields", raw["fields"], "only group and list fields have fields")
        max_chars = self.whole(raw, where, "max_chars", f"{label}.max_chars", 1, _MAX_CHARS_LIMIT)
        min_items = self.whole(raw, where, "min_items", f"{label}.min_items", 0, 100) or 0
        max_items = self.whole(raw, where, "max_items", f"{label}.max_items", 1, 100)
        if max_items is not None and min_items > max_items:
            self.problem((*where, "min_items"), f"{label}.min_items", min_items, "is above max_items")
        bounds = []
        for key in ("min", "max"):
            value = raw.get(key)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                self.problem((*where, key), f"{label}.{key}", value, "must be a number")
                value = None
            bounds.append(value)
        default = raw.get("default")
        if default is not None and kind not in ("text", "bool", "number"):
            self.problem((*where, "default"), f"{label}.default", default, "only text, bool and number fields take a default")
        if len(self.problems) > before:
            return None
        return FieldSpec(name=name, type=kind, required=required, max_chars=max_chars, min_items=min_items,
                         max_items=max_items, minimum=bounds[0], maximum=bounds[1], default=default,
                         description=str(raw.get("description") or ""), fields=sub)


def _read_kind(name: str, path: Path) -> tuple[SectionKind | None, list[InputProblem]]:
    try:
        source = read_lined_yaml(path)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 1
        return None, [InputProblem(str(path), line, "schema", "", f"not valid YAML: {exc}")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [InputProblem(str(path), 0, "file", "", f"cannot be read ({exc.__class__.__name__})")]
    reader = _SchemaReader(path, source)
    raw = source.data if source.data is not None else {}
    if not isinstance(raw, dict):
        return None, [InputProblem(str(path), 1, "schema", raw, "a kind's schema is a mapping: {role, description, fields}")]
    for key in sorted(set(raw) - _SCHEMA_KEYS, key=str):
        reader.problem((key,), key, raw[key], f"unknown key{did_you_mean(key, sorted(_SCHEMA_KEYS))};"
                                              f" schemas take {', '.join(sorted(_SCHEMA_KEYS))}")
    role = raw.get("role", "section")
    if role not in ROLES:
        reader.problem(("role",), "role", role, f"unknown role{did_you_mean(role, ROLES)}; use one of {', '.join(ROLES)}")
    fields = reader.fields(raw.get("fields"), ("fields",), "fields.", nested=False)
    if reader.problems:
        return None, reader.problems
    return SectionKind(name=name, role=role, description=str(raw.get("description") or "").strip(),
                       fields=fields, schema_path=path), []


_CACHE: dict[tuple, SectionKinds] = {}


def load_section_kinds(folder: Path | str) -> SectionKinds:
    """The kinds of the template folder `folder`: each `sections/<kind>.mjml.j2` with its `.yaml` schema.

    Raises InvalidSectionKinds listing every problem (a template without a schema, a schema
    without a template, an unknown type or key), each at its file and line.
    """
    from pipeline.project import theme_fallbacks

    folder = Path(folder)
    templates: dict[str, Path] = {}
    schemas: dict[str, Path] = {}
    # A theme (templates/themes/<name>/) overrides some files: a section template it overrides
    # keeps the default's schema unless the theme carries its own, and the kinds it does not
    # override come from the default set whole.
    for where in reversed((folder, *theme_fallbacks(folder))):
        sections = where / "sections"
        if sections.is_dir():
            templates.update({p.name[:-len(".mjml.j2")]: p for p in sections.glob("*.mjml.j2")})
            schemas.update({p.stem: p for p in sections.glob("*.yaml")})
    stamp = tuple(sorted((str(p), p.stat().st_mtime_ns) for p in [*templates.values(), *schemas.values()]))
    key = (str(folder.resolve()), stamp)
    if key in _CACHE:
        return _CACHE[key]
    problems: list[InputProblem] = []
    kinds: dict[str, SectionKind] = {}
    for name in sorted(set(templates) | set(schemas)):
        if name not in schemas:
            problems.append(InputProblem(str(templates[name]), 0, "file", "",
                                         f"a section template needs its schema beside it: {SCHEMA_FILE.format(kind=name)}"))
            continue
        if name not in templates:
            problems.append(InputProblem(str(schemas[name]), 0, "file", "",
                                         f"a kind's schema needs its template beside it: sections/{name}.mjml.j2"))
            continue
        if not name or not set(name) <= _NAME_CHARS | {"-"}:
            problems.append(InputProblem(str(schemas[name]), 0, "kind", name,
                                         "kind names are lowercase letters, digits, '-' and '_'"))
            continue
        kind, found = _read_kind(name, schemas[name])
        problems += found
        if kind is not None:
            kinds[name] = kind
    if problems:
        raise InvalidSectionKinds(problems)
    loaded = SectionKinds(folder=folder, by_name=kinds)
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[key] = loaded
    return loaded
