"""Merge tags: only readerfirst's own tags are ever substituted, never the editor's words nor a reader's value."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from pipeline.audience.profile import Profile
from pipeline.content.edition import load_edition
from pipeline.content.selection import select_sections
from pipeline.content.wording import inert_text
from pipeline.delivery.sendgrid_payload import html_key, text_key
from pipeline.errors import InvalidEdition
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.merge import TAG_PATTERN, html_value, text_value
from pipeline.rendering.message import merge_values, personalise
from pipeline.rendering.subject import SubjectTemplate
from pipeline.rendering.templates import TemplateSet
from tests.conftest import TEMPLATES

TODAY = dt.date(2026, 12, 7)
TRAPS = ["%%rf:bogus%%", "%%rf:why:clinic%%", "%%rf:unsubscribe_url%%", "%%rft:first_name%%", "%%%rf:first_name%%%",
         "100%% sure", "%%"]
# Any text with a `%%` in it could be read as a tag by our merge or as a key by SendGrid.
percents = st.text(alphabet=st.sampled_from("%rf:t_whyclinc-abz \n<>&\"'"), max_size=40)


def _edition_with(folder, text: str):
    source = yaml.safe_load((folder / "2026-12-07.yaml").read_text())
    source["subject"] = f"{text} {{{{ first_name }}}}"
    source["preheader"] = text
    source["intro"] = f"{source.get('intro', '')}\n\n{text}\n"
    source["sign_off"] = f"{source.get('sign_off', '')}\n\n{text}\n"
    for section in source["sections"]:
        section["title"] = f"{section['title']} {text}"
        # Every kind's own words too: a body where the kind has one, else its quote or stories.
        if section["kind"] == "quote":
            section["quote"] = f"{section['quote']} {text}"
            section["attribution"] = f"{section['attribution']} {text}"
        elif section["kind"] == "pair":
            for story in section["stories"]:
                story["body"] = f"{story.get('body', '')}\n\n{text}\n"
        else:
            section["body"] = f"{section.get('body', '')}\n\n{text}\n"
        for key in ("signature", "sponsor", "disclosure", "cta", "author"):
            if key in section:
                section[key] = f"{section[key]} {text}"
    path = folder / "trap.yaml"
    path.write_text(yaml.safe_dump(source, allow_unicode=True))
    return load_edition(path)


def test_editor_text_never_acts_as_a_merge_tag(edition_dir):
    """Tag-like words in titles, bodies, subject and preheader stay visible text in every reader's copy."""
    for trap in TRAPS:
        edition = _edition_with(edition_dir, trap)
        layout = EditionLayout(edition, TemplateSet(TEMPLATES))
        profile = Profile(reader_id=1, email="ann@example.com", first_name="Ann", last_name="Lee",
                          interests={"climate": 1.0}, needs={"hiring": dt.date(2026, 12, 31)})
        selection = select_sections(edition, profile, today=TODAY)
        body = layout.variant(selection.section_ids)
        # The only tags are the ones readerfirst placed: reader fields, links, one reason per section
        # and each event section's time.
        for tag in set(body.html.tags) | set(body.text.tags):
            assert tag in {"first_name", "last_name", "email", "unsubscribe_url", "preferences_url", "web_version_url"} or \
                tag in {f"why:{sid}" for sid in selection.section_ids} | {f"when:{sid}" for sid in selection.section_ids}, \
                (trap, tag)
        values = merge_values(profile, selection, unsubscribe_url="https://x.example/u/a.b",
                              preferences_url="https://x.example/p/a.b", edition=edition)
        subject = SubjectTemplate(edition.subject).render({"first_name": "Ann"})
        message = personalise(body, values, subject)
        for part in (message.html, message.text, message.subject):
            assert "%%" not in part, (trap, part[:200])
        # Shown as written: once per section title in the text part (zero-width spaces aside).
        assert message.text.count(inert_text(trap)) >= len(selection.section_ids)


@settings(max_examples=300, deadline=None)
@given(percents)
def test_no_text_made_inert_holds_a_tag(text):
    """Whatever the editor writes, what readerfirst keeps has no `%%` and reads the same without zero-width spaces."""
    kept = inert_text(text)
    assert "%%" not in kept
    assert kept.replace("\u200b", "") == text.replace("\u200b", "")
    assert not TAG_PATTERN.search(kept)


@settings(max_examples=300, deadline=None)
@given(percents, st.sampled_from(["first_name", "why:clinic", "unsubscribe_url"]))
def test_reader_values_never_hold_a_substitution_key(text, name):
    """A reader value escaped for either part never contains our tag or SendGrid's key for any field."""
    for escaped in (html_value(text), text_value(text)):
        assert html_key(name) not in escaped and text_key(name) not in escaped
        assert "%%" not in escaped


@settings(max_examples=200, deadline=None)
@given(percents, percents)
def test_subject_never_holds_a_substitution_key(editor_words, name):
    """The subject (editor template plus reader value, side by side) never has a `%%` SendGrid could substitute."""
    subject = SubjectTemplate(editor_words.replace("{", "").replace("}", "") + "{{ first_name }}%")
    assert "%%" not in subject.render({"first_name": name})


def test_url_with_a_doubled_percent_is_refused(edition_dir):
    """A section URL holding `%%` is reported by the edition check instead of reaching readers."""
    source = yaml.safe_load((edition_dir / "2026-12-07.yaml").read_text())
    source["sections"][1]["url"] = "https://brief.example.com/a?x=%%rf:unsubscribe_url%%"
    path = edition_dir / "trap-url.yaml"
    path.write_text(yaml.safe_dump(source))
    with pytest.raises(InvalidEdition, match=re.escape("sections[heat-pumps-offices].url=")):
        load_edition(path)
