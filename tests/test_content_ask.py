"""The ask: who is asked, what it offers, and the loop from an answer to the next edition's why line."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil

import httpx
import pytest

from pipeline.audience.importer import import_audience
from pipeline.audience.profile import Profile
from pipeline.content.ask import (
    ASK_KIND,
    ASK_QUESTION,
    add_ask,
    ask_topics,
    edition_for_mode,
    is_due,
    selectable,
    with_default_ask,
)
from pipeline.content.edition import load_edition
from pipeline.content.policy import PolicySettings, choose_sections
from pipeline.content.selection import Selection
from pipeline.content.wording import need_reason, shown_words
from pipeline.emulator import running_emulator
from pipeline.settings import Settings
from pipeline.web import create_app, running_server
from tests.conftest import EDITION, ROOT, SAMPLE_AUDIENCE

TODAY = dt.date(2026, 12, 7)


@pytest.fixture(scope="module")
def edition():
    """The sample edition with the default ask."""
    return with_default_ask(load_edition(EDITION))


def reader(**needs: int) -> Profile:
    """A reader whose needs run out `n` days after TODAY."""
    return Profile(reader_id=1, email="a@example.com", needs={t: TODAY + dt.timedelta(days=n) for t, n in needs.items()})


def test_readers_without_needs_or_with_one_running_out_are_asked():
    """No need, an expired one, or one ending within 14 days: asked; needs running past the window: not asked."""
    assert is_due(reader(), TODAY)
    assert is_due(reader(hiring=-1), TODAY)
    assert is_due(reader(hiring=13, climate=50), TODAY)
    assert not is_due(reader(hiring=14), TODAY)
    assert not is_due(reader(hiring=45, climate=30), TODAY)


def test_the_ask_is_added_last_and_never_chosen_by_the_policy(edition):
    """The policy never picks the ask; a due reader gets it after their sections, an answered one does not."""
    for name in ("thompson", "rule", "editorial"):
        chosen = choose_sections(selectable(edition), reader(), today=TODAY, policy_settings=PolicySettings(name=name))
        assert "ask" not in chosen.section_ids
        asked = add_ask(chosen, edition, reader(), TODAY)
        assert asked.section_ids == (*chosen.section_ids, "ask")
        assert add_ask(chosen, edition, reader(data=40), TODAY) == chosen


def test_auto_adds_the_default_ask_once_and_off_removes_it():
    """`auto` appends one ask section with the question; `off` leaves none; the editor's own ask is kept by auto."""
    plain = load_edition(EDITION)
    auto = edition_for_mode(plain, "auto")
    [ask] = [s for s in auto.sections if s.kind == ASK_KIND]
    assert (ask.id, ask.title, auto.sections[-1]) == ("ask", ASK_QUESTION, ask)
    assert edition_for_mode(auto, "auto") is auto
    assert [s for s in edition_for_mode(auto, "off").sections if s.kind == ASK_KIND] == []
    assert selectable(auto).sections == plain.sections


def test_the_ask_offers_the_editions_topics_in_editorial_order(edition):
    """The one-click answers are the edition's topics, first appearance first, at most eight."""
    seen: list[str] = []
    for section in edition.sections:
        seen.extend(t for t in section.topics if t not in seen)
    assert ask_topics(edition) == tuple(seen[:8]) and len(ask_topics(edition)) == 8


@pytest.mark.parametrize("words, shown", [
    ("hiring our first data engineer", "hiring our first data engineer"),
    ("  two   spaces\n", "two spaces"),
    ("x" * 61, None),
    ("mail me at ann@example.com", None),
    ("see https://evil.example", None),
    ("see www.evil.example", None),
    ("<script>alert(1)</script>", None),
    ("{{ 7*7 }}", None),
    ("%%rf:email%%", None),
    ("tab\tinside", "tab inside"),
    ("bell\x07", None),
    ("", None),
])
def test_only_short_safe_words_are_quoted_back(words, shown):
    """The why line quotes a reader's words only when short, printable, and free of addresses, links and markup."""
    assert shown_words(words) == shown
    reason = need_reason("Hiring", TODAY, words)
    assert reason == (f"you said you need help with \u201c{shown}\u201d until 2026-12-07" if shown
                      else "you said you need help with Hiring until 2026-12-07")


