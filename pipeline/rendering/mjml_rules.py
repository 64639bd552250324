"""A structural MJML validator in Python: what `mjml --validate strict` refuses, and what it repairs.

mjml-python (MRML) compiles without validating, so `<mj-bogus>` or `</mj-colum>` reached
readers' HTML. This module checks a rendered MJML document against the reference MJML's own
element table (`mjml_table`, generated from the npm package by tools/mjml_table.py):

- the rules the reference enforces in strict mode: unknown elements, elements in a parent
  that does not accept them, attributes an element does not have, values of the wrong type,
  a document that is not `<mjml>` with an `mj-body`;
- markup the reference repairs without a word (`mjml_markup`): unclosed and mismatched tags,
  text outside `mj-text` (dropped), MJML elements inside raw HTML (not compiled), repeated
  attributes, `mj-include` (dropped); and a few attributes without which the output is
  broken (`REQUIRED`).

It needs no Node and runs once per edition, in milliseconds.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import lru_cache

from pipeline.rendering.mjml_markup import MjmlElement, MjmlProblem, parse_mjml
from pipeline.rendering.mjml_table import ELEMENTS
from pipeline.rendering.mjml_types import value_problem

__all__ = ["mjml_problems", "REQUIRED", "MjmlProblem"]

# Accepted on every element by the reference.
_EVERYWHERE = ("mj-class", "css-class")
# Elements that have no component in the reference: it accepts them anywhere and checks nothing of
# theirs, although they only mean something in one place (where we check it).
_COMPONENTLESS = {"mj-all": "mj-attributes", "mj-class": "mj-attributes", "mj-selector": "mj-html-attributes",
                  "mj-html-attribute": "mj-selector"}
# Attributes without which the element's output is broken or meaningless (the reference does not check them).
REQUIRED = {"mj-image": ("src",), "mj-carousel-image": ("src",), "mj-font": ("name", "href"),
            "mj-class": ("name",), "mj-selector": ("path",), "mj-html-attribute": ("name",)}
# The reference compiles the first of each and ignores the others.
_ONCE = ("mj-head", "mj-body")


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


@lru_cache(maxsize=None)
def _parents_of(name: str) -> list[str]:
    return sorted(parent for parent, rule in ELEMENTS.items() if name in rule.children or rule.any_child)


def _reference(at: MjmlElement, field: str, value: str, reason: str, needle: str) -> MjmlProblem:
    return MjmlProblem(at.line, at.offset, field, value, reason, True, needle)


def _stricter(at: MjmlElement, field: str, value: str, reason: str, needle: str) -> MjmlProblem:
    return MjmlProblem(at.line, at.offset, field, value, reason, False, needle)


def _check_element(element: MjmlElement, problems: list[MjmlProblem]) -> None:
    """The reference's rules for one element and its direct children (mjml itself is exempt, as there)."""
    name = element.name
    rule = ELEMENTS.get(name)
    if name != "mjml" and rule is None and name not in _COMPONENTLESS:
        problems.append(_reference(element, "element", name,
                                   f"unknown MJML element{_hint(name, [*ELEMENTS, *_COMPONENTLESS])}", f"<{name}"))
    if rule is not None and name != "mjml":
        for attribute, value in element.attributes.items():
            spec = rule.attributes.get(attribute)
            if spec is None and attribute not in _EVERYWHERE:
                problems.append(_reference(element, f"{name} attribute", attribute, "unknown attribute"
                                           f"{_hint(attribute, rule.attributes)}", f"{attribute}="))
            elif spec is not None and (why := value_problem(spec, value)) is not None:
                problems.append(_reference(element, f"{name} {attribute}", value, why,
                                           f"{attribute}="))
        for child in element.children:
            if (child.name in ELEMENTS and child.name not in rule.children and not rule.any_child):
                allowed = ", ".join(_parents_of(child.name)) or "nowhere"
                what = "a comment (the reference keeps it as mj-raw)" if child.comment else child.name
                problems.append(_reference(child, "element", "mj-raw" if child.comment else child.name,
                                           f"{what} cannot be inside {name}; only inside {allowed}",
                                           "<!--" if child.comment else f"<{child.name}"))
    for child in element.children:
        if child.name in _COMPONENTLESS and name != _COMPONENTLESS[child.name]:
            problems.append(_stricter(child, "element", child.name, f"means nothing inside {name}; only"
                                      f" inside {_COMPONENTLESS[child.name]}", f"<{child.name}"))
        # Inside mj-attributes an element only sets defaults, so nothing is required of it there.
        for attribute in REQUIRED.get(child.name, ()) if name != "mj-attributes" else ():
            if not child.attributes.get(attribute, "").strip():
                problems.append(_stricter(child, f"{child.name} {attribute}", child.attributes.get(attribute, ""),
                                          f"{child.name} needs a non-empty {attribute}", f"<{child.name}"))
    if name == "mjml":
        for once in _ONCE:
            extra = [child for child in element.children if child.name == once][1:]
            problems.extend(_stricter(child, "element", once, f"a second {once} in {name}; the reference"
                                      " compiles only the first", f"<{once}") for child in extra)


def mjml_problems(text: str) -> list[MjmlProblem]:
    """Every problem of the MJML document `text`, in document order; never raises on any text."""
    tree = parse_mjml(text)
    problems = list(tree.problems)
    root = tree.root
    if root is None:
        problems.append(MjmlProblem(1, 0, "document", text.strip()[:40], "no MJML element at all; start with <mjml>",
                                    True))
        return problems
    if root.name != "mjml":
        problems.append(_reference(root, "element", root.name, "the document must be one <mjml> element",
                                   f"<{root.name}"))
    elif not any(child.name == "mj-body" for child in root.children):
        problems.append(_reference(root, "element", "mjml", "has no mj-body, so there is nothing to"
                                   " send", "<mjml"))
    pending = [root]
    while pending:  # iterative: a hostile document may nest deeper than Python's recursion limit
        element = pending.pop()
        _check_element(element, problems)
        pending.extend(reversed(element.children))
    problems.sort(key=lambda p: p.offset)
    return problems
