"""The project's errors: one base, with built-in mix-ins so callers can catch either.

Every error names what the user must fix. Configuration errors stand apart from
transient ones so that a retry never swallows them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "visible",
    "PipelineError",
    "ConfigurationError",
    "InputProblem",
    "InvalidAudience",
    "InvalidEdition",
    "TemplateError",
    "InvalidTemplates",
    "InvalidSectionKinds",
    "RenderError",
    "TransportError",
    "TransientTransportError",
    "UnknownReader",
    "NotSendable",
    "ImportInterrupted",
]


class PipelineError(Exception):
    """Base of every error readerfirst raises on purpose."""


class ConfigurationError(PipelineError, ValueError):
    """A setting is missing or wrong; retrying cannot help."""


def visible(text: str) -> str:
    """`text` with control, format (bidi, zero-width) and separator characters written as escapes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


@dataclass(frozen=True)
class InputProblem:
    """One bad value in an input file: where it is, what it is and why it is wrong."""

    file: str
    line: int
    field: str
    value: object
    reason: str

    def __str__(self) -> str:
        value = self.value if isinstance(self.value, str) else repr(self.value)
        if len(value) > 80:
            value = value[:77] + "..."
        if self.line == 0:  # the whole file, not one of its lines
            if self.field == "file":
                return f"{self.file}: {self.reason}"
            return f"{self.file}: {self.field}={visible(value)}: {self.reason}"
        # One problem per line, and nothing a terminal would obey: line breaks, escape sequences
        # and invisible or direction-changing characters are shown as escapes.
        return f"{self.file}:{self.line}: {self.field}={visible(value)}: {self.reason}"


class _ProblemsError(PipelineError, ValueError):
    """An input that failed validation, with every problem found (not just the first)."""

    what = "input"
    outcome = "nothing was changed"

    def __init__(self, problems: list[InputProblem]):
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in {self.what}; {self.outcome}:"
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))

    def __reduce__(self):
        # Raised in a task on a Dask worker, the error travels back pickled: by its arguments.
        return type(self), (self.problems,)


class InvalidAudience(_ProblemsError):
    """An audience file has bad rows; the import changed nothing."""

    what = "audience file"


class InvalidEdition(_ProblemsError):
    """An edition file is invalid; nothing was sent."""

    what = "edition"
    outcome = "nothing was sent"


class TemplateError(PipelineError, ValueError):
    """A template failed to render or compile; the message names the template and line."""


class InvalidTemplates(_ProblemsError, TemplateError):
    """Templates render MJML that the reference MJML refuses or silently repairs; nothing was sent."""

    what = "the MJML of the templates"
    outcome = "nothing was sent"


class InvalidSectionKinds(_ProblemsError, TemplateError):
    """A section kind's schema (`templates/sections/<kind>.yaml`) is missing or wrong; nothing was sent."""

    what = "the section kinds of the templates"
    outcome = "nothing was sent"


class RenderError(PipelineError, ValueError):
    """A rendered message broke a rule (such as Gmail's clipping size) and must not be sent."""


class UnknownReader(PipelineError, LookupError):
    """No reader with that address in that audience."""


class NotSendable(PipelineError, ValueError):
    """The reader exists but must not get this edition: unsubscribed, suppressed or already sent."""


class ImportInterrupted(PipelineError, RuntimeError):
    """An import stopped for a reason outside the file (a checking process was killed); nothing was imported."""

    exit_code = 1  # not the file's fault: run the import again


class TransportError(PipelineError):
    """The transport refused a batch; retrying the same batch will not help."""

    # True when the batch may have reached readers (a timeout after sending): never resend it blindly.
    maybe_delivered = False
    # Readers the provider refused by name before this error (reader id -> reason): never sent,
    # whatever became of the rest of the batch.
    refused: dict[int, str] = {}


class TransientTransportError(TransportError, OSError):
    """The transport failed in a way that may pass (network, rate limit, server error)."""
