"""Subject lines: a sandboxed template over the reader's fields, one line, no header injection."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from pipeline.audience.profile import READER_FIELDS
from pipeline.content.wording import inert_text

__all__ = ["SubjectTemplate", "one_line"]

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def one_line(value: str) -> str:
    """`value` with CR, LF and other line breaks turned into spaces (no header injection)."""
    return " ".join(str(value).splitlines()).replace("\r", " ").replace("\n", " ")




class SubjectTemplate:
    """A subject such as `{{ first_name or "Hi" }}, your week in climate`."""

    def __init__(self, source: str):
        self.source = source
        self._template = _ENV.from_string(source)
        # Only the fields the subject uses matter: readers who share them share the subject.
        self.fields = tuple(sorted(meta.find_undeclared_variables(_ENV.parse(source))))
        self._render_fields = lru_cache(maxsize=4096)(self._render_uncached)

    @staticmethod
    def check(source: str) -> str | None:
        """Why `source` is not a usable subject template, or None."""
        try:
            template = SubjectTemplate(source)
            unknown = sorted(set(template.fields) - set(READER_FIELDS))
            if unknown:
                names = ", ".join(f"'{name}'" for name in unknown)
                return f"subject template error: {names} is undefined; reader fields are {', '.join(READER_FIELDS)}"
            template.render({f: "x" for f in READER_FIELDS})
        except TemplateError as exc:
            return f"subject template error: {exc}; reader fields are {', '.join(READER_FIELDS)}"
        return None

    def render(self, fields: dict[str, str]) -> str:
        """The subject for one reader; reader values are data, never template code."""
        return self._render_fields(tuple(str(fields.get(name, "")) for name in self.fields))

    def _render_uncached(self, values: tuple[str, ...]) -> str:
        # SendGrid applies substitutions to the subject too: neither the editor's words nor a
        # reader's value (nor the two side by side) may leave a `%%` that starts a tag.
        return inert_text(one_line(self._template.render(dict(zip(self.fields, values)))).strip())
