"""One reader's message: reader values stay data (escaped, one line, never tags or code), sizes checked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.audience.profile import Profile
from pipeline.content.edition import load_edition
from pipeline.content.selection import select_sections
from pipeline.errors import RenderError
from pipeline.rendering.layout import GMAIL_CLIP_BYTES, EditionLayout, VariantBody
from pipeline.rendering.merge import TAG_PATTERN, MergeTemplate, html_value, text_value
from pipeline.rendering.message import GREETING_FALLBACK, merge_values, merge_values_for, personalise
from pipeline.rendering.subject import SubjectTemplate
from pipeline.rendering.templates import TemplateSet

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 12, 7)
UNSUBSCRIBE = "https://brief.example.com/u/abc.def"
PREFERENCES = "https://brief.example.com/p/abc.123"
PLAIN = "Plainname"

HOSTILE_NAMES = [
    "<b>x</b>",
    "{{ 7*7 }}",
    "-first_name-",
    "%%rf:unsubscribe_url%%",
    "Ann\r\nBcc: evil@example.com",
    "Ann\nSubject: win",
    '"><script>alert(1)</script>',
]


@pytest.fixture(scope="module")
def prepared():
    """The sample edition, its layout and subject template."""
    edition = load_edition(ROOT / "editions" / "2026-12-07.yaml")
    return edition, EditionLayout(edition, TemplateSet(ROOT / "templates")), SubjectTemplate(edition.subject)


def render(prepared, first_name: str, *, email: str = "ann@example.com"):
    """(subject, message) for a climate reader called `first_name`."""
    edition, layout, subject = prepared
    profile = Profile(reader_id=1, email=email, first_name=first_name, last_name="Lee",
                      interests={"climate": 1.0}, needs={"hiring": dt.date(2026, 12, 31)})
    selection = select_sections(edition, profile, today=TODAY)
    values = merge_values(profile, selection, unsubscribe_url=UNSUBSCRIBE, preferences_url=PREFERENCES)
    title = subject.render({"first_name": profile.first_name, "last_name": profile.last_name, "email": email})
    return title, personalise(layout.variant(selection.section_ids), values, title)


def test_empty_first_name_gets_fallbacks(prepared):
    """With no first name the subject says Hello and the greeting says there."""
    subject, message = render(prepared, "")
    assert subject == "Hello, your brief for the week of 7 December"
    assert f"Hi {GREETING_FALLBACK}," in message.html and f"Hi {GREETING_FALLBACK}," in message.text


def test_reasons_are_merged_per_section(prepared):
    """Each section shows the reader's own reason, escaped, in HTML and text."""
    _, message = render(prepared, "Ann")
    # The date's hyphens do not break (U+2011): a narrow column never shows "2026-/12-31".
    assert "Why you see this: you said you need help with Hiring until 2026\u201112\u201131" in message.html
    assert "Why you see this: you follow Climate" in message.html
    assert "Why you see this: editor&#x27;s pick for every reader<" in message.html
    assert "(Why you see this: editor's pick for every reader)" in message.text


def test_merge_values_for_fills_every_field():
    """merge_values_for gives each reader field, the links, and one why: value per section."""
    values = merge_values_for(first_name="  ", last_name="Lee", email="a@example.com", reasons={"s1": "r1"},
                              unsubscribe_url="u", preferences_url="p")
    assert values == {"first_name": GREETING_FALLBACK, "last_name": "Lee", "email": "a@example.com",
                      "unsubscribe_url": "u", "preferences_url": "p", "web_version_url": "", "why:s1": "r1"}


# -- subject templates ----------------------------------------------------------------------------

def test_subject_fallback_when_first_name_is_empty():
    """`{{ first_name or 'Hello' }}` falls back to Hello for a reader without a first name."""
    template = SubjectTemplate("{{ first_name or 'Hello' }}, your week")
    assert template.render({"first_name": "", "last_name": "", "email": "a@example.com"}) == "Hello, your week"
    assert template.render({"first_name": "Ann", "last_name": "", "email": "a@example.com"}) == "Ann, your week"


