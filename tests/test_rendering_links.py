"""Link tagging: every web link says its edition and section; other links and raw HTML are left inert."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from pipeline.rendering.links import EDITION_PARAM, SECTION_PARAM, read_tag, tag_url
from pipeline.rendering.markdown import markdown_to_text, render_markdown


def tag(url: str) -> str:
    """Tag `url` for edition 2026-12-07, section heat-pumps."""
    return tag_url(url, "2026-12-07", "heat-pumps")


def test_tag_url_adds_edition_section_and_campaign():
    """A plain URL gains rf_e, rf_s and the UTM campaign of the edition."""
    tagged = tag("https://brief.example.com/climate")
    parts = urlsplit(tagged)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "brief.example.com", "/climate")
    assert parse_qsl(parts.query) == [("utm_source", "readerfirst"), ("utm_medium", "email"),
                                      ("utm_campaign", "2026-12-07"), (EDITION_PARAM, "2026-12-07"),
                                      (SECTION_PARAM, "heat-pumps")]


def test_tag_url_keeps_existing_query_and_fragment():
    """Existing query parameters keep their values and order, and the fragment stays at the end."""
    tagged = tag("https://brief.example.com/search?q=heat+pumps&page=2&empty=#results")
    parts = urlsplit(tagged)
    assert parts.fragment == "results"
    assert tagged.endswith("#results")
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert query[:3] == [("q", "heat pumps"), ("page", "2"), ("empty", "")]
    assert read_tag(tagged) == ("2026-12-07", "heat-pumps")


def test_tag_url_keeps_the_publishers_own_utm_parameters():
    """A URL that already names its utm_source or campaign keeps them."""
    tagged = tag("https://partner.example.org/offer?utm_source=partner&utm_campaign=winter")
    query = dict(parse_qsl(urlsplit(tagged).query))
    assert query["utm_source"] == "partner" and query["utm_campaign"] == "winter"
    assert query["utm_medium"] == "email"


def test_tag_url_replaces_existing_rf_parameters():
    """A URL already carrying rf_e/rf_s (copied from an old edition) is retagged, with each parameter once."""
    tagged = tag("https://brief.example.com/a?rf_e=2026-11-30&x=1&rf_s=old-section")
    query = parse_qsl(urlsplit(tagged).query)
    assert [v for k, v in query if k == EDITION_PARAM] == ["2026-12-07"]
    assert [v for k, v in query if k == SECTION_PARAM] == ["heat-pumps"]
    assert ("x", "1") in query


def test_tagging_twice_is_the_same_as_once():
    """Tagging an already tagged URL for the same section changes nothing."""
    once = tag("https://brief.example.com/a?x=1#top")
    assert tag(once) == once


@pytest.mark.parametrize("url", ["mailto:editor@example.com?subject=Hi", "tel:+441134960000", "#top",
                                 "/relative/path", "javascript:alert(1)"])
def test_non_web_links_are_left_alone(url):
    """mailto:, tel:, anchors and anything not http(s) are returned unchanged."""
    assert tag(url) == url
    assert read_tag(url) == (None, None)


@pytest.mark.parametrize("edition, section", [("2026-12-07", "a-b"), ("weekly_1.2", "x"), ("e&d=1", "s?#")])
def test_read_tag_round_trips(edition, section):
    """read_tag gives back the edition and section tag_url put in, even with URL-special characters."""
    assert read_tag(tag_url("https://brief.example.com/p?z=9", edition, section)) == (edition, section)


def test_read_tag_of_untagged_url_is_none():
    """A URL without our parameters reads as (None, None)."""
    assert read_tag("https://brief.example.com/?utm_source=x") == (None, None)


# -- Markdown bodies ---------------------------------------------------------------------------

def test_markdown_links_in_bodies_are_tagged():
    """Every link written in a section body is tagged in the HTML, with its query and fragment kept."""
    html = render_markdown("Read [the report](https://brief.example.com/r?id=4#s2) and "
                           "[the data](http://data.example.org/x).", tag)
    assert ('<a href="https://brief.example.com/r?id=4&amp;utm_source=readerfirst&amp;utm_medium=email'
            '&amp;utm_campaign=2026-12-07&amp;rf_e=2026-12-07&amp;rf_s=heat-pumps#s2">the report</a>') in html
    assert 'href="http://data.example.org/x?utm_source=readerfirst' in html
    assert html.count("rf_s=heat-pumps") == 2


def test_markdown_autolinks_and_reference_links_are_tagged_in_html():
    """Autolinks and reference-style links are tagged in the HTML too."""
    html = render_markdown("See <https://brief.example.com/auto> and [ref][1].\n\n[1]: https://brief.example.com/ref",
                           tag)
    assert html.count("rf_e=2026-12-07&amp;rf_s=heat-pumps") == 2


def test_markdown_mailto_link_is_not_tagged():
    """A mailto: link in a body is kept as written."""
    html = render_markdown("[Write to us](mailto:editor@example.com)", tag)
    assert '<a href="mailto:editor@example.com">Write to us</a>' in html


@pytest.mark.parametrize("raw", ["<script>alert(1)</script>", '<img src="x" onerror="alert(1)">',
                                 "<b>bold</b>", '<a href="https://evil.example.com">click</a>'])
def test_raw_html_in_markdown_is_escaped(raw):
    """HTML typed into a body shows as text: no tag from the body reaches the newsletter's markup."""
    html = render_markdown(f"Before {raw} after", tag)
    assert raw not in html
    assert "&lt;" in html
    assert html.count("<") == html.count("</p>") + html.count("<p>")


def test_javascript_link_in_markdown_is_not_a_link():
    """A javascript: link in a body does not become an anchor."""
    html = render_markdown("[click](javascript:alert(1))", tag)
    assert "<a " not in html


def test_markdown_image_is_a_closed_img_tag_with_its_alt_and_no_script_source():
    """An image in a body is a self-closed <img> with its alt (MRML needs well-formed HTML); javascript: is no image."""
    html = render_markdown("![A chart](https://images.example.com/x.jpg)", tag)
    assert '<img src="https://images.example.com/x.jpg" alt="A chart" style="' in html and html.count("/>") == 1
    assert "<img" not in render_markdown("![A chart](javascript:alert(1))", tag)


def test_plain_text_body_writes_links_out_tagged():
    """The text part of a body writes each Markdown link as its text then its tagged URL."""
    text = markdown_to_text("Read [the report](https://brief.example.com/r?id=4).", tag)
    assert text == ("Read the report <https://brief.example.com/r?id=4&utm_source=readerfirst&utm_medium=email"
                    "&utm_campaign=2026-12-07&rf_e=2026-12-07&rf_s=heat-pumps>.")


def test_plain_text_body_tags_autolinks():
    """An autolink in a body is tagged in the text part as it is in the HTML part."""
    text = markdown_to_text("See <https://brief.example.com/auto>.", tag)
    assert read_tag(text.split("<", 1)[1].split(">", 1)[0]) == ("2026-12-07", "heat-pumps")
