"""The template set: Jinja over MJML (autoescaped) and over plain text, and MJML compilation.

`check_mjml` validates the rendered document (`mjml_rules`) and names each problem's
template and nearest source line. `mjml-python` validates nothing and raises a bare
ValueError without a position; `compile_mjml` catches it and names the template and the
nearest line it can find.
"""

from __future__ import annotations

import bisect
import itertools
import re
import xml.parsers.expat
from dataclasses import dataclass
from pathlib import Path

import jinja2
import mjml

from pipeline.errors import InputProblem, InvalidTemplates, TemplateError
from pipeline.project import THEMES_FOLDER, theme_fallbacks
from pipeline.rendering.mjml_rules import MjmlProblem, mjml_problems

__all__ = ["TemplateSet", "MjmlPart", "check_mjml", "compile_mjml", "whole_pixel_widths", "theme_fallbacks",
           "SECTION_TEMPLATE", "THEMES_FOLDER"]

SECTION_TEMPLATE = "sections/{kind}.mjml.j2"


def _source(where: Path | TemplateSet, template: str) -> Path:
    return where.path_of(template) if isinstance(where, TemplateSet) else where / template


@dataclass(frozen=True)
class MjmlPart:
    """A piece of a rendered MJML document and the template it came from."""

    template: str
    mjml: str
    # The template's line that this piece's first line was rendered from (0: an added line before it).
    first_line: int = 1


