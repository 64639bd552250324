"""Editions: the sample loads, and every validation names FILE:LINE: field=value: reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipeline.content.edition import Edition, load_edition
from pipeline.content.kinds import load_section_kinds
from pipeline.errors import InputProblem, InvalidEdition, PipelineError

# A valid section of each kind, indented to sit under `sections:`; tests break one field at a time.
ARTICLE = """\
  - id: good-article
    kind: article
    title: A good article
    body: Some *words*.
    url: https://brief.example.com/a
    image: {src: "https://images.example.com/a.jpg", alt: "A chart of words"}
    topics: [climate]
"""

HEADER = """\
id: test-edition
subject: "{{ first_name or 'Hello' }}, this week"
preheader: Testing
sections:
"""


def write(folder: Path, text: str, name: str = "broken.yaml") -> Path:
    """Write an edition beside the taxonomy in `folder` and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line of `path` containing `needle`."""
    found = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in line]
    assert len(found) >= occurrence, f"{needle!r} occurs {len(found)} times in {path}"
    return found[occurrence - 1]


def problems_of(path: Path) -> list[InputProblem]:
    """The problems load_edition reports for `path` (it must refuse the file)."""
    with pytest.raises(InvalidEdition) as caught:
        load_edition(path)
    return caught.value.problems


def only_problem(path: Path, field: str) -> InputProblem:
    """The single problem about `field` reported for `path`, checked to be the only one in the file."""
    problems = problems_of(path)
    assert [p.field for p in problems] == [field], [str(p) for p in problems]
    return problems[0]


def assert_shape(problem: InputProblem, path: Path, line: int, field: str, value: str, reason_part: str) -> None:
    """`problem` reads exactly `PATH:LINE: field=value: reason`, with `reason_part` in the reason."""
    text = str(problem)
    assert text.startswith(f"{path}:{line}: {field}={value}: "), text
    assert reason_part in text.split(f"{field}={value}: ", 1)[1], text
    assert problem.file == str(path) and problem.line == line


# -- the sample ---------------------------------------------------------------------------------

def test_sample_edition_loads(edition_path):
    """The shipped sample edition loads with its sections in editorial order and its limits."""
    edition = load_edition(edition_path)
    assert isinstance(edition, Edition)
    assert edition.id == "2026-12-07"
    assert edition.sections_per_reader == 5 and edition.max_per_topic == 2
    ids = [s.id for s in edition.sections]
    assert ids[:3] == ["editors-note", "heat-pumps-offices", "first-engineer-hire"]
    assert len(ids) == len(set(ids)) == 17
    # Every kind an editor writes; the ask is added when the edition is sent (READERFIRST_ASK=auto).
    kinds = set(load_section_kinds(edition_path.parent.parent / "templates").names)
    assert {s.kind for s in edition.sections} == kinds - {"ask"}
    assert edition.section("editors-note").pinned
    assert edition.section("heat-pumps-offices").image.alt.startswith("Two heat pump units")
    assert edition.section("hiring-clinic").event.starts == "2026-12-10T18:00:00"
    assert [link.title for link in edition.section("climate-links").links][0] == "Grid carbon intensity by hour"
    assert edition.taxonomy.label("remote-work") == "Remote work"


def test_minimal_edition_in_edition_dir_loads(edition_dir):
    """An edition written beside topics.yaml loads and uses that taxonomy."""
    path = write(edition_dir, HEADER + ARTICLE)
    edition = load_edition(path)
    assert edition.id == "test-edition"
    assert edition.section("good-article").topics == ("climate",)
    assert edition.path == path


def test_unquoted_date_id_is_accepted(edition_dir):
    """An id written as an unquoted date (which YAML reads as a date) becomes its ISO text."""
    path = write(edition_dir, HEADER.replace("id: test-edition", "id: 2027-01-04") + ARTICLE)
    assert load_edition(path).id == "2027-01-04"


# -- one validation at a time ------------------------------------------------------------------

def test_missing_alt_text_is_reported_at_the_image(edition_dir):
    """An image without alt text is refused at the image's line."""
    path = write(edition_dir, HEADER + ARTICLE.replace(', alt: "A chart of words"', ""))
    problem = only_problem(path, "sections[good-article].image.alt")
    assert_shape(problem, path, line_of(path, "image:"), "sections[good-article].image.alt", "", "alt text is required")


def test_blank_alt_text_is_reported_at_the_alt_line(edition_dir):
    """An alt text of only spaces in a block mapping is refused at the alt line itself."""
    section = ARTICLE.replace('    image: {src: "https://images.example.com/a.jpg", alt: "A chart of words"}\n',
                              '    image:\n      src: https://images.example.com/a.jpg\n      alt: "   "\n')
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[good-article].image.alt")
    assert_shape(problem, path, line_of(path, "alt:"), "sections[good-article].image.alt", "   ",
                 "alt text is required")


