"""Hostile Inbound Parse posts: forged signatures and reply addresses, odd charsets, oversized and broken bodies."""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pipeline.audience.reply_address import make_reply_token, read_reply_address, read_reply_token
from pipeline.emulator.inbound import InboundReply, inbound_form
from pipeline.emulator.signing import WebhookSigner, load_signing_key
from pipeline.engagement.inbound_parse import InvalidInboundPost, parse_inbound_form
from pipeline.engagement.reply_text import MAX_REPLY_CHARS, strip_quoted
from pipeline.store.models import EngagementEvent
from tests.test_web_inbound import DOMAIN, post, reader_sent, reply_address, serve, signer, stored_replies  # noqa: F401

KEY = b"security-test-secret-of-32-bytes-at-least"
PUBLIC_ID = "0123456789abcdef0123456789abcdef"
GENUINE = make_reply_token(KEY, PUBLIC_ID, "2026-12-07")


@given(st.text(max_size=120))
def test_any_text_as_a_reply_token_is_refused_without_an_error(text):
    """Whatever a local part holds, the parser answers None (or a genuine token) and never raises."""
    assert read_reply_token(KEY, text) is None or text.lower() == GENUINE
    assert read_reply_address(KEY, f"reply+{text}@{DOMAIN}", DOMAIN) is None or text.lower() == GENUINE


@given(st.integers(min_value=0, max_value=len(GENUINE) - 1), st.sampled_from("abcdefghijklmnopqrstuvwxyz234567"))
def test_changing_any_character_of_a_token_unattributes_it(position, replacement):
    """A token with one character altered never names the reader (the HMAC covers every bit)."""
    altered = GENUINE[:position] + replacement + GENUINE[position + 1:]
    if altered != GENUINE:
        assert read_reply_token(KEY, altered) is None


@given(st.text(max_size=2000))
def test_quote_stripping_only_removes_lines_and_never_keeps_a_quote(text):
    """The stripper never raises, keeps only lines the input had, and none of them quoted."""
    kept = strip_quoted(text)
    assert len(kept) <= MAX_REPLY_CHARS
    source = {line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")}
    lines = kept.split("\n") if kept else []
    assert all(line in source or len(kept) == MAX_REPLY_CHARS for line in lines)
    assert not any(line.lstrip().startswith(">") for line in lines)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.sampled_from(["multipart/form-data; boundary=xYzZY", "text/plain",
                                                  "multipart/form-data", "multipart/form-data; boundary=\""]))
def test_any_body_is_read_or_refused_as_invalid(body, content_type):
    """Random bytes under any content type parse, or raise InvalidInboundPost (a 400), never anything else."""
    try:
        parse_inbound_form(body, content_type)
    except InvalidInboundPost:
        pass


def test_a_reply_to_a_forged_or_altered_address_is_kept_unattributed(serve, db, signer):  # noqa: F811
    """A token with a changed character, or made with another key, attaches the reply to nobody, whoever sent it."""
    _, public_id = reader_sent(db)
    genuine = reply_address(public_id)
    local, _, domain = genuine.partition("@")
    altered = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    forged = f"reply+{make_reply_token(b'an-attacker-key-of-32-bytes-or-more!', public_id, '2026-12-07')}@{DOMAIN}"
    url = serve()
    for n, to in enumerate((altered, forged, f"news@{DOMAIN}")):
        answer = post(url, signer, InboundReply("ann@example.com", to, "Re", f"I need hiring help {n}"))
        assert answer.status_code == 200 and answer.json()["attributed"] is False
    assert [(r.reader_id, r.edition_id, r.attributed) for r in stored_replies(db)] == [(None, None, False)] * 3
    with db.session() as session:
        assert session.scalars(select(EngagementEvent)).all() == []  # learning never hears of them


def test_a_stale_or_forged_signature_is_refused(serve, db, signer):  # noqa: F811
    """A signature over other bytes, or an hour-old timestamp (a replay), is refused 403."""
    _, public_id = reader_sent(db)
    body, content_type = inbound_form(InboundReply("ann@example.com", reply_address(public_id), "Re", "hi"))
    url = serve()
    stale = signer.headers(str(int(time.time()) - 3600), body)
    forged = signer.headers(str(int(time.time())), body + b"tampered")
    for headers in (stale, forged):
        assert httpx.post(url, content=body, headers={"Content-Type": content_type, **headers}).status_code == 403
    assert stored_replies(db) == []