def test_the_policys_why_line_uses_the_readers_words(edition):
    """A section picked for a need says so in the reader's words."""
    profile = Profile(reader_id=1, email="a@example.com", needs={"hiring": TODAY + dt.timedelta(days=40)},
                      need_words={"hiring": "our first data engineer"})
    for name in ("thompson", "rule"):
        chosen = choose_sections(selectable(edition), profile, today=TODAY, policy_settings=PolicySettings(name=name))
        reasons = [p.reason for p in chosen.picks if "need help" in p.reason]
        assert reasons and set(reasons) == {"you said you need help with \u201cour first data engineer\u201d until 2027-01-16"}


def _ask_links(message_html: str) -> dict[str, str]:
    """Label -> answer link path of the ask in a delivered message."""
    found = re.findall(r'<a href="(http[^"]+/a/[^"]+)"[^>]*>([^<]+)</a>', message_html)
    return {html.unescape(label).strip(): html.unescape(href).split("/a/", 1)[1] for href, label in found}


def test_answer_then_next_edition_serves_the_need_in_the_readers_words(prefect_harness, home, db, monkeypatch,
                                                                        tmp_path):
    """Through SendGrid's client and the emulator: the ask's link records a need on the page's POST, and the
    next edition puts a section for it first with "you said you need help with" in the reader's (escaped) words."""
    from pipeline.flows.send_edition import send_edition

    today = dt.date.today()
    monkeypatch.setenv("READERFIRST_HOLDOUT_SHARE", "0")
    monkeypatch.setenv("READERFIRST_ASK", "auto")
    folder = tmp_path / "editions"
    folder.mkdir()
    shutil.copy(ROOT / "editions" / "topics.yaml", folder)
    shutil.copy(EDITION, folder / "2026-12-07.yaml")
    second = EDITION.read_text(encoding="utf-8").replace("id: 2026-12-07", "id: 2026-12-14", 1)
    (folder / "2026-12-14.yaml").write_text(second, encoding="utf-8")
    assert "id: 2026-12-14" in second
    email = "rosa.novak.3@example.com"  # no need in the sample audience: she is asked
    with running_emulator(store_path=home / "emulator.db") as emulator:
        monkeypatch.setenv("SENDGRID_API_KEY", emulator.api_key)
        monkeypatch.setenv("SENDGRID_API_HOST", emulator.url)
        import_audience(db, SAMPLE_AUDIENCE, "sample", today=today)
        send_edition(edition=str(folder / "2026-12-07.yaml"), audience="sample", today=today)
        (first,) = emulator.store.messages_for(email)
        assert ASK_QUESTION in first.html and ASK_QUESTION.upper() in first.text
        links = _ask_links(first.html)
        assert "Hiring" in links and "Something else? Tell us in your own words" in links
        with running_server(create_app(Settings(), db)) as site:
            url = f"{site}/a/{links['Hiring']}"
            page = httpx.get(url)
            token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
            saved = httpx.post(url, data={"form_token": token, "days": "45", "words": 'hiring & "onboarding" our first engineer'})
            assert saved.status_code == 200 and "Saved: you need help with Hiring" in saved.text
        send_edition(edition=str(folder / "2026-12-14.yaml"), audience="sample", today=today)
        _, nxt = emulator.store.messages_for(email)
    until = (today + dt.timedelta(days=45)).isoformat().replace("-", "\u2011")  # non-breaking hyphens in reasons
    said = "you said you need help with \u201c{}\u201d until " + until
    assert said.format("hiring &amp; &quot;onboarding&quot; our first engineer") in nxt.html
    assert said.format('hiring & "onboarding" our first engineer') in nxt.text
    assert ASK_QUESTION not in nxt.html  # she answered: not asked again until the need runs out
