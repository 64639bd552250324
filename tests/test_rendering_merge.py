"""Merge tags: one pass, escaped values, so no reader value becomes markup, code or another tag."""

from __future__ import annotations

import random

import pytest

from pipeline.rendering.merge import (
    MAX_FIELD_CHARS,
    TAG_PATTERN,
    MergeTemplate,
    ReaderTags,
    html_value,
    merge_tag,
    text_value,
)


def test_parse_splits_literals_and_tag_names():
    """A text splits into literal, tag name, literal... with the tags listed in order."""
    template = MergeTemplate.parse("Hi %%rf:first_name%%, why: %%rf:why:heat-pumps%%.")
    assert template.parts == ("Hi ", "first_name", ", why: ", "why:heat-pumps", ".")
    assert template.tags == ("first_name", "why:heat-pumps")


def test_text_without_tags_is_one_literal():
    """A text with no merge tag (or only look-alikes) is one literal part."""
    assert MergeTemplate.parse("50%% off %%rf:Bad%% %%rf:%%").parts == ("50%% off %%rf:Bad%% %%rf:%%",)


def test_literal_size_counts_utf8_bytes_outside_tags():
    """literal_size is the UTF-8 size of the text around the tags."""
    assert MergeTemplate.parse("Zoë %%rf:email%% ✓").literal_size == len("Zoë  ✓".encode())


def test_merge_replaces_each_tag_and_blanks_unknown_ones():
    """Every tag is replaced by its value; a tag without a value becomes empty."""
    template = MergeTemplate.parse("[%%rf:first_name%%|%%rf:last_name%%|%%rf:first_name%%]")
    assert template.merge({"first_name": "Ann"}) == "[Ann||Ann]"


def test_merge_is_one_pass():
    """A value that looks like a merge tag is inserted as is and never expanded."""
    template = MergeTemplate.parse("Hi %%rf:first_name%%, bye %%rf:unsubscribe_url%%")
    merged = template.merge({"first_name": "%%rf:unsubscribe_url%%", "unsubscribe_url": "https://u.example.com/u/t"})
    assert merged == "Hi %%rf:unsubscribe_url%%, bye https://u.example.com/u/t"
    assert merged.count("https://u.example.com/u/t") == 1


def test_html_value_escapes_markup():
    """HTML-special characters in a value are escaped, quotes included, so it is safe in attributes too."""
    assert html_value('<b>x</b> & "q" \'s\'') == "&lt;b&gt;x&lt;/b&gt; &amp; &quot;q&quot; &#x27;s&#x27;"


def test_html_value_neutralises_percent_and_line_breaks():
    """Percent signs become &#37; (no tag can form) and CR/LF become spaces."""
    value = html_value("%%rf:email%%\r\nBcc: x")
    assert value == "&#37;&#37;rf:email&#37;&#37;  Bcc: x"
    assert not TAG_PATTERN.search(value)


def test_html_value_is_cut_before_escaping():
    """A long value is cut at MAX_FIELD_CHARS characters, then escaped (so at most 6 bytes a character)."""
    value = html_value("'" * (MAX_FIELD_CHARS + 10))
    assert value == "&#x27;" * MAX_FIELD_CHARS
    assert len(value.encode()) <= MAX_FIELD_CHARS * 6


def test_text_value_is_one_line():
    """A value with line breaks becomes one line in the text part."""
    assert text_value("Ann\r\nBcc: evil@example.com\nx") == "Ann Bcc: evil@example.com x"
    assert text_value("Ann\u2028Lee") == "Ann Lee"


def test_text_value_is_cut_at_the_limit():
    """A long text value is cut at MAX_FIELD_CHARS characters."""
    assert text_value("a" * 500) == "a" * MAX_FIELD_CHARS


def test_text_value_never_forms_a_merge_tag():
    """No value, however many percent signs it holds, comes out of text_value with a merge tag in it."""
    rng = random.Random(7)
    alphabet = ["%", "%%", "rf", ":", "email", "first_name", "why", "-", "a"]
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        assert not TAG_PATTERN.search(text_value(value)), value
        assert not TAG_PATTERN.search(html_value(value)), value
    assert text_value("%%rf:unsubscribe_url%%") == "%\u200b%rf:unsubscribe_url%\u200b%"


def test_reader_tags_render_as_merge_tags():
    """In templates, reader.first_name is the first_name merge tag, marked safe for autoescape."""
    reader = ReaderTags()
    assert reader.first_name == merge_tag("first_name") == "%%rf:first_name%%"
    assert reader.first_name.__html__() == "%%rf:first_name%%"
    with pytest.raises(AttributeError):
        reader.__secret__  # noqa: B018 - private names are not fields
