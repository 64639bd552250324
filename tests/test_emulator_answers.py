"""Simulated readers answering the ask over HTTP, against the real answer page and its database."""

from __future__ import annotations

import dataclasses
import datetime as dt

import httpx

from pipeline.emulator.answers import AskBrowser, read_ask_form
from pipeline.emulator.readers import SimulatedReaders
from pipeline.emulator.store import ask_links_in
from pipeline.simulation.asks import AskHabit
from pipeline.simulation.models import load_reader_model
from tests.test_simulation_evaluate import MODELS
from tests.test_web_ask import TODAY, answers, link, needs, reader, site  # noqa: F401 (fixtures)


def test_the_browser_posts_the_pages_form_and_the_need_is_recorded(site, db, reader):
    """A simulated reader opens the link, sends its form with their days and words: one answer, one `ask` need."""
    browser = AskBrowser()
    assert browser.answer(link(site, reader, "hiring"), 60, "Help hiring a first engineer.") == 200
    assert answers(db) == [(reader.id, "2026-12-07", "hiring", "Help hiring a first engineer.")]
    assert needs(db, reader.id) == {"hiring": (TODAY + dt.timedelta(days=60), "ask", "Help hiring a first engineer.")}
    assert (browser.answered, browser.failed) == (1, 0)


def test_opening_a_link_records_nothing_and_an_altered_one_cannot_answer(site, db, reader):
    """A GET alone (a link scanner) records nothing; a link with an altered topic is refused and records nothing."""
    genuine = link(site, reader, "hiring")
    page = httpx.get(genuine)
    assert page.status_code == 200 and read_ask_form(page.text).hidden.get("form_token")
    altered = genuine.replace("~hiring~", "~climate~")
    browser = AskBrowser()
    assert browser.answer(altered, 45, "anything") is None
    assert answers(db) == [] and needs(db, reader.id) == {}
    assert (browser.answered, browser.failed) == (0, 1)


def test_the_ask_links_are_read_from_the_personalizations_substitutions():
    """The emulator finds each recipient's answer links among their substitutions, by the HTML merge key."""
    subs = {"%%rf:first_name%%": "Ann", "%%rf:ask:hiring%%": "http://x/a/1", "%%rft:ask:hiring%%": "http://x/a/1",
            "%%rf:ask:remote-work%%": "http://x/a/2", "%%rf:ask_words%%": "http://x/a/3"}
    assert ask_links_in(subs) == (("hiring", "http://x/a/1"), ("remote-work", "http://x/a/2"))


def test_readers_who_opened_their_copy_answer_through_the_page(site, db, reader, tmp_path):
    """`events_for` with ask links: a reader who opens their copy (chance 1) answers the ask via the page's POST."""
    model = load_reader_model(MODELS / "focused.yaml")
    model = dataclasses.replace(model, engagement=dataclasses.replace(model.engagement, open_rate=1.0))
    editions = tmp_path / "editions"
    editions.mkdir()
    (editions / "e.yaml").write_text("id: 2026-12-07\n")  # no sections with topics: the reader still reads it
    readers = SimulatedReaders(model, 3, editions, ask_habit=AskHabit(base=1.0))
    html = '<a href="https://example.com/x?rf_s=hiring-1&rf_e=2026-12-07">Hiring</a>'
    delivered = [{"event": "delivered", "email": reader.email, "timestamp": 1, "sg_event_id": "e1",
                  "sg_message_id": "m1", "edition_id": "2026-12-07"}]
    offered = {"hiring": link(site, reader, "hiring"), "climate": link(site, reader, "climate")}
    readers.events_for(delivered, html, {}, {reader.email.lower(): offered})
    assert [(r, e) for r, e, _, _ in answers(db)] == [(reader.id, "2026-12-07")]
    assert readers.asks.answered == 1
