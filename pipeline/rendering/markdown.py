"""Section bodies: Markdown to well-formed HTML (raw HTML refused) and to plain text."""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["render_markdown", "markdown_to_text"]

# html=False: HTML typed into content is shown as text, never becomes markup.
# xhtmlOut: MRML needs well-formed HTML inside mj-text (<br />, not <br>).
_MD = MarkdownIt("commonmark", {"html": False, "xhtmlOut": True, "linkify": False, "typographer": False})
_MD.disable("image")  # images belong in the section's image field, which requires alt text
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def render_markdown(body: str, tag: Callable[[str], str]) -> Markup:
    """HTML for `body`, every link passed through `tag`."""
    env: dict = {}
    tokens = _MD.parse(body, env)
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                href = child.attrGet("href")
                if href:
                    child.attrSet("href", tag(str(href)))
    return Markup(_MD.renderer.render(tokens, _MD.options, env))


def markdown_to_text(body: str, tag: Callable[[str], str]) -> str:
    """Plain-text form of `body`: Markdown kept readable, links written out and tagged."""
    return _LINK.sub(lambda m: f"{m.group(1)} <{tag(m.group(2))}>", body).strip()
