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
    """Plain-text form of `body`: paragraphs and list items kept, every link written out and tagged."""
    blocks: list[str] = []
    bullets: list[str] = []
    for token in _MD.parse(body):
        if token.type == "bullet_list_open":
            bullets.append("-")
        elif token.type == "ordered_list_open":
            bullets.append("1.")
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            bullets.pop()
        elif token.type == "inline":
            prefix = f"{'  ' * (len(bullets) - 1)}{bullets[-1]} " if bullets else ""
            blocks.append(prefix + _inline_text(token.children or [], tag))
    return "\n\n".join(blocks).strip()


def _inline_text(children, tag: Callable[[str], str]) -> str:
    out: list[str] = []
    hrefs: list[str] = []
    for child in children:
        if child.type == "link_open":
            hrefs.append(str(child.attrGet("href") or ""))
        elif child.type == "link_close":
            href = hrefs.pop() if hrefs else ""
            if href.startswith(("http://", "https://")):
                out.append(f" <{tag(href)}>")
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif child.type in ("text", "code_inline", "html_inline"):
            out.append(child.content)
    text = "".join(out)
    # An autolink's text is its own URL: keep only the tagged form.
    return re.sub(r"(https?://\S+) <(\1\S*)>", r"<\2>", text)