def test_lead_without_image_is_reported(edition_dir):
    """A lead section with no image at all is refused: its schema requires one."""
    section = ARTICLE.replace('    image: {src: "https://images.example.com/a.jpg", alt: "A chart of words"}\n', "")
    path = write(edition_dir, HEADER + section.replace("kind: article", "kind: lead"))
    problem = only_problem(path, "sections[good-article].image")
    assert_shape(problem, path, line_of(path, "- id: good-article"), "sections[good-article].image", "",
                 "an image with alt text is required")


def test_article_without_image_is_text_only(edition_dir):
    """An article without an image loads: its schema makes the image optional."""
    section = ARTICLE.replace('    image: {src: "https://images.example.com/a.jpg", alt: "A chart of words"}\n', "")
    assert load_edition(write(edition_dir, HEADER + section)).section("good-article").image is None


def test_unknown_kind_is_reported(edition_dir):
    """A kind with no template and schema is refused at the kind line, listing the kinds."""
    path = write(edition_dir, HEADER + ARTICLE.replace("kind: article", "kind: essay"))
    problems = problems_of(path)
    kind = [p for p in problems if p.field == "sections[good-article].kind"]
    assert len(kind) == 1
    assert_shape(kind[0], path, line_of(path, "kind: essay"), "sections[good-article].kind", "essay",
                 "unknown kind; use one of article, ask, event, lead, letter, links, pair, quote, sponsor")


def test_duplicate_section_id_names_the_first_line(edition_dir):
    """A second section with the same id is refused at its own line, naming the line of the first."""
    second = ARTICLE.replace("title: A good article", "title: Another")
    path = write(edition_dir, HEADER + ARTICLE + second)
    problem = only_problem(path, "sections[good-article].id")
    first_line = line_of(path, "- id: good-article", 1)
    second_line = line_of(path, "- id: good-article", 2)
    assert_shape(problem, path, second_line, "sections[good-article].id", "good-article",
                 f"duplicate section id (first used on line {first_line})")


@pytest.mark.parametrize("url", [
    "brief.example.com/a",          # no scheme
    "ftp://brief.example.com/a",    # not http(s)
    "https://brief.example .com/a",  # a space
    "https://localhost/a",          # no dotted host name
    "javascript:alert(1)",
])
def test_bad_section_url_is_reported(edition_dir, url):
    """A section URL that is not http(s) with a dotted host name and no spaces is refused at its line."""
    path = write(edition_dir, HEADER + ARTICLE.replace("url: https://brief.example.com/a", f'url: "{url}"'))
    problem = only_problem(path, "sections[good-article].url")
    assert_shape(problem, path, line_of(path, "url: "), "sections[good-article].url", url,
                 "is not an http(s) URL with a host name")


def test_bad_image_src_is_reported(edition_dir):
    """An image src without a scheme is refused like any other URL."""
    path = write(edition_dir, HEADER + ARTICLE.replace('src: "https://images.example.com/a.jpg"',
                                                       'src: "images.example.com/a.jpg"'))
    problem = only_problem(path, "sections[good-article].image.src")
    assert_shape(problem, path, line_of(path, "image:"), "sections[good-article].image.src",
                 "images.example.com/a.jpg", "is not an http(s) URL")


def test_unknown_topic_has_did_you_mean_hint(edition_dir):
    """A topic missing from the taxonomy is refused at its line with a hint naming the closest topic."""
    section = ARTICLE.replace("    topics: [climate]\n", "    topics:\n      - climate\n      - hirng\n")
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[good-article].topics")
    assert_shape(problem, path, line_of(path, "- hirng"), "sections[good-article].topics", "hirng",
                 "unknown topic (did you mean 'hiring'?)")


def test_unknown_topic_without_close_match_has_no_hint(edition_dir):
    """A topic far from every known one is refused without a misleading hint."""
    path = write(edition_dir, HEADER + ARTICLE.replace("topics: [climate]", "topics: [zzzzzz]"))
    problem = only_problem(path, "sections[good-article].topics")
    assert problem.reason.startswith("unknown topic;")
    assert "did you mean" not in problem.reason


def test_missing_title_is_reported_at_the_section(edition_dir):
    """A section without a title is refused at the line where the section starts."""
    path = write(edition_dir, HEADER + ARTICLE.replace("    title: A good article\n", ""))
    problem = only_problem(path, "sections[good-article].title")
    assert_shape(problem, path, line_of(path, "- id: good-article"), "sections[good-article].title", "",
                 "is required")


