"""The preference centre over real HTTP and in headless Chromium: topics, needs, unsubscribe, CSRF, escaping."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import httpx
import pytest
from sqlalchemy import select

from pipeline.audience.tokens import make_token
from pipeline.settings import Settings
from pipeline.store.models import Reader, ReaderInterest, ReaderNeed
from pipeline.web import create_app, running_server
from tests.test_engagement_store import add_reader
from tests.tools import chromium_dom, chromium_screenshot, png_is_blank

SECRET = b"test-secret-of-at-least-32-bytes!"  # READERFIRST_SECRET set by the `home` fixture
TODAY = dt.date(2026, 12, 7)
TAXONOMY = ["climate", "hiring", "ai", "security", "design", "funding", "remote-work", "product", "data", "leadership"]


def days(n: int) -> str:
    """The ISO date `n` days after TODAY."""
    return (TODAY + dt.timedelta(days=n)).isoformat()


@pytest.fixture
def site(db) -> str:
    """The web service on loopback, its clock fixed at TODAY."""
    with running_server(create_app(Settings(), db, today=lambda: TODAY)) as base:
        yield base


@pytest.fixture
def reader(db) -> Reader:
    """A reader who declared ai and climate, learned about ai and security, opted out of design, and has an imported need."""
    reader_id = add_reader(db, "ann@example.com")
    with db.session() as session:
        session.add_all([
            ReaderInterest(reader_id=reader_id, topic="ai", declared_weight=1.0, learned_clicks=3.0, learned_exposures=10.0),
            ReaderInterest(reader_id=reader_id, topic="climate", declared_weight=0.6, learned_clicks=0.0,
                           learned_exposures=0.0),
            ReaderInterest(reader_id=reader_id, topic="security", declared_weight=None, learned_clicks=2.0,
                           learned_exposures=5.0),
            ReaderInterest(reader_id=reader_id, topic="design", declared_weight=1.0, learned_clicks=0.0,
                           learned_exposures=0.0, opted_out=True),
            ReaderNeed(reader_id=reader_id, topic="leadership", until=TODAY + dt.timedelta(days=10), source="import"),
        ])
    with db.session() as session:
        return session.get(Reader, reader_id)


def page_url(site: str, reader: Reader) -> str:
    """The reader's preference-centre URL."""
    return f"{site}/p/{make_token(SECRET, reader.public_id, 'p')}"


def form_token(html: str) -> str:
    """The form token the page embedded."""
    return re.search(r'name="form_token" value="([^"]+)"', html).group(1)


def interests(db, reader_id: int) -> dict[str, tuple]:
    """topic -> (declared_weight, learned_clicks, learned_exposures, opted_out)."""
    with db.session() as session:
        return {r.topic: (r.declared_weight, r.learned_clicks, r.learned_exposures, r.opted_out)
                for r in session.scalars(select(ReaderInterest).where(ReaderInterest.reader_id == reader_id))}


def needs(db, reader_id: int) -> dict[str, tuple[dt.date, str]]:
    """topic -> (until, source)."""
    with db.session() as session:
        return {n.topic: (n.until, n.source)
                for n in session.scalars(select(ReaderNeed).where(ReaderNeed.reader_id == reader_id))}


