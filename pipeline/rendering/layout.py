"""One edition compiled once: a skeleton and per-section chunks that splice into each variant.

MRML's output can be cut at `<mj-raw>` comment markers placed directly inside `mj-body`.
The edition is compiled once with every section; each section's chunk is the HTML between
its marker and the next. The head of the document (its CSS) depends on which components
appear, which here means which section kinds appear, so the skeleton (prefix and suffix) is
compiled once per set of kinds actually used, at most 2^kinds times per edition.
A test checks that the spliced output is byte-identical to compiling a reader's own document.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace

from markupsafe import Markup

from pipeline.content.edition import Edition, Section
from pipeline.errors import RenderError, TemplateError
from pipeline.rendering.event_times import when_tag
from pipeline.rendering.identity import SenderIdentity
from pipeline.rendering.links import tag_url
from pipeline.rendering.markdown import markdown_to_text, render_markdown
from pipeline.rendering.merge import MAX_FIELD_CHARS, MergeTemplate, ReaderTags, merge_tag
from pipeline.rendering.templates import SECTION_TEMPLATE, MjmlPart, TemplateSet, check_mjml, compile_mjml

__all__ = ["EditionLayout", "VariantBody", "GMAIL_CLIP_BYTES", "section_marker", "PREHEADER_SPACER"]

GMAIL_CLIP_BYTES = 102 * 1024
# After the preheader, inboxes show whatever text comes next (the masthead, "View in browser").
# A run of invisible, non-collapsing characters fills the preview line instead: combining
# grapheme joiner, zero-width non-joiner and no-break space, the pattern Litmus documents.
PREHEADER_SPACER = Markup("&#847;&zwnj;&nbsp;" * 90)
_SENTINEL = "\x00rf-sections\x00"
_END = "end"


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


class EditionLayout:
    """An edition compiled against a template set, ready to make any variant by splicing."""

    def __init__(self, edition: Edition, templates: TemplateSet, *, newsletter_name: str = "readerfirst",
                 identity: SenderIdentity | None = None):
        self._render_templates(edition, templates, identity or SenderIdentity(newsletter_name=newsletter_name))
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
        self._views = {s.id: self._view(s) for s in edition.sections}
        self._mjml_parts = {s.id: self._render_section(s) for s in edition.sections}
        self._text_chunks = {s.id: self._render_text_section(s) for s in edition.sections}
        self._layout_head, self._layout_tail = self._render_layout()
        self._text_head, self._text_tail = self._render_text_layout()
        self._skeletons: dict[frozenset[str], tuple[str, str]] = {}

    def _context(self) -> dict:
        return {
            "edition": self.edition,
            "newsletter": self.newsletter,
            "reader": ReaderTags(),
            "links": SimpleNamespace(unsubscribe=Markup(merge_tag("unsubscribe_url")),
                                     preferences=Markup(merge_tag("preferences_url")),
                                     web_version=Markup(merge_tag("web_version_url"))),
            "preheader_spacer": PREHEADER_SPACER,
        }

    def _view(self, section: Section) -> SimpleNamespace:
        def tag(url: str) -> str:
            return tag_url(url, self.edition.id, section.id)

        return SimpleNamespace(
            id=section.id, kind=section.kind, title=section.title, topics=section.topics,
            url=tag(section.url) if section.url else "",
            body_html=render_markdown(section.body, tag) if section.body else "",
            body_text=markdown_to_text(section.body, tag) if section.body else "",
            image=section.image,
            links=[SimpleNamespace(title=link.title, url=tag(link.url), note=link.note) for link in section.links],
            # The time is the reader's own (their zone): a merge value, see pipeline/rendering/event_times.py.
            event=SimpleNamespace(when=Markup(merge_tag(when_tag(section.id))), location=section.event.location)
            if section.event else None,
        )

    def _render_section(self, section: Section) -> MjmlPart:
        name = SECTION_TEMPLATE.format(kind=section.kind)
        mjml = self.templates.render_mjml(name, section=self._views[section.id],
                                          reason=Markup(merge_tag(f"why:{section.id}")), **self._context())
        return MjmlPart(name, _mj_marker(section.id) + mjml, first_line=0)

    def _render_text_section(self, section: Section) -> str:
        return self.templates.render_text("text/section.txt.j2", section=self._views[section.id],
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

    def _skeleton(self, kinds: frozenset[str]) -> tuple[str, str]:
        found = self._skeletons.get(kinds)
        if found is None:
            ids = [s.id for s in self.edition.sections if s.kind in kinds]
            prefix, _, suffix = self._cut(self.compile_document(ids), ids)
            found = self._skeletons[kinds] = (prefix, suffix)
        return found

    # -- variants ------------------------------------------------------------------------
    def variant(self, section_ids: tuple[str, ...]) -> VariantBody:
        """HTML and text (with merge tags) of the variant with these sections in this order."""
        kinds = frozenset(self.edition.by_id[s].kind for s in section_ids)
        prefix, suffix = self._skeleton(kinds)
        html = prefix + "".join(self._chunks[s] for s in section_ids) + suffix
        text = self._text_head + "\n".join(self._text_chunks[s] for s in section_ids) + self._text_tail
        return VariantBody(section_ids, MergeTemplate.parse(html), MergeTemplate.parse(text))

    @cached_property
    def worst_case_html_bytes(self) -> int:
        """An upper bound of any reader's HTML size for this edition, merge values included."""
        k = self.edition.sections_per_reader
        chunks = [MergeTemplate.parse(c) for c in self._chunks.values()]
        # The skeleton with every kind carries the most CSS of any skeleton.
        skeleton = MergeTemplate.parse("".join(self._skeleton(frozenset(s.kind for s in self.edition.sections))))
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
