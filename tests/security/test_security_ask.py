"""The ask's answer links against scanners, forgers, replays, odd words and a locked database."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pipeline.audience.ask_tokens import FREE_TEXT, make_ask_token, read_ask_token
from pipeline.settings import Settings
from pipeline.store.models import AskAnswer, ReaderNeed
from pipeline.web import create_app, running_server
from pipeline.web.forms import make_form_token
from tests.security.test_security_consent import locked, spool, wait_for, web_db  # noqa: F401 (fixture)
from tests.test_web_ask import SECRET, answer, link, nonce, sent_reader

TODAY = dt.date.today()  # the service's own clock: the locked-database tests run it unfixed
EXPIRES = TODAY + dt.timedelta(days=30)
PUBLIC_ID = "0123456789abcdef0123456789abcdef"


def recorded(db) -> tuple[int, int]:
    """(needs, answers) stored, over every reader."""
    with db.session() as session:
        return (session.scalar(select(func.count()).select_from(ReaderNeed)),
                session.scalar(select(func.count()).select_from(AskAnswer)))


@pytest.fixture
def site(db):
    """The web service on loopback, on today's date."""
    with running_server(create_app(Settings(), db)) as base:
        yield base


@pytest.fixture
def reader(db):
    """A reader sent the edition's ask."""
    return sent_reader(db)


# -- the token parser -----------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_no_text_reads_as_a_token(text):
    """Arbitrary text (any characters, any length) never reads as a genuine ask token, and never raises."""
    assert read_ask_token(SECRET, text, TODAY) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10**6), st.characters(codec="utf-8"), st.data())
def test_any_single_change_to_a_genuine_token_makes_it_worthless(position, character, data):
    """Replacing, inserting or deleting one character anywhere in a genuine token leaves nothing readable."""
    token = make_ask_token(SECRET, PUBLIC_ID, "2026-12-07", "hiring", EXPIRES)
    at = position % len(token)
    how = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    if how == "replace":
        changed = token[:at] + character + token[at + 1:]
    elif how == "insert":
        changed = token[:at] + character + token[at:]
    else:
        changed = token[:at] + token[at + 1:]
    if changed != token:
        assert read_ask_token(SECRET, changed, TODAY) is None


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True), st.integers(0, 400))
def test_genuine_tokens_read_back_until_their_day_and_not_after(topic, edition, days):
    """A token made by us reads back exactly while its day has not passed, and never the day after."""
    expires = TODAY + dt.timedelta(days=days)
    token = make_ask_token(SECRET, PUBLIC_ID, edition, topic, expires)
    claim = read_ask_token(SECRET, token, expires)
    assert claim is not None and (claim.public_id, claim.topic, claim.expires) == (PUBLIC_ID, topic, expires)
    assert read_ask_token(SECRET, token, expires + dt.timedelta(days=1)) is None
    assert read_ask_token(b"another-secret-of-at-least-32-bytes", token, TODAY) is None


# -- forged, altered and expired links ------------------------------------------------------------
def test_forged_altered_and_expired_links_are_a_plain_400_and_record_nothing(site, db, reader):
    """A forged signature, another topic or day under the old signature, or a past day: 400, nothing stored."""
    genuine = make_ask_token(SECRET, reader.public_id, "2026-12-07", "hiring", EXPIRES)
    public_id, key, topic, day, mac = genuine.split("~")
    forged = make_ask_token(b"an-attacker-secret-of-32-bytes-at-least", reader.public_id, "2026-12-07", "hiring",
                            EXPIRES)
    bad = [forged, "~".join((public_id, key, "climate", day, mac)),
           "~".join((public_id, key, topic, (EXPIRES + dt.timedelta(days=365)).strftime("%Y%m%d"), mac)),
           "~".join(("f" * 32, key, topic, day, mac)),
           make_ask_token(SECRET, reader.public_id, "2026-12-07", "hiring", TODAY - dt.timedelta(days=1)),
           genuine + "~", genuine[:-1], "x" * 5000]
    for token in bad:
        shown = httpx.get(f"{site}/a/{token}")
        posted = httpx.post(f"{site}/a/{token}", data={"form_token": make_form_token(SECRET, f"ask:{token}"),
                                                        "days": "30"})
        assert (shown.status_code, posted.status_code) == (400, 400), token
        assert "This link does not work" in shown.text
    assert recorded(db) == (0, 0)


def test_a_link_replayed_after_its_day_records_nothing(db, reader):
    """A link used once, then again after its day has passed, is refused the second time."""
    day = {"today": TODAY}
    with running_server(create_app(Settings(), db, today=lambda: day["today"])) as base:
        url = link(base, reader, expires=TODAY + dt.timedelta(days=3))
        page = httpx.get(url)
        assert answer(url).status_code == 200
        day["today"] = TODAY + dt.timedelta(days=4)
        replay = httpx.post(url, data={"form_token": nonce(page.text), "days": "60"})
        assert replay.status_code == 400
    with db.session() as session:
        assert session.scalar(select(ReaderNeed.until)) == TODAY + dt.timedelta(days=45)


# -- scanners and cross-site posts ----------------------------------------------------------------
PREFETCHES = [
    ("GET", {}), ("HEAD", {}),
    ("GET", {"Purpose": "prefetch", "Sec-Purpose": "prefetch"}),
    ("GET", {"X-HTTP-Method-Override": "POST", "Content-Type": "application/x-www-form-urlencoded"}),
    ("GET", {"User-Agent": "Mozilla/5.0 (compatible; SafeLinks; +https://example.com/scanner)",
             "Accept": "*/*", "Range": "bytes=0-1023"}),
    ("OPTIONS", {}),
]


