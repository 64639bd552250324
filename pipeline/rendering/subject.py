"""Subject lines: a sandboxed template over the reader's fields, one line, no header injection."""

from __future__ import annotations

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from pipeline.audience.profile import READER_FIELDS

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

    @staticmethod
    def check(source: str) -> str | None:
        """Why `source` is not a usable subject template, or None."""
        try:
            SubjectTemplate(source).render({f: "x" for f in READER_FIELDS})
        except TemplateError as exc:
            return f"subject template error: {exc}; reader fields are {', '.join(READER_FIELDS)}"
        return None

    def render(self, fields: dict[str, str]) -> str:
        """The subject for one reader; reader values are data, never template code."""
        return one_line(self._template.render({k: one_line(v) for k, v in fields.items()})).strip()
