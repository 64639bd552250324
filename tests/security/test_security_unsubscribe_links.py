"""Unsubscribe links under attack: forged, altered and wrong-purpose tokens change nothing."""

from __future__ import annotations

import httpx
import pytest

from pipeline.audience.tokens import make_token
from tests.test_web_unsubscribe import (  # noqa: F401 - reader and site are fixtures
    ONE_CLICK,
    SECRET,
    current,
    reader,
    site,
    unsubscribe_events,
)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_and_altered_tokens_are_refused(site, db, reader, method):
    """Forged, altered, other-secret and unknown-reader tokens get a plain 404 that changes nothing."""
    genuine = make_token(SECRET, reader.public_id, "u")
    flipped = genuine[:-1] + ("0" if genuine[-1] != "0" else "1")
    forged = [
        flipped,
        reader.public_id,
        f"{reader.public_id}.{'0' * 32}",
        make_token(b"another-secret", reader.public_id, "u"),
        make_token(SECRET, "f" * 32, "u"),
    ]
    for token in forged:
        answer = httpx.request(method, f"{site}/u/{token}", data=ONE_CLICK if method == "POST" else None)
        assert answer.status_code == 404, token
        assert "This link does not work" in answer.text and reader.public_id not in answer.text
    assert current(db, reader.id).status == "subscribed" and unsubscribe_events(db) == []


def test_a_preferences_token_cannot_unsubscribe(site, db, reader):
    """The reader's preference-centre token is refused on /u: a token serves only its own purpose."""
    answer = httpx.post(f"{site}/u/{make_token(SECRET, reader.public_id, 'p')}", data=ONE_CLICK)
    assert answer.status_code == 404
    assert current(db, reader.id).status == "subscribed"