class TemplateSet:
    """Templates of one folder: `layout.mjml.j2`, `sections/<kind>.mjml.j2`, `text/*.txt.j2`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        # A theme overrides some files and takes the rest from the default set (see `theme_fallbacks`).
        self.folders = (self.folder, *theme_fallbacks(self.folder))
        if not self.path_of("layout.mjml.j2").is_file():
            raise TemplateError(f"{self.folder}: no layout.mjml.j2 here; set READERFIRST_TEMPLATES to a templates folder")
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(f)) for f in self.folders])
        # Autoescape on for MJML: reader data and content never become markup or template code.
        self.mjml_env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                           trim_blocks=False, keep_trailing_newline=True)
        self.text_env = jinja2.Environment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined,
                                           keep_trailing_newline=True)

    def path_of(self, name: str) -> Path:
        """The file template `name` is read from: the theme's own, else the default set's."""
        for folder in self.folders:
            if (folder / name).is_file():
                return folder / name
        return self.folder / name

    def has_kind(self, kind: str) -> bool:
        """Whether a partial exists for section kind `kind` (in the theme or the default set)."""
        return self.path_of(SECTION_TEMPLATE.format(kind=kind)).is_file()

    def render_mjml(self, name: str, **context) -> str:
        """Render MJML template `name`; errors name the template and line."""
        return self._render(self.mjml_env, name, context)

    def render_text(self, name: str, **context) -> str:
        """Render text template `name`; errors name the template and line."""
        return self._render(self.text_env, name, context)

    def _render(self, env: jinja2.Environment, name: str, context: dict) -> str:
        try:
            return env.get_template(name).render(**context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{self.path_of(exc.name or name)}:{exc.lineno}: {exc.message}") from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{self.folder / name}: template not found ({exc.name})") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{self.path_of(name)}: {exc.message}") from exc


def _xml_problem(text: str) -> tuple[int, str] | None:
    """(line, message) of the first well-formedness error expat finds in `text`, if any."""
    parser = xml.parsers.expat.ParserCreate()
    parser.UseForeignDTD(True)  # HTML entities such as &nbsp; are not errors here
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        return exc.lineno, xml.parsers.expat.ErrorString(exc.code)
    return None


def _locate(parts: list[MjmlPart], folder: Path | TemplateSet) -> str:
    """The nearest template and line to blame for a failed compile of `parts` joined."""
    offset = 1
    joined = "".join(p.mjml for p in parts)
    found = _xml_problem(joined)
    if found:
        line, message = found
        for part in parts:
            count = part.mjml.count("\n")
            if line < offset + count + 1:
                local = line - offset + 1
                text = part.mjml.splitlines()[local - 1].strip() if part.mjml.splitlines() else ""
                return f"{_source(folder, part.template)}: rendered line {local}: {message}: {text[:120]}"
            offset += count
    for part in parts[1:]:
        try:
            mjml.mjml2html(f"<mjml><mj-body>{part.mjml}</mj-body></mjml>")
        except ValueError:
            return f"{_source(folder, part.template)}: this partial does not compile on its own"
    return f"{_source(folder, parts[0].template)}"


class _TemplateLines:
    """Maps offsets in a document made of `parts` to template source lines (built once per check)."""

    def __init__(self, parts: list[MjmlPart], folder: Path | TemplateSet):
        self.parts, self.folder = parts, folder
        self.starts = list(itertools.accumulate((len(p.mjml) for p in parts[:-1]), initial=0))
        self.newlines: dict[int, list[int]] = {}
        self.sources: dict[str, list[str]] = {}
        self.found: dict[tuple[str, str], list[int]] = {}

    def _lines_with(self, template: str, needle: str) -> list[int]:
        key = (template, needle)
        if key not in self.found:
            if template not in self.sources:
                try:
                    text = _source(self.folder, template).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    text = ""
                self.sources[template] = text.splitlines()
            self.found[key] = [n for n, line in enumerate(self.sources[template], 1) if needle and needle in line]
        return self.found[key]

    def problem(self, problem: MjmlProblem) -> InputProblem:
        """The problem as TEMPLATE:LINE: field=value: reason, on the nearest source line holding its text."""
        index = max(bisect.bisect_right(self.starts, problem.offset) - 1, 0)
        part = self.parts[index]
        if index not in self.newlines:
            self.newlines[index] = [m.start() for m in re.finditer("\n", part.mjml)]
        rendered = part.first_line + bisect.bisect_left(self.newlines[index], problem.offset - self.starts[index])
        # Jinja blocks and loops move lines: prefer the source line nearest to the rendered one that
        # holds the problem's text (the tag, the attribute), else the rendered line.
        found = self._lines_with(part.template, problem.needle)
        line = max(rendered, 1)
        if found:
            at = bisect.bisect_left(found, rendered)
            line = min(found[max(at - 1, 0):at + 1], key=lambda n: (abs(n - rendered), n))
        return InputProblem(str(_source(self.folder, part.template)), line, problem.field, problem.value, problem.reason)


def check_mjml(parts: list[MjmlPart], folder: Path | TemplateSet) -> None:
    """Refuse a document that the reference MJML refuses or silently repairs, naming templates and lines."""
    problems = mjml_problems("".join(p.mjml for p in parts))
    if problems:
        lines = _TemplateLines(parts, folder)
        # A partial used by several sections repeats its problem once per section: report it once.
        raise InvalidTemplates(list(dict.fromkeys(lines.problem(p) for p in problems)))


def compile_mjml(parts: list[MjmlPart], folder: Path | TemplateSet) -> str:
    """Compile the MJML document made of `parts` with mjml-python (MRML), in whole pixels."""
    source = "".join(p.mjml for p in parts)
    try:
        return whole_pixel_widths(mjml.mjml2html(source))
    except ValueError as exc:
        raise TemplateError(f"MJML compile failed ({exc}) near {_locate(parts, folder)}") from exc


_SIZED_TAG = re.compile(r"<(?:td|img)\b[^<>]*>")
_COLUMN_WIDTH = re.compile(r"(vertical-align:[a-z]+;width:)(\d+)\.(\d+)px")
_FRACTIONAL = re.compile(r'(width:|width=")(\d+)\.\d+(px|")')


def _round_half_up(whole: str, fraction: str) -> str:
    return str(int(whole) + (fraction[0] >= "5"))


def _whole_tag(match: re.Match) -> str:
    tag = _COLUMN_WIDTH.sub(lambda m: m[1] + _round_half_up(m[2], m[3]) + "px", match[0])
    return _FRACTIONAL.sub(lambda m: m[1] + m[2] + m[3], tag)


def whole_pixel_widths(html: str) -> str:
    """MRML's fractional widths (`width="177.6"`) in whole pixels, as the reference MJML writes them.

    The reference rounds a column's Outlook cell (`Math.round` of 201.6 is 202) and truncates an
    image's width (`parseInt` of its box, 177); mjml-python keeps the fraction, which some clients
    (Outlook's Word engine) misread. Only `td` and `img` tags change: text never holds a raw tag,
    so a section about CSS is left as written. The same rule applies to skeletons and chunks, so
    spliced variants stay byte-identical to compiling each reader's document.
    """
    return _SIZED_TAG.sub(_whole_tag, html)

