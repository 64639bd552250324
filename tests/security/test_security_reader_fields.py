"""Reader data is never markup: hostile names, addresses and reasons stay text in every part of every copy."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.audience.profile import Profile
from pipeline.content.selection import select_sections
from pipeline.rendering.merge import TAG_PATTERN, html_value, text_value
from pipeline.rendering.message import merge_values, personalise
from tests.test_rendering_message import (  # noqa: F401 - prepared is a fixture
    HOSTILE_NAMES,
    PLAIN,
    TODAY,
    UNSUBSCRIBE,
    prepared,
    render,
)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_name_changes_nothing_but_its_own_text(prepared, name):
    """A reader with a hostile name gets exactly a plain reader's message with only the name's text differing."""
    _, plain = render(prepared, PLAIN)
    _, hostile = render(prepared, name)
    assert plain.html.count(PLAIN) == 1 and plain.text.count(PLAIN) == 1
    assert hostile.html == plain.html.replace(PLAIN, html_value(name))
    assert hostile.text == plain.text.replace(PLAIN, text_value(name))


def test_markup_in_a_name_is_escaped(prepared):
    """A name written as HTML shows as text in the HTML part."""
    _, message = render(prepared, "<b>x</b>")
    assert "Hi &lt;b&gt;x&lt;/b&gt;," in message.html
    assert "<b>x</b>" not in message.html
    assert "Hi <b>x</b>," in message.text  # plain text has no markup to escape


def test_template_code_in_a_name_stays_literal(prepared):
    """A name that looks like Jinja is shown literally in subject, HTML and text, never evaluated."""
    subject, message = render(prepared, "{{ 7*7 }}")
    assert subject.startswith("{{ 7*7 }},")
    assert "Hi {{ 7*7 }}," in message.html and "Hi {{ 7*7 }}," in message.text
    assert "49" not in subject and "Hi 49" not in message.html


def test_provider_substitution_syntax_in_a_name_stays_literal(prepared):
    """A name in SendGrid's -field- substitution syntax is kept as typed."""
    subject, message = render(prepared, "-first_name-")
    assert "Hi -first_name-," in message.html and subject.startswith("-first_name-,")


def test_merge_tag_in_a_name_never_expands(prepared):
    """A name that is a merge tag shows as text and never brings in another reader value."""
    _, plain = render(prepared, PLAIN)
    _, message = render(prepared, "%%rf:unsubscribe_url%%")
    assert message.html.count(UNSUBSCRIBE) == plain.html.count(UNSUBSCRIBE) == 1
    assert message.text.count(UNSUBSCRIBE) == plain.text.count(UNSUBSCRIBE) == 1
    assert "Hi &#37;&#37;rf:unsubscribe_url&#37;&#37;," in message.html
    assert not TAG_PATTERN.search(message.html) and not TAG_PATTERN.search(message.text)


@pytest.mark.parametrize("name", ["Ann\r\nBcc: evil@example.com", "Ann\nSubject: win", "Ann\rX", "Ann\u2028X"])
def test_line_breaks_never_reach_the_subject(prepared, name):
    """CR, LF and other line breaks in a name never appear in the subject line."""
    subject, message = render(prepared, name)
    assert message.subject == subject
    assert "\r" not in subject and "\n" not in subject and len(subject.splitlines()) == 1
    assert subject.startswith("Ann ")


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
@pytest.mark.parametrize("field", ["first_name", "last_name", "reason"])
def test_every_reader_field_stays_text(prepared, field, hostile):
    """Markup, template code and tags in a first name, last name or reason appear escaped, never as markup or a tag."""
    edition, layout, subject = prepared
    names = {"first_name": PLAIN, "last_name": "Lee", field: hostile} if field != "reason" else \
        {"first_name": PLAIN, "last_name": "Lee"}
    profile = Profile(reader_id=1, email="ann@example.com", first_name=names["first_name"],
                      last_name=names["last_name"], interests={"climate": 1.0}, needs={})
    selection = select_sections(edition, profile, today=TODAY)
    values = merge_values(profile, selection, unsubscribe_url=UNSUBSCRIBE, preferences_url=UNSUBSCRIBE)
    if field == "reason":
        values = {k: (hostile if k.startswith("why:") else v) for k, v in values.items()}
    body = layout.variant(selection.section_ids)
    message = personalise(body, values, subject.render({"first_name": profile.first_name}))
    assert "<script>" not in message.html and "<b>x</b>" not in message.html
    assert not TAG_PATTERN.search(message.html) and not TAG_PATTERN.search(message.text)
    if field != "reason" and field in {t for t in body.html.tags}:
        assert html_value(hostile) in message.html
    if field != "reason" and field in {t for t in body.text.tags}:
        assert text_value(hostile) in message.text
    if field == "reason":
        assert html_value(hostile) in message.html and text_value(hostile) in message.text
