"""The engagement report: per edition, section, topic and arm, as JSON, Markdown or one HTML file.

`build_report` reads the database into a plain `Report`; `render_json`, `render_markdown` and
`render_html` turn that one `Report` into text, so every format says the same numbers.
"""

from __future__ import annotations

# Each name loads its module on first use: `readerfirst --help` (and `send`) never load the HTML renderer.
_MODULES = {"InvalidThreshold": "metrics", "UnknownEdition": "metrics", "build_report": "metrics",
            "DEFAULT_BOUNCE_THRESHOLD": "model", "SPAM_THRESHOLD": "model", "Report": "model",
            "render_html": "render_html", "render_json": "render_json", "edition_rows": "render_markdown",
            "render_markdown": "render_markdown"}


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        raise AttributeError(f"module 'pipeline.report' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"pipeline.report.{_MODULES[name]}")
    # Every name of that module is bound here at once: importing the submodule `render_markdown`
    # (for `edition_rows`, say) bound the name `render_markdown` to the module, and a later
    # `from pipeline.report import render_markdown` would get the module, not the function.
    globals().update({other: getattr(module, other) for other, home in _MODULES.items() if home == _MODULES[name]})
    return globals()[name]


__all__ = [
    "DEFAULT_BOUNCE_THRESHOLD",
    "SPAM_THRESHOLD",
    "InvalidThreshold",
    "Report",
    "UnknownEdition",
    "build_report",
    "edition_rows",
    "render_html",
    "render_json",
    "render_markdown",
]
