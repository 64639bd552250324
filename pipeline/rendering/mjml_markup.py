"""Reading MJML markup into a tree the way the reference MJML does, and noting what it repairs.

The reference (`mjml`, npm) reads MJML with a forgiving HTML parser: a closing tag that
matches no open element is dropped, a missing one is implied, text outside `mj-text` is
thrown away. Its validator then sees a repaired tree, so `</mj-colum>` or a forgotten
`</mj-column>` pass `mjml --validate strict` and the mistake reaches readers' HTML. We build
the same repaired tree (so our element and attribute verdicts match the reference's), and
report each repair as a markup problem the reference does not report.

Problems are returned, never raised: any text at all yields a tree and a list of problems.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from pipeline.rendering.mjml_table import ELEMENTS

__all__ = ["MjmlElement", "MjmlProblem", "MjmlTree", "parse_mjml"]

# HTML elements the reference's parser closes as soon as they open.
_VOID = frozenset({"area", "base", "basefont", "br", "col", "command", "embed", "frame", "hr", "img", "input",
                   "isindex", "keygen", "link", "meta", "param", "source", "track", "wbr"})
# HTML elements whose content the parser reads as text up to their own closing tag.
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "xmp"})
_RAW_CONTENT = frozenset(name for name, rule in ELEMENTS.items() if rule.raw_content)

_SPACE = " \t\n\f\r"
_NAME_END = re.compile(r"[ \t\n\f\r/>]")
_ATTR_NAME_END = re.compile(r"[ \t\n\f\r/>=]")
_UNQUOTED_END = re.compile(r"[ \t\n\f\r>]")
_NOT_SPACE = re.compile(r"[^ \t\n\f\r]")
_NEXT_TAG = re.compile(r"<[a-zA-Z!?/]")
_RAW_NEXT = re.compile(r"<(?:/?mj-|!--|(?:script|style|title|textarea|xmp)[ \t\n\f\r/>])", re.IGNORECASE)
# A whole well-formed open tag in one match (atomic groups keep it linear); anything else takes the slow path.
_WS = r"[ \t\n\f\r]"
_NAME = r"(?>[^ \t\n\f\r/>=]+)"
_UNQUOTED = r"(?>[^ \t\n\f\r>\"'][^ \t\n\f\r>]*)"
_FAST_TAG = re.compile(rf"""<([a-zA-Z](?>[^ \t\n\f\r/>]*))((?:(?>{_WS}+)|/(?!>)|{_NAME}"""
                       rf"""(?:{_WS}*={_WS}*(?:"[^"]*"|'[^']*'|{_UNQUOTED}))?)*)(/?)>""")
_ATTRIBUTE = re.compile(rf"""({_NAME})(?:{_WS}*={_WS}*(?:"([^"]*)"|'([^']*)'|({_UNQUOTED})))?""")


@dataclass(frozen=True)
class MjmlProblem:
    """One thing wrong in an MJML document, at a line of that document."""

    line: int
    offset: int  # where in the document, in characters
    field: str
    value: str
    reason: str
    # Whether `mjml --validate strict` refuses it too (False: the reference repairs it silently).
    reference: bool
    # Text to look for in the template's source to find the source line (empty: none).
    needle: str = ""


@dataclass
class MjmlElement:
    """An element of the tree the reference MJML would build (comments become `mj-raw`)."""

    name: str
    line: int
    offset: int
    attributes: dict[str, str] = field(default_factory=dict)
    children: list[MjmlElement] = field(default_factory=list)
    comment: bool = False


@dataclass
class MjmlTree:
    """The document's root element (None when there is no element at all) and markup problems."""

    root: MjmlElement | None
    problems: list[MjmlProblem]


@dataclass
class _Open:
    name: str
    line: int
    offset: int
    element: MjmlElement | None  # None for HTML inside raw content


_Token = tuple[str, int, str, list[tuple[str, str]], bool]


class _Lines:
    def __init__(self, text: str):
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)


def _tokens(text: str, in_raw: Callable[[], bool]) -> Iterator[_Token]:
    """(kind, offset, name-or-text, attributes, self-closing) for each token, as the reference's tokenizer cuts them.

    Inside raw HTML (`in_raw()`) only what can end it or hide its end is read: MJML tags,
    comments and script-like elements; the HTML between them is the author's, not MJML.
    """
    size, at = len(text), 0
    while at < size:
        if in_raw():
            found = _RAW_NEXT.search(text, at)
            if found is None:
                return
            lt = found.start()
        else:
            lt = text.find("<", at)
            lt = size if lt < 0 else lt
            # Whitespace between tags is the common case and means nothing: no token for it.
            if lt > at and _NOT_SPACE.search(text, at, lt):
                yield "text", at, text[at:lt], [], False
            if lt == size:
                return
        nxt = text[lt + 1:lt + 2]
        if text.startswith("<!--", lt):
            end = text.find("-->", lt + 4)
            at = size if end < 0 else end + 3
            yield "comment", lt, text[lt + 4:end if end >= 0 else size], [], False
        elif text.startswith("<![CDATA[", lt):
            end = text.find("]]>", lt + 9)
            at = size if end < 0 else end + 3
            yield "text", lt, text[lt + 9:end if end >= 0 else size], [], False
        elif nxt in ("!", "?"):
            end = text.find(">", lt)
            at = size if end < 0 else end + 1  # declarations and processing instructions mean nothing here
        elif nxt == "/":
            if text[lt + 2:lt + 3].isascii() and text[lt + 2:lt + 3].isalpha():
                stop = _NAME_END.search(text, lt + 2)
                name_end = stop.start() if stop else size
                end = text.find(">", name_end)
                at = size if end < 0 else end + 1
                if end < 0:
                    yield "unterminated", lt, text[lt + 2:name_end].lower(), [], False
                    return
                yield "close", lt, text[lt + 2:name_end].lower(), [], False
            else:
                end = text.find(">", lt)
                at = size if end < 0 else end + 1
        elif nxt.isascii() and nxt.isalpha():
            at = yield from _open_tag(text, lt)
        else:
            # Not a tag: the '<' is text; the text token runs on to the next real tag.
            following = _NEXT_TAG.search(text, lt + 1)
            at = following.start() if following else size
            yield "text", lt, text[lt:at], [], False


def _open_tag(text: str, lt: int) -> Generator[_Token, None, int]:
    """The tokens of the open tag at `lt` (and of a script-like element's text); returns where reading resumes."""
    fast = _FAST_TAG.match(text, lt)
    if fast is not None and fast.group(1).lower() not in _RAW_TEXT:
        attributes = [(m.group(1), next((v for v in m.group(2, 3, 4) if v is not None), ""))
                      for m in _ATTRIBUTE.finditer(fast.group(2))]
        yield "open", lt, fast.group(1).lower(), attributes, fast.group(3) == "/"
        return fast.end()
    size = len(text)
    stop = _NAME_END.search(text, lt + 1)
    at = stop.start() if stop else size
    name = text[lt + 1:at].lower()
    attributes: list[tuple[str, str]] = []
    while True:
        found = _NOT_SPACE.search(text, at)
        if not found:
            yield "unterminated", lt, name, attributes, False
            return size
        at, char = found.start(), text[found.start()]
        if char == ">":
            break
        if char == "/":
            if text[at + 1:at + 2] == ">":
                at += 1
                yield "open", lt, name, attributes, True
                return at + 1
            at += 1
            continue
        stop = _ATTR_NAME_END.search(text, at + 1)
        name_end = stop.start() if stop else size
        attribute = text[at:name_end]
        found = _NOT_SPACE.search(text, name_end)
        if found and text[found.start()] == "=":
            value_at = _NOT_SPACE.search(text, found.start() + 1)
            if not value_at:
                at = size
                continue
            at = value_at.start()
            quote = text[at]
            if quote in "\"'":
                end = text.find(quote, at + 1)
                value = text[at + 1:end if end >= 0 else size]
                at = size if end < 0 else end + 1
            else:
                stop = _UNQUOTED_END.search(text, at)
                value = text[at:stop.start() if stop else size]
                at = stop.start() if stop else size
            attributes.append((attribute, value))
        else:
            attributes.append((attribute, ""))
            at = name_end
    if name in _RAW_TEXT:
        # Script-like HTML elements hold text up to their own closing tag, whatever it contains.
        end = re.compile(rf"</{name}[ \t\n\f\r/>]", re.IGNORECASE).search(text, at + 1)
        yield "open", lt, name, attributes, False
        if end is None:
            return size
        yield "text", at + 1, text[at + 1:end.start()], [], False
        return end.start()
    yield "open", lt, name, attributes, False
    return at + 1


class _Builder:
    def __init__(self, text: str):
        self.lines = _Lines(text)
        self.stack: list[_Open] = []
        self.roots: list[MjmlElement] = []
        self.raw_depth = 0  # > 0 inside the raw HTML of mj-text, mj-button, mj-raw...
        self.raw_host = ""
        self.open_names: dict[str, int] = {}  # how many of each name are on the stack, to close in O(1)
        self.problems: list[MjmlProblem] = []

    def note(self, offset: int, field_: str, value: str, reason: str, needle: str = "") -> None:
        self.problems.append(MjmlProblem(self.lines.at(offset), offset, field_, value, reason, False, needle))

    def current(self) -> MjmlElement | None:
        return self.stack[-1].element if self.stack else None

    def open(self, offset: int, name: str, attributes: list[tuple[str, str]], self_closing: bool) -> None:
        line = self.lines.at(offset)
        raw = name in _RAW_CONTENT
        if self.raw_depth:
            if name.startswith("mj-"):
                self.note(offset, "element", name, f"inside the HTML of {self.raw_host}, where it is not compiled:"
                          f" close {self.raw_host} first", f"<{name}")
            if raw and not self_closing:
                self.raw_depth += 1
            if not self_closing and name not in _VOID:
                self.push(_Open(name, line, offset, None))
            return
        if name == "mj-include":
            # With includes off (the reference's default) the element vanishes with what it would include.
            self.note(offset, "element", name, "not supported: the reference drops it and mjml-python fails;"
                      " use Jinja's {% include %}", f"<{name}")
            if not self_closing:
                self.push(_Open(name, line, offset, None))
            return
        values: dict[str, str] = {}
        for key, value in attributes:
            if key in values:
                # The reference keeps the first value and says nothing.
                self.note(offset, f"{name} attribute", key, "given twice; only the first value counts", f"{key}=")
            else:
                values[key] = value
        element = MjmlElement(name, line, offset, values)
        parent = self.current()
        if parent is None:
            if self.roots:
                self.note(offset, "element", name, "after the end of the document (</mjml>); the reference drops"
                          " what came before it", f"<{name}")
            self.roots.append(element)
        else:
            parent.children.append(element)
        if self_closing or name in _VOID:
            return
        self.push(_Open(name, line, offset, element))
        if raw:
            self.raw_depth, self.raw_host = 1, name

    def push(self, entry: _Open) -> None:
        self.stack.append(entry)
        self.open_names[entry.name] = self.open_names.get(entry.name, 0) + 1

    def pop(self) -> _Open:
        entry = self.stack.pop()
        self.open_names[entry.name] -= 1
        return entry

    def close(self, offset: int, name: str) -> None:
        if name in _VOID:
            if name == "br":
                # The reference reads </br> as <br>, and ignores other void elements' closing tags.
                self.open(offset, name, [], True)
            return
        if not self.open_names.get(name):
            if name == "p":
                self.open(offset, name, [], True)  # a stray </p> is an empty p element to the reference
            elif not self.raw_depth or name.startswith("mj-"):
                expected = f"the open element is {self.stack[-1].name}" if self.stack else "no element is open"
                self.note(offset, "closing tag", f"</{name}>", f"matches no open element ({expected});"
                          " the reference ignores it", f"</{name}")
            return
        while self.stack:
            popped = self.pop()
            if popped.name in _RAW_CONTENT and self.raw_depth:
                self.raw_depth -= 1
            if popped.name == name:
                return
            if popped.element is not None or popped.name.startswith("mj-"):
                self.note(popped.offset, "element", popped.name,
                          f"not closed before </{name}>, which closes it", f"<{popped.name}")

    def text(self, offset: int, data: str) -> None:
        if self.raw_depth or not data.strip(_SPACE):
            return
        parent = self.current()
        shown = " ".join(data.split())
        start = offset + len(data) - len(data.lstrip(_SPACE))
        if parent is None:
            self.note(start, "text", shown, "outside <mjml>; the reference drops it", shown[:40])
        elif parent.name in ELEMENTS or parent.name == "mjml":
            self.note(start, "text", shown, f"directly inside {parent.name}, where the reference drops it;"
                      " text belongs in mj-text", shown[:40])

    def comment(self, offset: int) -> None:
        parent = self.current()
        if parent is not None and not self.raw_depth:
            # The reference keeps every comment as an mj-raw child, which some parents refuse.
            parent.children.append(MjmlElement("mj-raw", self.lines.at(offset), offset, comment=True))

    def finish(self) -> None:
        for popped in reversed(self.stack):
            if popped.element is not None or popped.name.startswith("mj-"):
                self.note(popped.offset, "element", popped.name,
                          "not closed by the end of the document", f"<{popped.name}")
        self.stack.clear()


def parse_mjml(text: str) -> MjmlTree:
    """The element tree the reference MJML reads from `text`, with every repair it makes silently."""
    builder = _Builder(text)
    for kind, offset, name, attributes, self_closing in _tokens(text, lambda: builder.raw_depth > 0):
        if kind == "open":
            builder.open(offset, name, attributes, self_closing)
        elif kind == "close":
            builder.close(offset, name)
        elif kind == "text":
            builder.text(offset, name)
        elif kind == "comment":
            builder.comment(offset)
        else:
            builder.note(offset, "tag", f"<{name}", "never ends (no '>')", f"<{name}")
    builder.finish()
    # The reference keeps the last element that opened at the top level as the document.
    return MjmlTree(builder.roots[-1] if builder.roots else None, builder.problems)