def test_unknown_section_field_is_reported_with_the_known_fields(edition_dir):
    """A misspelt section field (a typo) is refused at its line, listing the fields sections take."""
    path = write(edition_dir, HEADER + ARTICLE.replace("    body: Some *words*.\n", "    boddy: Some *words*.\n"))
    problem = only_problem(path, "sections[good-article].boddy")
    assert_shape(problem, path, line_of(path, "boddy:"), "sections[good-article].boddy", "Some *words*.",
                 "unknown field (did you mean body?); article sections take author, body, cta, id, image, kind, pinned,"
                 " title, topics, url")


def test_unknown_edition_field_is_reported(edition_dir):
    """A misspelt top-level field is refused at its line, listing the fields editions take."""
    path = write(edition_dir, HEADER.replace("preheader:", "preheadr:") + ARTICLE)
    problem = only_problem(path, "preheadr")
    assert_shape(problem, path, line_of(path, "preheadr:"), "preheadr", "Testing",
                 "unknown field (did you mean preheader?); editions take")


def test_links_section_without_links_is_reported(edition_dir):
    """A links section with no list of links is refused at the section's line."""
    section = """\
  - id: reading
    kind: links
    title: Reading list
    topics: [data]
"""
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[reading].links")
    assert_shape(problem, path, line_of(path, "- id: reading"), "sections[reading].links", "",
                 "needs a list of at least 1 (title, url, note)")


def test_link_with_bad_url_is_reported_at_the_link(edition_dir):
    """One bad URL inside a links list is refused at that link's line."""
    section = """\
  - id: reading
    kind: links
    title: Reading list
    links:
      - {title: "Fine", url: "https://brief.example.com/fine"}
      - {title: "Broken", url: "https://brief example.com/broken"}
"""
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[reading].links[1].url")
    assert_shape(problem, path, line_of(path, "Broken"), "sections[reading].links[1].url",
                 "https://brief example.com/broken", "is not an http(s) URL")


def test_event_without_event_details_is_reported(edition_dir):
    """An event section with no event mapping is refused, asking for starts and location."""
    section = """\
  - id: meetup
    kind: event
    title: A meetup
    url: https://brief.example.com/meetup
"""
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[meetup].event")
    assert_shape(problem, path, line_of(path, "- id: meetup"), "sections[meetup].event", "",
                 "is required: event: {starts, location, tz?}")


def test_event_without_starts_is_reported(edition_dir):
    """An event without a start is refused at the event line."""
    section = """\
  - id: meetup
    kind: event
    title: A meetup
    url: https://brief.example.com/meetup
    event: {location: "Leeds"}
"""
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[meetup].event.starts")
    assert_shape(problem, path, line_of(path, "event:"), "sections[meetup].event.starts", "",
                 "is required (ISO date or date-time)")


def test_event_without_location_is_reported(edition_dir):
    """An event without a location is refused at the event line."""
    section = """\
  - id: meetup
    kind: event
    title: A meetup
    url: https://brief.example.com/meetup
    event:
      starts: "2026-12-10T18:00"
"""
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[meetup].event.location")
    assert_shape(problem, path, line_of(path, "event:"), "sections[meetup].event.location", "", "is required")


def test_event_with_unreadable_start_is_reported_at_starts(edition_dir):
    """An event start that is not ISO is refused at the starts line."""
    section = """\
  - id: meetup
    kind: event
    title: A meetup
    url: https://brief.example.com/meetup
    event:
      starts: next tuesday
      location: Leeds
"""
    path = write(edition_dir, HEADER + section)
    problem = only_problem(path, "sections[meetup].event.starts")
    assert_shape(problem, path, line_of(path, "starts:"), "sections[meetup].event.starts", "next tuesday",
                 "not an ISO date or date-time")


@pytest.mark.parametrize("value", ["0", "31", "'5'", "true", "2.5"])
def test_bad_sections_per_reader_is_reported(edition_dir, value):
    """sections_per_reader must be a whole number from 1 to 30, or the edition is refused at that line."""
    path = write(edition_dir, HEADER.replace("sections:", f"sections_per_reader: {value}\nsections:") + ARTICLE)
    problem = only_problem(path, "sections_per_reader")
    assert problem.line == line_of(path, "sections_per_reader:")
    assert str(problem).startswith(f"{path}:{problem.line}: sections_per_reader=")
    assert problem.reason == "must be a whole number from 1 to 30"


def test_subject_with_unknown_variable_is_reported(edition_dir):
    """A subject template naming an unknown reader field is refused at the subject line."""
    path = write(edition_dir, HEADER.replace("{{ first_name or 'Hello' }}", "{{ frist_name }}") + ARTICLE)
    problem = only_problem(path, "subject")
    assert problem.line == line_of(path, "subject:")
    assert "frist_name" in problem.reason and "first_name, last_name, email" in problem.reason


