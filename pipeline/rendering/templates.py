"""The template set: Jinja over MJML (autoescaped) and over plain text, and MJML compilation.

`mjml-python` raises a bare ValueError without a position; `compile_mjml` catches it and
names the template and the nearest line it can find.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass
from pathlib import Path

import jinja2
import mjml

from pipeline.errors import TemplateError

__all__ = ["TemplateSet", "MjmlPart", "compile_mjml", "SECTION_TEMPLATE"]

SECTION_TEMPLATE = "sections/{kind}.mjml.j2"


@dataclass(frozen=True)
class MjmlPart:
    """A piece of a rendered MJML document and the template it came from."""

    template: str
    mjml: str


class TemplateSet:
    """Templates of one folder: `layout.mjml.j2`, `sections/<kind>.mjml.j2`, `text/*.txt.j2`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not (self.folder / "layout.mjml.j2").is_file():
            raise TemplateError(f"{self.folder}: no layout.mjml.j2 here; set READERFIRST_TEMPLATES to a templates folder")
        loader = jinja2.FileSystemLoader(str(self.folder))
        # Autoescape on for MJML: reader data and content never become markup or template code.
        self.mjml_env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                           trim_blocks=False, keep_trailing_newline=True)
        self.text_env = jinja2.Environment(loader=loader, autoescape=False, undefined=jinja2.StrictUndefined,
                                           keep_trailing_newline=True)

    def has_kind(self, kind: str) -> bool:
        """Whether a partial exists for section kind `kind`."""
        return (self.folder / SECTION_TEMPLATE.format(kind=kind)).is_file()

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
            raise TemplateError(f"{self.folder / name}:{exc.lineno}: {exc.message}") from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{self.folder / name}: template not found ({exc.name})") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{self.folder / name}: {exc.message}") from exc


def _xml_problem(text: str) -> tuple[int, str] | None:
    """(line, message) of the first well-formedness error expat finds in `text`, if any."""
    parser = xml.parsers.expat.ParserCreate()
    parser.UseForeignDTD(True)  # HTML entities such as &nbsp; are not errors here
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        return exc.lineno, xml.parsers.expat.ErrorString(exc.code)
    return None


def _locate(parts: list[MjmlPart], folder: Path) -> str:
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
                return f"{folder / part.template}: rendered line {local}: {message}: {text[:120]}"
            offset += count
    for part in parts[1:]:
        try:
            mjml.mjml2html(f"<mjml><mj-body>{part.mjml}</mj-body></mjml>")
        except ValueError:
            return f"{folder / part.template}: this partial does not compile on its own"
    return f"{folder / parts[0].template}"


def compile_mjml(parts: list[MjmlPart], folder: Path) -> str:
    """Compile the MJML document made of `parts` with mjml-python (MRML)."""
    source = "".join(p.mjml for p in parts)
    try:
        return mjml.mjml2html(source)
    except ValueError as exc:
        raise TemplateError(f"MJML compile failed ({exc}) near {_locate(parts, folder)}") from exc

