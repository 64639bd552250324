"""Reader focus: sections about the reader pass, sections about the sender are flagged with their sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.content.edition import load_edition
from pipeline.content.reader_focus import SENDER_FIRST_BELOW, score_edition, score_section, score_text

CORPUS = Path(__file__).resolve().parent / "fixtures" / "reader-focus"


def corpus(name: str) -> list[str]:
    """The texts of a corpus file: one section a line, `#` lines are comments."""
    return [line for line in (CORPUS / name).read_text().splitlines() if line.strip() and not line.startswith("#")]


READER_FIRST = corpus("reader-first.txt")
SENDER_FIRST = corpus("sender-first.txt")


@pytest.mark.parametrize("text", READER_FIRST)
def test_reader_first_texts_are_never_flagged(text):
    """A section about the reader's outcome scores above zero and carries no flag."""
    focus = score_section("s", [text])
    assert focus.score > 0, focus
    assert not focus.sender_first and focus.flags == []


@pytest.mark.parametrize("text", SENDER_FIRST)
def test_sender_first_texts_are_flagged_with_a_sentence_of_their_own(text):
    """A section about the sender scores below the threshold and names a sentence from its text."""
    focus = score_section("s", [text])
    assert focus.score < SENDER_FIRST_BELOW, focus
    assert focus.flags and all(flag.sentence in " ".join(text.split()) for flag in focus.flags)


def test_promotional_language_is_flagged_even_in_a_reader_first_section():
    """A call to buy is flagged with its sentence, whatever the rest of the section says."""
    text = ("How to cut your cloud bill: three settings you can change today. "
            "Buy now and get 20% off our audit service.")
    focus = score_section("cloud", ["Cut your cloud bill", text])
    [promo] = [flag for flag in focus.flags if flag.reason == "promotional"]
    assert promo.sentence == "Buy now and get 20% off our audit service."
    assert {p.lower() for p in promo.phrases} == {"buy now", "20% off"}


def test_first_person_singular_is_a_voice_not_a_pitch():
    """An editor's letter in the first person singular is not sender-centred for that alone."""
    assert score_text("I spent the week reading your replies. I learned that I had the order wrong.") >= 0


def test_markdown_addresses_do_not_count():
    """Words inside link addresses are not read; link text is."""
    assert score_text("[Read the guide](https://example.com/our-new-product-we-are-excited)") == 0


def test_edition_is_sender_first_when_most_sections_are():
    """An edition is refused as a whole only when more than half of its sections are about the sender."""
    mostly_sender = score_edition([(f"s{n}", [t]) for n, t in enumerate(SENDER_FIRST[:3] + READER_FIRST[:2])])
    assert mostly_sender.sender_first and len(mostly_sender.sender_first_sections) == 3
    mostly_reader = score_edition([(f"s{n}", [t]) for n, t in enumerate(SENDER_FIRST[:2] + READER_FIRST[:3])])
    assert not mostly_reader.sender_first


def test_the_sample_edition_is_reader_first(edition_path):
    """No section of the shipped sample edition is about the sender."""
    edition = load_edition(edition_path)
    focus = score_edition((s.id, [s.title, s.body]) for s in edition.sections)
    assert focus.sender_first_sections == [], [(s.section_id, s.score, s.flags) for s in focus.sender_first_sections]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gets_a_bounded_score(text):
    """Whatever an editor writes, the score is a number from -1 to 1 and scoring never fails."""
    assert -1.0 <= score_text(text) <= 1.0
    score_section("s", [text, text])


def _edition_about_the_sender(folder: Path, sender_sections: int) -> Path:
    """The sample edition with its first `sender_sections` section bodies replaced by sender-first texts."""
    import yaml

    source = yaml.safe_load((folder / "2026-12-07.yaml").read_text())
    for section, text in zip(source["sections"][:sender_sections], SENDER_FIRST):
        section["body"] = text
    path = folder / "sender.yaml"
    path.write_text(yaml.safe_dump(source, allow_unicode=True))
    return path


def test_check_refuses_an_edition_about_the_sender_unless_allowed(edition_dir, tmp_path):
    """`check` warns per sender-centred section with its sentence, fails (exit 2) when most are, and passes when allowed."""
    from tests.test_cli import run

    path = _edition_about_the_sender(edition_dir, 10)  # 10 of the 16 that count (the labelled sponsor does not)
    refused = run(tmp_path, "check", str(path), check=False)
    assert refused.returncode == 2
    assert refused.stderr.count("warning:") >= 10
    assert "sections[editors-note]: sender-centred" in refused.stderr
    assert f"error: {path}: 10 of 16 sections are about the sender" in refused.stderr
    allowed = run(tmp_path, "check", str(path), "--allow-sender-first")
    assert "6 of 16 sections reader-first" in allowed.stdout


def test_check_passes_a_mostly_reader_first_edition_with_warnings(edition_dir, tmp_path):
    """A few sender-centred sections are warnings; the edition still passes."""
    from tests.test_cli import run

    result = run(tmp_path, "check", str(_edition_about_the_sender(edition_dir, 4)))
    assert "12 of 16 sections reader-first" in result.stdout
    assert "promotional" in result.stderr and "Buy now and save 30% off every plan." in result.stderr