class _Inputs(HTMLParser):
    """Collects forms, inputs, options and labels of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.inputs: list[dict] = []
        self.labels: list[str] = []
        self._in_label = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(attrs)
        elif tag in ("input", "select"):
            self.inputs.append({"tag": tag, **attrs})
        elif tag == "label":
            self._in_label = True
            self.labels.append("")

    def handle_endtag(self, tag):
        if tag == "label":
            self._in_label = False

    def handle_data(self, data):
        if self._in_label:
            self.labels[-1] += data


@pytest.mark.browser
def test_page_in_chromium_shows_the_form_with_declared_topics_ticked(site, reader, tmp_path):
    """In Chromium the page has the form, every topic with a label, declared topics ticked, two need rows."""
    url = page_url(site, reader)
    found = _Inputs()
    found.feed(chromium_dom(url, tmp_path / "profile"))
    assert any(f.get("method") == "post" and f.get("id") == "preferences" for f in found.forms)
    boxes = {i["value"]: "checked" in i for i in found.inputs if i.get("type") == "checkbox"}
    assert list(boxes) == TAXONOMY
    assert {topic for topic, ticked in boxes.items() if ticked} == {"ai", "climate"}  # design was opted out
    assert {"Climate", "AI", "Remote work"} <= {label.strip() for label in found.labels}
    dates = [i for i in found.inputs if i.get("type") == "date"]
    # The imported need comes first, with its own date; the second row is empty, at the default date.
    assert [(d["value"], d["min"], d["max"]) for d in dates] == [(days(10), days(10), days(60)),
                                                                  (days(45), days(30), days(60))]
    assert sum(1 for i in found.inputs if i["tag"] == "select") == 2
    shot = chromium_screenshot(url, tmp_path / "preferences.png", tmp_path / "profile2", width=390, height=1400)
    assert not png_is_blank(shot)


def test_saving_topics_changes_declared_weights_and_keeps_learned_ones(site, db, reader):
    """Ticked topics are declared (new ones at 1.0), unticked ones undeclared, learned columns untouched."""
    url = page_url(site, reader)
    token = form_token(httpx.get(url).text)
    answer = httpx.post(url, data={"form_token": token, "action": "save", "topic": ["ai", "data", "security"]})
    assert answer.status_code == 200 and "Saved." in answer.text
    after = interests(db, reader.id)
    assert after["ai"] == (1.0, 3.0, 10.0, False)
    assert after["climate"] == (None, 0.0, 0.0, False)
    assert after["security"] == (1.0, 2.0, 5.0, False)
    assert after["data"] == (1.0, 0.0, 0.0, False)
    assert after["design"] == (None, 0.0, 0.0, True)  # still opted out: not ticked


def test_ticking_an_opted_out_topic_opts_back_in(site, db, reader):
    """A topic the reader had opted out of is declared again, and no longer opted out, when they tick it."""
    url = page_url(site, reader)
    httpx.post(url, data={"form_token": form_token(httpx.get(url).text), "topic": ["design"]})
    assert interests(db, reader.id)["design"] == (1.0, 0.0, 0.0, False)


def test_needs_are_saved_for_30_to_60_days_at_most_two(site, db, reader):
    """Up to two needs are stored from the preference centre with their date; a third field is ignored."""
    url = page_url(site, reader)
    token = form_token(httpx.get(url).text)
    form = {"form_token": token, "topic": ["ai"], "need_topic_1": "hiring", "need_until_1": days(45),
            "need_topic_2": "funding", "need_until_2": days(30), "need_topic_3": "data", "need_until_3": days(40)}
    assert httpx.post(url, data=form).status_code == 200
    assert needs(db, reader.id) == {  # the imported need, shown in the first row, was replaced by the reader
        "hiring": (TODAY + dt.timedelta(days=45), "preference_centre"),
        "funding": (TODAY + dt.timedelta(days=30), "preference_centre"),
    }
    page = httpx.get(url).text
    assert re.search(r'<option value="funding" selected>', page) and f'value="{days(30)}"' in page
    # Saving again with one row cleared removes that need.
    form.update({"need_topic_2": "", "form_token": form_token(page)})
    httpx.post(url, data=form)
    assert set(needs(db, reader.id)) == {"hiring"}


def test_an_imported_need_is_shown_and_can_be_removed(site, db, reader):
    """A need that came from an import shows on the page, and saving with its row cleared removes it, learned data kept."""
    url = page_url(site, reader)
    page = httpx.get(url).text
    assert re.search(r'<option value="leadership" selected>', page) and f'value="{days(10)}"' in page
    before = interests(db, reader.id)
    answer = httpx.post(url, data={"form_token": form_token(page), "topic": ["ai", "climate"], "need_topic_1": ""})
    assert answer.status_code == 200 and needs(db, reader.id) == {}
    assert interests(db, reader.id)["ai"][1:3] == before["ai"][1:3] and interests(db, reader.id)["security"] == before["security"]


def test_an_aging_need_can_be_saved_unchanged(site, db, reader):
    """A need stated weeks ago, now under 30 days away, stays valid when the form is saved unchanged."""
    with db.session() as session:
        session.add(ReaderNeed(reader_id=reader.id, topic="hiring", until=TODAY + dt.timedelta(days=12),
                               source="preference_centre"))
    url = page_url(site, reader)
    page = httpx.get(url).text
    assert f'value="{days(12)}" min="{days(12)}"' in page
    answer = httpx.post(url, data={"form_token": form_token(page), "topic": ["ai"],
                                   "need_topic_1": "hiring", "need_until_1": days(12)})
    assert answer.status_code == 200
    assert needs(db, reader.id)["hiring"] == (TODAY + dt.timedelta(days=12), "preference_centre")


@pytest.mark.parametrize(("fields", "message"), [
    ({"need_topic_1": "hiring", "need_until_1": days(61)}, "choose a date between"),
    ({"need_topic_1": "hiring", "need_until_1": days(29)}, "choose a date between"),
    ({"need_topic_1": "hiring", "need_until_1": "next month"}, "YYYY-MM-DD"),
    ({"need_topic_1": "astrology", "need_until_1": days(40)}, "choose a topic from the list"),
    ({"need_topic_1": "hiring", "need_until_1": days(40), "need_topic_2": "hiring", "need_until_2": days(50)},
     "already chosen above"),
])
def test_invalid_form_is_refused_and_changes_nothing(site, db, reader, fields, message):
    """A need outside 30-60 days, a bad date, an unknown or repeated topic: 400 with the reason, nothing saved."""
    url = page_url(site, reader)
    before = (interests(db, reader.id), needs(db, reader.id))
    answer = httpx.post(url, data={"form_token": form_token(httpx.get(url).text), "topic": ["data"], **fields})
    assert answer.status_code == 400 and message in answer.text and "Nothing was changed" in answer.text
    assert (interests(db, reader.id), needs(db, reader.id)) == before


def test_unsubscribing_from_the_preference_centre(site, db, reader):
    """The page's unsubscribe button, with its form token, unsubscribes the reader at once."""
    url = page_url(site, reader)
    answer = httpx.post(url, data={"form_token": form_token(httpx.get(url).text), "action": "unsubscribe"})
    assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    with db.session() as session:
        after = session.get(Reader, reader.id)
    assert (after.status, after.suppressed_reason) == ("unsubscribed", "unsubscribe")
    assert "you receive no editions" in httpx.get(url).text
