"""One edition compiled once: a skeleton and per-section chunks that splice into each variant.

MRML's output can be cut at `<mj-raw>` comment markers placed directly inside `mj-body`.
The edition is compiled once with every section; each section's chunk is the HTML between
its marker and the next. The head of the document (its CSS) depends on which components
appear: column widths, images. So each section's *shape* (its MJML tags and layout
attributes, without text or addresses) is compiled once on its own; a section whose head is
the layout's own adds nothing, and a reader's skeleton (prefix and suffix) is compiled once
per set of distinct heads actually used. With N kinds that is a handful of shapes, not 2^N
sets of kinds. A test checks that the spliced output is byte-identical to compiling a
reader's own document.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from markupsafe import Markup

from pipeline.audience.ask_tokens import ASK_WORDS_FIELD, ask_merge_name
from pipeline.content.ask import ask_topics, asks
from pipeline.content.edition import Edition, Section
from pipeline.content.kinds import TEXT_TEMPLATE, FieldSpec, SectionKinds, load_section_kinds
from pipeline.errors import RenderError, TemplateError
from pipeline.rendering.event_times import when_tag
from pipeline.rendering.identity import SenderIdentity
from pipeline.rendering.links import tag_url
from pipeline.rendering.markdown import markdown_to_text, render_markdown
from pipeline.rendering.merge import MAX_FIELD_CHARS, MergeTemplate, ReaderTags, merge_tag
from pipeline.rendering.templates import SECTION_TEMPLATE, MjmlPart, TemplateSet, check_mjml, compile_mjml

__all__ = ["EditionLayout", "VariantBody", "GMAIL_CLIP_BYTES", "section_marker", "DateView", "GENERIC_TEXT_TEMPLATE",
           "PREHEADER_SPACER"]

GMAIL_CLIP_BYTES = 102 * 1024
# After the preheader, inboxes show whatever text comes next (the masthead, "View in browser").
# A run of invisible, non-collapsing characters fills the preview line instead: combining
# grapheme joiner, zero-width non-joiner and no-break space, the pattern Litmus documents.
PREHEADER_SPACER = Markup("&#847;&zwnj;&nbsp;" * 90)
_SENTINEL = "\x00rf-sections\x00"
_END = "end"
GENERIC_TEXT_TEMPLATE = "text/section.txt.j2"  # the text part of a kind without its own
# What a section's head contribution can depend on: its tags and their layout attributes, not its
# words or addresses (those vary from section to section and never reach the CSS).
_MJ_TAG = re.compile(r"<(mj-[a-z-]+)((?:\s+[a-z-]+=\"[^\"]*\")*)\s*/?>")
_CONTENT_ATTRIBUTE = re.compile(r'\s+(?:href|src|alt|title|name)="[^"]*"')


def section_marker(section_id: str) -> str:
    """The comment that marks where a section's chunk starts in compiled HTML."""
    return f"<!-- rf:section:{section_id} -->"


def _mj_marker(name: str) -> str:
    return f"<mj-raw>{section_marker(name)}</mj-raw>\n"


@dataclass(frozen=True)
class VariantBody:
    """The HTML and text of one variant, with merge tags for what differs per reader."""

    section_ids: tuple[str, ...]
    html: MergeTemplate
    text: MergeTemplate


@dataclass(frozen=True)
class DateView:
    """A date or date-time field as templates see it: `{{ value }}` reads "Thu 10 Dec 2026, 18:00"."""

    iso: str

    @property
    def has_time(self) -> bool:
        """Whether a time of day was given."""
        return len(self.iso) > 10

    def __str__(self) -> str:
        value = dt.datetime.fromisoformat(self.iso)
        return value.strftime("%a %d %b %Y, %H:%M" if self.has_time else "%a %d %b %Y")

    def __html__(self) -> str:  # Jinja's autoescape: the text has no markup characters
        return str(self)


def _shape(mjml: str) -> str:
    """The section's MJML tags and layout attributes: what its share of the document's head depends on."""
    return "".join(_CONTENT_ATTRIBUTE.sub("", m.group(0)) for m in _MJ_TAG.finditer(mjml))


