"""Hostile requests for web versions: a forged, altered, swapped or oversized link shows nobody's copy."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from pipeline.audience.tokens import make_token
from pipeline.rendering.links import read_web_version_token, web_version_token
from pipeline.settings import Settings
from pipeline.web import create_app, running_server
from tests.test_web_web_version import add_sent_copy

SECRET = b"test-secret-of-at-least-32-bytes!"
OTHER_SECRET = b"another-secret-of-at-least-32-bytes"


@pytest.fixture
def site(db):
    """The web service on loopback with the test database."""
    with running_server(create_app(Settings(), db)) as base:
        yield base


def _refused(response: httpx.Response) -> bool:
    """A plain refusal: 404 or 400, the plain page, no reader data, nothing indexable."""
    return (response.status_code in (400, 404) and "This link does not work" in response.text
            and "ann@example.com" not in response.text and response.headers["x-robots-tag"].startswith("noindex"))


def test_forged_altered_and_swapped_links_are_refused(db, site):
    """A token signed with another key, with one character changed, for another edition or for unsubscribing is refused."""
    ann = add_sent_copy(db, "ann@example.com")
    bob = add_sent_copy(db, "bob@example.com")
    good = web_version_token(SECRET, ann.public_id, "2026-12-07")
    assert httpx.get(f"{site}/web/{good}").status_code == 200
    edition, _, rest = good.partition("~")
    public_id, _, mac = rest.partition(".")
    altered_mac = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    candidates = [
        web_version_token(OTHER_SECRET, ann.public_id, "2026-12-07"),  # forged
        f"{edition}~{public_id}.{altered_mac}",  # altered signature
        f"{edition}~{bob.public_id}.{mac}",  # someone else's id under Ann's signature
        f"2026-12-08~{public_id}.{mac}",  # another edition under the same signature
        f"{edition}~{make_token(SECRET, ann.public_id, 'u')}",  # her genuine unsubscribe token
        make_token(SECRET, ann.public_id, "u"),
        f"..~{public_id}.{mac}", f"{edition}~", "~", f"{edition}~{public_id}", f"{edition}~.{mac}",
        f"{edition}~{public_id}.{mac.upper()}", f"{edition}%7E{public_id}.{mac}x",
        "x" * 5000,
    ]
    for token in candidates:
        assert _refused(httpx.get(f"{site}/web/{token}")), token


def test_genuine_link_for_an_edition_that_is_not_there_is_refused(db, site, tmp_path):
    """A genuine token whose edition was never sent to the reader, or whose file is gone, shows the plain 404."""
    ann = add_sent_copy(db, "ann@example.com")
    assert _refused(httpx.get(f"{site}/web/{web_version_token(SECRET, ann.public_id, '2027-01-04')}"))
    with running_server(create_app(Settings(READERFIRST_EDITIONS=str(tmp_path)), db)) as empty:
        assert _refused(httpx.get(f"{empty}/web/{web_version_token(SECRET, ann.public_id, '2026-12-07')}"))


def test_path_and_method_tricks_are_refused(db, site):
    """A web version answers GET only, never follows a path outside its token, and never redirects."""
    ann = add_sent_copy(db, "ann@example.com")
    good = web_version_token(SECRET, ann.public_id, "2026-12-07")
    assert httpx.post(f"{site}/web/{good}").status_code == 405
    assert httpx.get(f"{site}/web/{good}/").status_code == 404
    assert httpx.get(f"{site}/web/..%2F..%2Fetc%2Fpasswd").status_code == 404


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_tokens_are_never_genuine(token):
    """No text an attacker can type reads as a genuine web-version token without the key."""
    assert read_web_version_token(SECRET, token) is None


@hypothesis_settings(max_examples=200, deadline=None)
@given(edition=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", fullmatch=True),
       public_id=st.from_regex(r"[0-9a-f]{32}", fullmatch=True), position=st.integers(min_value=0))
def test_every_single_character_change_is_refused(edition, public_id, position):
    """A genuine token reads back as its edition and reader; changing any one of its characters makes it worthless."""
    token = web_version_token(SECRET, public_id, edition)
    assert read_web_version_token(SECRET, token) == (edition, public_id)
    at = position % len(token)
    changed = token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1:]
    found = read_web_version_token(SECRET, changed)
    assert found is None


def test_an_edition_broken_since_the_send_shows_the_plain_page(db, tmp_path):
    """An edition file edited into an invalid one after the send gives the reader the plain 404, never a 500."""
    folder = tmp_path / "editions"
    folder.mkdir()
    ann = add_sent_copy(db, "ann@example.com")
    (folder / "2026-12-07.yaml").write_text("id: 2026-12-07\nsubject: x\nsections: nonsense\n")
    with running_server(create_app(Settings(READERFIRST_EDITIONS=str(folder)), db)) as base:
        assert _refused(httpx.get(f"{base}/web/{web_version_token(SECRET, ann.public_id, '2026-12-07')}"))