def test_an_oversized_post_is_refused_before_it_is_read(serve, db, signer):  # noqa: F811
    """A body over READERFIRST_INBOUND_MAX_BYTES is answered 413, declared or not, and nothing is stored."""
    url = serve(READERFIRST_INBOUND_MAX_BYTES=4096)
    reply = InboundReply("ann@example.com", f"reply+x@{DOMAIN}", "Re", "x" * 10_000)
    assert post(url, signer, reply).status_code == 413

    def chunks():
        yield b"--b\r\n" + b"y" * 8192

    answer = httpx.post(url, content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert answer.status_code == 413
    assert stored_replies(db) == []


@pytest.mark.parametrize(("charset", "text", "expected"), [
    ("iso-8859-1", "Café: j'ai besoin d'aide pour le recrutement", "Café: j'ai besoin d'aide pour le recrutement"),
    ("windows-1252", "Need “hiring” help", "Need “hiring” help"),
    ("x-no-such-charset", "plain ascii hiring", "plain ascii hiring"),
])
def test_fields_are_decoded_with_the_charset_sendgrid_names(charset, text, expected):
    """Each field is decoded with its charset from `charsets`; an unknown charset falls back without an error."""
    encoding = charset if charset != "x-no-such-charset" else "ascii"
    body, content_type = inbound_form(InboundReply("a@example.com", "reply+x@r.example", "Re", "",),
                                      extra={"text": text.encode(encoding),
                                             "charsets": f'{{"text": "{charset}"}}'.encode()})
    assert parse_inbound_form(body, content_type).text == expected


def test_bad_bytes_nul_and_html_only_bodies_are_made_safe():
    """Bytes that are not UTF-8 become U+FFFD, NULs vanish, and an HTML-only reply keeps its text without scripts."""
    body, content_type = inbound_form(InboundReply("a@example.com", "reply+x@r.example", "Re", ""),
                                      extra={"text": b"need \xff\xfe help\x00 now"})
    assert parse_inbound_form(body, content_type).text == "need \ufffd\ufffd help now"
    html = b"<p>Hiring help</p><script>alert(1)</script><blockquote>quoted newsletter</blockquote>"
    body, content_type = inbound_form(InboundReply("a@example.com", "reply+x@r.example", "Re", ""),
                                      extra={"text": b"", "html": html})
    assert parse_inbound_form(body, content_type).text == "Hiring help"


def test_nul_and_lone_surrogates_escaped_in_the_envelope_are_made_safe_and_the_reply_kept(serve, db, signer):  # noqa: F811
    """The envelope is JSON: its escapes can carry a NUL or a lone surrogate that the form's bytes cannot.

    They reached the reply's recipients as they were: PostgreSQL cannot store a NUL, and a lone
    surrogate cannot be encoded for any database.
    """
    envelope = b'{"to": ["reply+a\\u0000b@r.example", "reply+c\\ud800d@r.example"], "from": "a@example.com"}'
    body, content_type = inbound_form(InboundReply("a@example.com", "news@r.example", "Re", "need help"),
                                      extra={"envelope": envelope})
    recipients = parse_inbound_form(body, content_type).recipients
    assert recipients[:2] == ("reply+ab@r.example", "reply+c?d@r.example")
    answer = post(serve(), signer, InboundReply("a@example.com", "news@r.example", "Re", "need help"),
                  envelope=envelope)
    assert answer.status_code == 200 and len(stored_replies(db)) == 1


def test_a_post_that_is_not_a_form_is_answered_400(serve, signer):  # noqa: F811
    """A signed body that is not multipart form data is refused 400, not a 500."""
    body = b'{"text": "hi"}'
    answer = httpx.post(serve(), content=body, headers={"Content-Type": "application/json",
                                                        **signer.headers(str(int(time.time())), body)})
    assert answer.status_code == 400


def test_deeply_nested_multipart_is_refused_quickly_as_invalid():
    """Thousands of nested multipart parts are refused as invalid before the recursive parser sees them."""
    body = b"".join(f"--b{i}\r\nContent-Disposition: form-data; name=\"x{i}\"\r\n"
                    f"Content-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode() for i in range(3000))
    with pytest.raises(InvalidInboundPost, match="nested"):
        parse_inbound_form(body, "multipart/form-data; boundary=b0")
