"""Reader tokens: they round-trip, and anything forged, altered, repurposed or foreign is refused."""

from __future__ import annotations

import datetime as dt
import string
import uuid

import pytest
from sqlalchemy import select

from pipeline.audience.importer import import_audience
from pipeline.audience.tokens import make_token, read_token, reader_links
from pipeline.store.models import Reader

SECRET = b"test-secret-of-at-least-32-bytes!"
PUBLIC_ID = uuid.UUID("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0").hex


@pytest.mark.parametrize("purpose", ["u", "p"])
def test_token_round_trips(purpose):
    """A token made for a reader and purpose reads back as that reader's public id."""
    token = make_token(SECRET, PUBLIC_ID, purpose)
    assert read_token(SECRET, token, purpose) == PUBLIC_ID


@pytest.mark.parametrize("forged", [
    "",
    ".",
    PUBLIC_ID,
    PUBLIC_ID + ".",
    "." + "0" * 32,
    PUBLIC_ID + "." + "0" * 32,
    PUBLIC_ID + "." + "f" * 64,
    "1." + "0" * 32,
])
def test_forged_token_is_refused(forged):
    """A token not made with the secret (empty, no signature, a guessed signature) reads as None."""
    assert read_token(SECRET, forged, "u") is None


def test_token_with_any_one_character_changed_is_refused():
    """Changing any single character of a token, in the id or the signature, makes it invalid."""
    token = make_token(SECRET, PUBLIC_ID, "u")
    for index, char in enumerate(token):
        for replacement in ("0", "a", "F", "."):
            if replacement == char:
                continue
            altered = token[:index] + replacement + token[index + 1:]
            assert read_token(SECRET, altered, "u") is None, (index, replacement)


def test_truncated_or_extended_token_is_refused():
    """A token cut short or with characters added is refused."""
    token = make_token(SECRET, PUBLIC_ID, "u")
    assert read_token(SECRET, token[:-1], "u") is None
    assert read_token(SECRET, token + "0", "u") is None
    assert read_token(SECRET, "0" + token, "u") is None


def test_token_with_non_ascii_character_is_refused():
    """A token whose signature holds a non-ASCII character (as anyone can type into a URL) reads as None."""
    token = make_token(SECRET, PUBLIC_ID, "u")
    assert read_token(SECRET, token[:-1] + "é", "u") is None


def test_token_for_the_other_purpose_is_refused():
    """An unsubscribe token does not open preferences, nor the other way round."""
    unsubscribe = make_token(SECRET, PUBLIC_ID, "u")
    preferences = make_token(SECRET, PUBLIC_ID, "p")
    assert unsubscribe != preferences
    assert read_token(SECRET, unsubscribe, "p") is None
    assert read_token(SECRET, preferences, "u") is None


def test_token_made_with_another_secret_is_refused():
    """A token signed with another installation's secret is refused."""
    token = make_token(b"another-secret", PUBLIC_ID, "u")
    assert read_token(SECRET, token, "u") is None


def test_token_of_another_reader_does_not_carry_over():
    """A signature copied onto another reader's public id is refused."""
    mine = make_token(SECRET, PUBLIC_ID, "u")
    other_id = uuid.UUID(int=1).hex
    stolen = other_id + "." + mine.partition(".")[2]
    assert read_token(SECRET, stolen, "u") is None


def test_token_contains_no_database_id(db, tmp_path):
    """A reader's links carry only their random public id and a signature, never the row id."""
    path = tmp_path / "readers.csv"
    path.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(3)), encoding="utf-8")
    import_audience(db, path, "weekly", today=dt.date(2026, 12, 1))
    with db.session() as session:
        readers = session.execute(select(Reader.id, Reader.public_id).order_by(Reader.id)).all()
    assert [rid for rid, _ in readers] == [1, 2, 3]
    for rid, public_id in readers:
        unsubscribe, preferences = reader_links(SECRET, "https://brief.example.com/", public_id)
        assert unsubscribe.startswith("https://brief.example.com/u/")
        assert preferences.startswith("https://brief.example.com/p/")
        for url in (unsubscribe, preferences):
            token = url.rsplit("/", 1)[1]
            id_part, mac = token.split(".")
            # The id in the token is the random (version 4) public id, not derived from the row id.
            assert id_part == public_id and uuid.UUID(id_part).version == 4
            assert len(mac) == 32 and set(mac) <= set(string.hexdigits.lower())
        assert read_token(SECRET, unsubscribe.rsplit("/", 1)[1], "u") == public_id
        assert read_token(SECRET, preferences.rsplit("/", 1)[1], "p") == public_id