def test_link_scanners_that_prefetch_never_record(site, db, reader):
    """GET and HEAD, with prefetch hints, a method override, a body or a scanner's headers, record nothing."""
    url = link(site, reader)
    for method, headers in PREFETCHES:
        response = httpx.request(method, url, headers=headers,
                                 content=b"days=30&form_token=x" if method == "GET" and headers else None)
        assert response.status_code in (200, 206, 405), (method, headers, response.status_code)
    assert recorded(db) == (0, 0)


def test_a_post_without_the_pages_nonce_or_from_another_site_records_nothing(site, db, reader):
    """A POST with no nonce, another link's nonce, an old nonce, or another site's Origin: 403, nothing stored."""
    url = link(site, reader)
    other = link(site, reader, "climate")
    token = url.rsplit("/", 1)[1]
    attempts = [({"days": "30"}, {}),
                ({"days": "30", "form_token": nonce(httpx.get(other).text)}, {}),
                ({"days": "30", "form_token": make_form_token(SECRET, f"ask:{token}", now=0)}, {}),
                ({"days": "30", "form_token": nonce(httpx.get(url).text)}, {"Origin": "https://evil.example"})]
    for form, headers in attempts:
        assert httpx.post(url, data=form, headers=headers).status_code == 403
    assert recorded(db) == (0, 0)


# -- odd and oversized words ----------------------------------------------------------------------
def test_words_over_the_limit_are_refused_and_record_nothing(site, db, reader):
    """501 characters of words: 400 asking for fewer, nothing stored; a body over 64 KB is 413."""
    url = link(site, reader)
    assert answer(url, words="x" * 501).status_code == 400
    page = httpx.get(url)
    huge = httpx.post(url, data={"form_token": nonce(page.text), "words": "y" * 70_000})
    assert huge.status_code == 413
    assert recorded(db) == (0, 0)


def test_control_and_invisible_characters_are_not_kept(site, db, reader):
    """NUL, escapes, bidi overrides and zero-width characters are dropped; the words are kept as text."""
    answer(link(site, reader), words="need\x00 a \x1b[31mdata\u202e engineer\u200b <b>now</b>")
    with db.session() as session:
        words = session.scalar(select(ReaderNeed.words))
    assert words == "need a [31mdata engineer <b>now</b>"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.text(max_size=600))
def test_any_words_are_stored_as_given_or_refused_whole(site, db, reader, words):
    """Whatever text a reader types, the answer is saved (200) or refused (400); never a 500."""
    response = answer(link(site, reader), words=words)
    assert response.status_code in (200, 400), response.text[:300]


# -- an unlucky database --------------------------------------------------------------------------
@pytest.fixture
def locked_site(home, db, web_db):  # noqa: F811 (web_db is the consent tests' fixture)
    """The web service over the short-timeout pool that `readerfirst web` opens."""
    with running_server(create_app(Settings(), web_db)) as base:
        yield base


def test_an_answer_under_a_locked_database_is_kept_then_recorded(home, db, locked_site, reader):
    """With the write lock held elsewhere, the answer is acknowledged, kept on disk, and recorded once free."""
    url = link(locked_site, reader, FREE_TEXT)
    page = httpx.get(url)
    with locked(home / "readerfirst.db"):
        response = httpx.post(url, data={"form_token": nonce(page.text), "topic": "data", "days": "30",
                                         "words": "a warehouse that fits"}, timeout=30)
        assert response.status_code == 200 and "Saved: you need help with Data" in response.text
        assert len(spool(home).pending()) == 1
        assert recorded(db) == (0, 0)
    assert wait_for(lambda: recorded(db) == (1, 1))
    with db.session() as session:
        need = session.scalars(select(ReaderNeed)).one()
    assert (need.topic, need.words, need.until) == ("data", "a warehouse that fits", TODAY + dt.timedelta(days=30))


def test_neither_database_nor_spool_is_503_and_records_nothing(home, db, web_db, reader):  # noqa: F811
    """When the spool cannot be written either, the answer is 503 and nothing is stored or promised."""
    blocked = home / "not-a-folder"
    blocked.write_text("a file where the spool folder should be")
    with running_server(create_app(Settings(READERFIRST_CONSENT_SPOOL=blocked / "spool"), web_db)) as base:
        url = link(base, reader)
        page = httpx.get(url)
        with locked(home / "readerfirst.db"):
            response = httpx.post(url, data={"form_token": nonce(page.text), "days": "30"}, timeout=30)
    assert response.status_code == 503 and response.headers["retry-after"] == "30"
    assert "Saved" not in response.text and recorded(db) == (0, 0)


def test_no_reader_data_or_token_leaks_into_the_page_of_a_bad_link(site, reader):
    """The 400 page of an altered link repeats neither the token nor the reader's name or address."""
    genuine = make_ask_token(SECRET, reader.public_id, "2026-12-07", "hiring", EXPIRES)
    # Its signature's last digit changed (setting two digits to "00" left one link in 256 as it was).
    token = genuine[:-1] + ("0" if genuine[-1] != "0" else "1")
    text = httpx.get(f"{site}/a/{token}").text
    assert token not in text and reader.public_id not in text
    assert "Ann" not in text and "ann@example.com" not in text
    assert re.search(r"<h1>This link does not work</h1>", text)
