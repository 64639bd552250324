"""Section bodies: Markdown to well-formed HTML (raw HTML refused) and to plain text.

Two additions to CommonMark, both checked when the edition loads (`markdown_problems`):
images need alt text (`![what it shows](https://...)`), and a link to `reader:preferences`,
`reader:unsubscribe` or `reader:web_version` becomes that reader's own link. The `reader:`
scheme only means something as a link's target, so no editor's wording can turn into one,
and the merge tag it becomes is written here, never taken from the editor's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it import MarkdownIt
from markupsafe import Markup

from pipeline.rendering.merge import merge_tag

__all__ = ["render_markdown", "markdown_to_text", "markdown_problems", "READER_LINKS", "READER_SCHEME"]

READER_SCHEME = "reader:"
# The reader's links an editor can use in body text, and the merge field each becomes.
READER_LINKS = {"preferences": "preferences_url", "unsubscribe": "unsubscribe_url", "web_version": "web_version_url"}
# Fluid in narrow mail clients, never wider than the column; inline because Gmail drops classes on img.
IMAGE_STYLE = "display:block;max-width:100%;height:auto;border:0"

# html=False: HTML typed into content is shown as text, never becomes markup.
# xhtmlOut: MRML needs well-formed HTML inside mj-text (<br />, <img ... />, not <br>).
_MD = MarkdownIt("commonmark", {"html": False, "xhtmlOut": True, "linkify": False, "typographer": False})


def _reader_link(href: str) -> str | None:
    """The merge tag a `reader:` link stands for, or None when `href` is not one we know."""
    if not href.startswith(READER_SCHEME):
        return None
    field = READER_LINKS.get(href[len(READER_SCHEME):])
    return merge_tag(field) if field else None


def _link_target(href: str, tag: Callable[[str], str]) -> str:
    found = _reader_link(href)
    if found is not None:
        return found
    if href.startswith(READER_SCHEME):
        return "#"  # refused when the edition loads; never a link to nowhere if one slips through
    return tag(href)


def render_markdown(body: str, tag: Callable[[str], str]) -> Markup:
    """HTML for `body`, every link passed through `tag`, `reader:` links made the reader's own."""
    env: dict = {}
    tokens = _MD.parse(body, env)
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                href = child.attrGet("href")
                if href:
                    child.attrSet("href", _link_target(str(href), tag))
            elif child.type == "image":
                child.attrSet("style", IMAGE_STYLE)
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
            if href.startswith(("http://", "https://")) or _reader_link(href):
                out.append(f" <{_link_target(href, tag)}>")
        elif child.type == "image":
            out.append(f"[{child.content}]")  # its alt text: what the picture shows
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif child.type in ("text", "code_inline", "html_inline"):
            out.append(child.content)
    text = "".join(out)
    # An autolink's text is its own URL: keep only the tagged form.
    return re.sub(r"(https?://\S+) <(\1\S*)>", r"<\2>", text)


def markdown_problems(body: str) -> list[tuple[int, str, str]]:
    """(line within `body`, value, reason) of every image without alt text or web source, and unknown reader link."""
    from pipeline.content.kinds import did_you_mean
    from pipeline.content.section_fields import is_web_url

    problems: list[tuple[int, str, str]] = []
    for token in _MD.parse(body):
        line = token.map[0] if token.map else 0
        for child in token.children or ():
            if child.type == "image":
                src = str(child.attrGet("src") or "")
                if not child.content.strip():
                    problems.append((line, src, "an image needs alt text: ![what it shows](address)"))
                elif not is_web_url(src):
                    problems.append((line, src, "an image's address must be an http(s) URL with a host name"))
            elif child.type == "link_open":
                href = str(child.attrGet("href") or "")
                if href.startswith(READER_SCHEME) and _reader_link(href) is None:
                    name = href[len(READER_SCHEME):]
                    problems.append((line, href, f"unknown reader link{did_you_mean(name, list(READER_LINKS))};"
                                                 f" use {', '.join(READER_SCHEME + n for n in READER_LINKS)}"))
    return problems