def test_subject_values_are_data():
    """Reader values in a subject are inserted as text: no evaluation, no escaping, one line."""
    template = SubjectTemplate("{{ first_name }}: news")
    assert template.render({"first_name": "{{ 7*7 }} <b>"}) == "{{ 7*7 }} <b>: news"
    assert template.render({"first_name": "A\r\nB"}) == "A B: news"


def test_subject_template_line_breaks_are_flattened():
    """A subject template whose own text has a line break still renders on one line."""
    assert SubjectTemplate("Line one\nline two {{ first_name }}").render({"first_name": "Ann"}) == \
        "Line one line two Ann"


def test_subject_check_accepts_a_good_template():
    """A subject using reader fields, filters and a fallback is accepted."""
    assert SubjectTemplate.check("{{ first_name or 'Hello' }}, {{ last_name | upper }} ({{ email }})") is None


def test_subject_check_reports_an_unknown_variable():
    """A subject naming a field readers do not have is reported, with the fields they do have."""
    problem = SubjectTemplate.check("Hi {{ frist_name }}")
    assert problem is not None
    assert "'frist_name' is undefined" in problem
    assert "first_name, last_name, email" in problem


@pytest.mark.parametrize("source", ["Hi {{ first_name ", "{% if first_name %}Hi", "{{ first_name | nosuchfilter }}"])
def test_subject_check_reports_a_syntax_error(source):
    """A subject that is not a valid template is reported as a subject template error."""
    problem = SubjectTemplate.check(source)
    assert problem is not None and problem.startswith("subject template error:")


def test_subject_check_refuses_sandbox_escapes():
    """A subject reaching for Python internals is refused by the sandbox."""
    assert SubjectTemplate.check("{{ first_name.__class__.__mro__ }}") is not None


# -- size ------------------------------------------------------------------------------------------

def variant(html: str, text: str = "text") -> VariantBody:
    """A variant made of the given HTML and text."""
    return VariantBody((), MergeTemplate.parse(html), MergeTemplate.parse(text))


def test_personalise_refuses_html_above_gmail_clip_size():
    """A message whose HTML is above Gmail's clipping size is refused, naming the reader and Gmail."""
    body = variant("<p>" + "x" * GMAIL_CLIP_BYTES + "</p>")
    with pytest.raises(RenderError) as caught:
        personalise(body, {"email": "ann@example.com"}, "Subject")
    assert "ann@example.com" in str(caught.value) and "Gmail" in str(caught.value)


def test_personalise_accepts_html_exactly_at_the_limit():
    """HTML of exactly GMAIL_CLIP_BYTES bytes is accepted, and one byte more is not."""
    message = personalise(variant("x" * GMAIL_CLIP_BYTES), {}, "S")
    assert len(message.html.encode()) == GMAIL_CLIP_BYTES
    with pytest.raises(RenderError):
        personalise(variant("x" * (GMAIL_CLIP_BYTES + 1)), {}, "S")


def test_personalise_counts_bytes_not_characters():
    """The limit is in UTF-8 bytes: fewer characters than the limit can still be too big."""
    with pytest.raises(RenderError):
        personalise(variant("é" * (GMAIL_CLIP_BYTES // 2 + 1)), {}, "S")


def test_personalise_counts_escaped_values():
    """Escaped reader values count toward the limit, so a long name can push a message over it."""
    body = variant("x" * (GMAIL_CLIP_BYTES - 300) + "%%rf:first_name%%")
    personalise(body, {"first_name": "Ann"}, "S")
    with pytest.raises(RenderError):
        personalise(body, {"first_name": '"' * 200}, "S")


def test_personalise_merges_html_and_text_separately():
    """HTML values are HTML-escaped and text values flattened to one line."""
    message = personalise(variant("<p>%%rf:first_name%%</p>", "Hi %%rf:first_name%%"), {"first_name": "A&B\nC"},
                          "Subj")
    assert (message.subject, message.html, message.text) == ("Subj", "<p>A&amp;B C</p>", "Hi A&B C")


def test_an_internationalised_address_is_shown_in_unicode(prepared):
    """The footer names the reader's address as they know it, though it is sent in its ASCII form."""
    _, message = render(prepared, PLAIN, email="anna@xn--mnchen-3ya.de")
    assert "anna@münchen.de" in message.text and "anna@münchen.de" in message.html
    assert "xn--mnchen" not in message.text