class EditionLayout:
    """An edition compiled against a template set, ready to make any variant by splicing."""

    def __init__(self, edition: Edition, templates: TemplateSet, *, newsletter_name: str = "readerfirst",
                 identity: SenderIdentity | None = None):
        self._render_templates(edition, templates, identity or SenderIdentity(newsletter_name=newsletter_name))
        self._heads: dict[str, tuple[str, str]] = {}  # section shape -> its skeleton alone
        # Refused here, before anything is compiled or sent: mjml-python would compile it regardless.
        check_mjml(self._parts([s.id for s in edition.sections]), templates)
        html = self.compile_document([s.id for s in edition.sections])
        self._chunks = self._cut(html, [s.id for s in edition.sections])[1]

    @classmethod
    def mjml_source(cls, edition: Edition, templates: TemplateSet, *, newsletter_name: str = "readerfirst",
                    identity: SenderIdentity | None = None) -> str:
        """The MJML document with every section, rendered but neither validated nor compiled (for tools)."""
        layout = cls.__new__(cls)
        layout._render_templates(edition, templates, identity or SenderIdentity(newsletter_name=newsletter_name))
        return layout.mjml_document([s.id for s in edition.sections])

    # -- rendering the templates ---------------------------------------------------------
    def _render_templates(self, edition: Edition, templates: TemplateSet, identity: SenderIdentity) -> None:
        self.edition = edition
        self.templates = templates
        self.newsletter = SimpleNamespace(name=identity.newsletter_name, organization=identity.organization,
                                          postal_address=identity.postal_address)
        missing = sorted({s.kind for s in edition.sections if not templates.has_kind(s.kind)})
        if missing:
            raise TemplateError(f"{templates.folder}: no partial for section kind(s) {', '.join(missing)}"
                                f" (expected {SECTION_TEMPLATE.format(kind=missing[0])})")
        self.kinds: SectionKinds = load_section_kinds(templates.folder)
        self._intro = self._rich(edition.intro, "intro")
        self._sign_off = self._rich(edition.sign_off, "sign-off")
        self._views = {s.id: self._view(s) for s in edition.sections}
        self._mjml_parts = {s.id: self._render_section(s) for s in edition.sections}
        self._text_chunks = {s.id: self._render_text_section(s) for s in edition.sections}
        self._layout_head, self._layout_tail = self._render_layout()
        self._text_head, self._text_tail = self._render_text_layout()
        self._skeletons: dict[frozenset[tuple[str, str]], tuple[str, str]] = {}

    def _context(self) -> dict:
        return {
            "edition": self.edition,
            "newsletter": self.newsletter,
            "reader": ReaderTags(),
            "links": SimpleNamespace(unsubscribe=Markup(merge_tag("unsubscribe_url")),
                                     preferences=Markup(merge_tag("preferences_url")),
                                     web_version=Markup(merge_tag("web_version_url"))),
            "intro": self._intro,
            "sign_off": self._sign_off,
            "preheader_spacer": PREHEADER_SPACER,
        }

    def _rich(self, markdown: str, section_id: str) -> SimpleNamespace:
        """Edition-level Markdown (intro, sign-off) as `.html` and `.text`; links tagged as its own 'section'."""
        def tag(url: str) -> str:
            return tag_url(url, self.edition.id, section_id)

        if not markdown:
            return SimpleNamespace(html="", text="")
        return SimpleNamespace(html=render_markdown(markdown, tag), text=markdown_to_text(markdown, tag))

    def _view(self, section: Section) -> SimpleNamespace:
        def tag(url: str) -> str:
            return tag_url(url, self.edition.id, section.id)

        kind = self.kinds[section.kind]
        view = SimpleNamespace(id=section.id, kind=section.kind, role=section.role, title=section.title,
                               topics=section.topics, pinned=section.pinned)
        _set_fields(view, kind.fields, section.fields, tag)
        if section.event is not None and isinstance(getattr(view, "event", None), SimpleNamespace):
            # The time in the reader's own zone and the edition's language: a merge value
            # (pipeline/rendering/event_times.py). `event.starts` stays the time as the editor wrote it.
            view.event.when = Markup(merge_tag(when_tag(section.id)))
        if asks(section.kind):
            # The ask's one-click answers and free-text link: per-reader signed links, so merge tags.
            view.answers = [SimpleNamespace(topic=topic, label=self.edition.taxonomy.label(topic),
                                            url=Markup(merge_tag(ask_merge_name(topic))))
                            for topic in ask_topics(self.edition)]
            view.words_url = Markup(merge_tag(ASK_WORDS_FIELD))
        return view

    def _render_section(self, section: Section) -> MjmlPart:
        name = SECTION_TEMPLATE.format(kind=section.kind)
        mjml = self.templates.render_mjml(name, section=self._views[section.id],
                                          reason=Markup(merge_tag(f"why:{section.id}")), **self._context())
        return MjmlPart(name, _mj_marker(section.id) + mjml, first_line=0)

    def _render_text_section(self, section: Section) -> str:
        name = TEXT_TEMPLATE.format(kind=section.kind)
        if not self.templates.path_of(name).is_file():
            name = GENERIC_TEXT_TEMPLATE
        return self.templates.render_text(name, section=self._views[section.id],
                                          reason=Markup(merge_tag(f"why:{section.id}")), **self._context())

    def _render_layout(self) -> tuple[MjmlPart, MjmlPart]:
        layout = self.templates.render_mjml("layout.mjml.j2", sections=Markup(_SENTINEL), **self._context())
        if layout.count(_SENTINEL) != 1:
            raise TemplateError(f"{self.templates.path_of('layout.mjml.j2')}: must place {{{{ sections }}}} exactly once, directly inside mj-body")
        head, tail = layout.split(_SENTINEL)
        # The end marker is a line of its own before the rest of the `{{ sections }}` line.
        return (MjmlPart("layout.mjml.j2", head),
                MjmlPart("layout.mjml.j2", _mj_marker(_END) + tail, first_line=head.count("\n")))

    def _render_text_layout(self) -> tuple[str, str]:
        text = self.templates.render_text("text/layout.txt.j2", sections=_SENTINEL, **self._context())
        if text.count(_SENTINEL) != 1:
            raise TemplateError(f"{self.templates.path_of('text/layout.txt.j2')}: must place {{{{ sections }}}} exactly once")
        head, tail = text.split(_SENTINEL)
        return head, tail

    # -- compiling and cutting -----------------------------------------------------------
    def mjml_document(self, section_ids: list[str] | tuple[str, ...]) -> str:
        """The MJML source of a reader's document with these sections (what splicing must equal)."""
        return "".join(p.mjml for p in self._parts(section_ids))

    def _parts(self, section_ids) -> list[MjmlPart]:
        return [self._layout_head, *(self._mjml_parts[s] for s in section_ids), self._layout_tail]

    def compile_document(self, section_ids: list[str] | tuple[str, ...]) -> str:
        """Compile the document with these sections directly (slow path, used once per skeleton)."""
        return compile_mjml(self._parts(section_ids), self.templates)

    def _cut(self, html: str, section_ids: list[str]) -> tuple[str, dict[str, str], str]:
        cuts = []
        for name in [*section_ids, _END]:
            at = html.find(section_marker(name))
            if at < 0:
                raise TemplateError(f"{self.templates.path_of('layout.mjml.j2')}: marker for {name!r} lost in compiled HTML;"
                                    " {{ sections }} must sit directly inside mj-body")
            cuts.append(at)
        chunks = {sid: html[a:b] for sid, a, b in zip(section_ids, cuts, cuts[1:])}
        return html[:cuts[0]], chunks, html[cuts[-1]:]

    def _compiled_skeleton(self, ids: list[str]) -> tuple[str, str]:
        prefix, _, suffix = self._cut(self.compile_document(ids), ids)
        return prefix, suffix

    def _head(self, section_id: str) -> tuple[str, str]:
        """The skeleton of a document with this section alone (compiled once per shape of section)."""
        shape = self._shapes[section_id]
        found = self._heads.get(shape)
        if found is None:
            found = self._heads[shape] = self._compiled_skeleton([section_id])
        return found

    @cached_property
    def _shapes(self) -> dict[str, str]:
        return {sid: _shape(part.mjml) for sid, part in self._mjml_parts.items()}

    @cached_property
    def _base(self) -> tuple[str, str]:
        """The skeleton of the layout with no section: what sections that add no CSS share."""
        return self._compiled_skeleton([])

    def _skeleton_key(self, section_ids) -> frozenset[tuple[str, str]]:
        """The distinct heads these sections bring beyond the layout's own: what the skeleton depends on."""
        base = self._base
        return frozenset(head for head in map(self._head, section_ids) if head != base)

    def _skeleton(self, section_ids) -> tuple[str, str]:
        key = self._skeleton_key(section_ids)
        if not key:
            return self._base
        if len(key) == 1:
            return next(iter(key))
        found = self._skeletons.get(key)
        if found is None:
            # One section for each distinct head is enough: the others bring nothing more.
            representatives = {}
            for sid in section_ids:
                representatives.setdefault(self._head(sid), sid)
            found = self._skeletons[key] = self._compiled_skeleton([representatives[h] for h in key
                                                                     if h in representatives])
        return found

    @property
    def skeletons_compiled(self) -> int:
        """How many skeletons were compiled so far (shapes alone, the base, and combinations)."""
        return len(self._heads) + len(self._skeletons) + ("_base" in self.__dict__)

    # -- variants ------------------------------------------------------------------------
    def variant(self, section_ids: tuple[str, ...]) -> VariantBody:
        """HTML and text (with merge tags) of the variant with these sections in this order."""
        prefix, suffix = self._skeleton(section_ids)
        html = prefix + "".join(self._chunks[s] for s in section_ids) + suffix
        text = self._text_head + "\n".join(self._text_chunks[s] for s in section_ids) + self._text_tail
        return VariantBody(section_ids, MergeTemplate.parse(html), MergeTemplate.parse(text))

    @cached_property
    def worst_case_html_bytes(self) -> int:
        """An upper bound of any reader's HTML size for this edition, merge values included."""
        k = self.edition.sections_per_reader
        chunks = [MergeTemplate.parse(c) for c in self._chunks.values()]
        # The skeleton with every kind carries the most CSS of any skeleton.
        skeleton = MergeTemplate.parse("".join(self._skeleton([s.id for s in self.edition.sections])))
        # Every merge value is at most MAX_FIELD_CHARS characters, each escaping to at most 6 bytes.
        per_tag = MAX_FIELD_CHARS * 6
        largest = sorted((c.literal_size + per_tag * len(c.tags) for c in chunks), reverse=True)[:k]
        return skeleton.literal_size + per_tag * len(skeleton.tags) + sum(largest)

    def check_size(self) -> None:
        """Refuse an edition whose largest possible message Gmail would clip."""
        size = self.worst_case_html_bytes
        if size > GMAIL_CLIP_BYTES:
            raise RenderError(
                f"{self.edition.path or self.edition.id}: the largest message of this edition could reach"
                f" {size / 1024:.1f} KB of HTML, above Gmail's {GMAIL_CLIP_BYTES // 1024} KB clipping threshold"
                " (the footer with the unsubscribe link would be hidden); shorten the longest sections"
                " or lower sections_per_reader")


def _field_view(spec: FieldSpec, value: Any, tag) -> Any:
    """A declared field's value as templates use it: URLs tagged, Markdown rendered, dates readable."""
    kind = spec.type
    if kind == "url":
        return tag(value) if value else ""
    if kind == "date":
        return DateView(value) if value else None
    if kind == "group":
        if not value:
            return None
        view = SimpleNamespace()
        _set_fields(view, spec.fields, value, tag)
        return view
    if kind == "list":
        items = []
        for item in value or ():
            view = SimpleNamespace()
            _set_fields(view, spec.fields, item, tag)
            items.append(view)
        return items
    if kind == "text":
        return value or ""
    return value


def _set_fields(view: SimpleNamespace, specs: tuple[FieldSpec, ...], values: Any, tag) -> None:
    """Set every declared field on `view`; a Markdown field `x` becomes `x_html` and `x_text`."""
    for spec in specs:
        value = values.get(spec.name)
        if spec.type == "markdown":
            setattr(view, f"{spec.name}_html", render_markdown(value, tag) if value else "")
            setattr(view, f"{spec.name}_text", markdown_to_text(value, tag) if value else "")
        else:
            setattr(view, spec.name, _field_view(spec, value, tag))
