"""Per-reader reply addresses: short, signed, readable back in any case, refused when altered."""

from __future__ import annotations

import uuid

from pipeline.audience.reply_address import (edition_digest, make_reply_address, make_reply_token, read_reply_address,
                                             read_reply_token)

SECRET = b"reply-address-test-secret-of-32-bytes!"
PUBLIC_ID = uuid.UUID(int=7).hex


def test_a_reply_address_fits_a_local_part_and_reads_back():
    """The local part is at most 64 characters and the token reads back as the reader and edition."""
    address = make_reply_address(SECRET, "Replies.Example.com", PUBLIC_ID, "2026-12-07")
    local, _, domain = address.partition("@")
    assert len(local) <= 64 and domain == "replies.example.com"
    token = read_reply_address(SECRET, address, "replies.example.com")
    assert token is not None
    assert (token.public_id, token.edition_digest) == (PUBLIC_ID, edition_digest("2026-12-07"))


def test_a_lower_or_upper_cased_address_still_reads():
    """Mail systems may change the case of a local part; the token survives either way."""
    address = make_reply_address(SECRET, "replies.example.com", PUBLIC_ID, "2026-12-07")
    assert read_reply_address(SECRET, address.upper()) is not None
    assert read_reply_address(SECRET, address.lower()) is not None


def test_another_secret_or_domain_or_edition_is_refused():
    """A token made with another key, or an address on another domain, names nobody."""
    address = make_reply_address(SECRET, "replies.example.com", PUBLIC_ID, "2026-12-07")
    assert read_reply_address(b"another-secret-of-at-least-32-bytes!!", address) is None
    assert read_reply_address(SECRET, address, "elsewhere.example.com") is None
    other = make_reply_token(SECRET, PUBLIC_ID, "2026-12-14")
    assert read_reply_token(SECRET, other).edition_digest != edition_digest("2026-12-07")