def test_edition_without_sections_is_reported(edition_dir):
    """An edition with an empty section list is refused."""
    path = write(edition_dir, HEADER.replace("sections:", "sections: []"))
    problem = only_problem(path, "sections")
    assert problem.reason == "an edition needs a list of sections"
    assert problem.line == line_of(path, "sections:")


def test_missing_taxonomy_file_is_reported(edition_dir):
    """An edition naming a topics file that does not exist is refused, naming that file."""
    path = write(edition_dir, HEADER.replace("sections:", "topics_file: nowhere.yaml\nsections:") + ARTICLE)
    problems = problems_of(path)
    assert [p.reason for p in problems] == ["taxonomy file not found"]
    assert problems[0].file == str(edition_dir / "nowhere.yaml")


# -- many problems, broken YAML ------------------------------------------------------------------

def test_every_problem_in_a_file_is_reported_at_once(edition_dir):
    """A file with several problems raises one InvalidEdition listing each, with its own line."""
    text = HEADER.replace("sections:", "sections_per_reader: 99\nsections:") + ARTICLE.replace(
        ', alt: "A chart of words"', "").replace("topics: [climate]", "topics: [climat]") + """\
  - id: meetup
    kind: event
    title: A meetup
    url: ftp://brief.example.com/meetup
"""
    path = write(edition_dir, text)
    with pytest.raises(InvalidEdition) as caught:
        load_edition(path)
    error = caught.value
    assert isinstance(error, PipelineError) and isinstance(error, ValueError)
    found = {(p.field, p.line) for p in error.problems}
    assert found == {
        ("sections_per_reader", line_of(path, "sections_per_reader:")),
        ("sections[good-article].image.alt", line_of(path, "image:")),
        ("sections[good-article].topics", line_of(path, "topics: [climat]")),
        ("sections[meetup].url", line_of(path, "ftp://")),
        ("sections[meetup].event", line_of(path, "- id: meetup")),
    }
    message = str(error)
    assert message.splitlines()[0] == "5 problems in edition; nothing was sent:"
    for problem in error.problems:
        assert f"  {problem}" in message.splitlines()


def test_invalid_yaml_reports_its_line(edition_dir):
    """A YAML syntax error is refused as one problem at the line where the parser stopped."""
    path = write(edition_dir, HEADER + ARTICLE.replace("title: A good article", "title: Colons: in: titles"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].line == line_of(path, "title: Colons")
    assert str(problems[0]).startswith(f"{path}:{problems[0].line}: edition=: not valid YAML:")


def test_bad_indentation_reports_its_line(edition_dir):
    """A mis-indented field is refused at its own line."""
    path = write(edition_dir, HEADER + ARTICLE.replace("    title: A good article", "   title: A good article"))
    problems = problems_of(path)
    assert [p.line for p in problems] == [line_of(path, "   title: A good article")]


def test_missing_edition_file_is_reported(edition_dir):
    """A path that does not exist is refused as a problem, not an unhandled exception."""
    path = edition_dir / "nope.yaml"
    problems = problems_of(path)
    assert [(p.file, p.reason) for p in problems] == [(str(path), "file not found")]


# -- language and event time zones ----------------------------------------------------------------

EVENT = """\
  - id: good-event
    kind: event
    title: A meetup
    url: https://brief.example.com/e
    event: {starts: "2026-12-10T18:00", tz: Europe/Berlin, location: Online}
    topics: [climate]
"""


def test_language_and_event_zone_are_read(edition_dir):
    """An edition's language and an event's zone are kept; the language defaults to en."""
    edition = load_edition(write(edition_dir, "language: de\n" + HEADER + EVENT))
    assert edition.language == "de" and edition.sections[0].event.tz == "Europe/Berlin"
    assert load_edition(write(edition_dir, HEADER + ARTICLE, "plain.yaml")).language == "en"


@pytest.mark.parametrize("value", ["english", "EN", "en_GB", "'12'", "''"])
def test_bad_language_is_reported(edition_dir, value):
    """A language that is not a BCP 47 tag is reported at its line."""
    path = write(edition_dir, HEADER + ARTICLE + f"language: {value}\n")
    problem = only_problem(path, "language")
    assert problem.line == line_of(path, "language:") and "language tag" in problem.reason


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "Europe", "'x' * 300"])
def test_unknown_event_zone_is_reported(edition_dir, zone):
    """An event zone that is not an IANA name (a folder, a path, a long string) is reported, never opened as a file."""
    zone = "x" * 300 if zone == "'x' * 300" else zone
    path = write(edition_dir, HEADER + EVENT.replace("tz: Europe/Berlin", f"tz: {zone!r}"))
    problem = only_problem(path, "sections[good-event].event.tz")
    assert "unknown time zone" in problem.reason
