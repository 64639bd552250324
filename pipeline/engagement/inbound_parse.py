"""SendGrid's Inbound Parse post, read into our own `InboundMessage`: the provider edge for replies.

SendGrid posts each received mail as `multipart/form-data`. Parsed mode has the fields `from`,
`to`, `cc`, `subject`, `text`, `html`, `headers` (the raw header block), `envelope` (JSON:
`{"to": [...], "from": "..."}`), `charsets` (JSON: the character set of each field),
`SPF`, `dkim`, `sender_ip`, `spam_score`, `attachments` and one file part per attachment;
raw mode (`send_raw`) posts the whole message as `email` instead of `text`/`html`/`headers`.
The form's own text is not trusted to be UTF-8: each field is decoded with the charset that
`charsets` names for it (unknown charsets and bad bytes become U+FFFD, never an error), and
NUL characters are removed (PostgreSQL text cannot hold them). Attachments are never read
into the reply: their bytes are skipped and only counted.

The multipart body is read with the standard library's MIME parser, which gives each part's
bytes as sent, so the charsets can be applied (a form decoder would already have guessed).
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import hashlib
import json
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from html.parser import HTMLParser

from pipeline.errors import PipelineError

__all__ = ["InboundMessage", "InvalidInboundPost", "parse_inbound_form", "MAX_PARTS"]

MAX_PARTS = 500  # form fields and attachments in one post; SendGrid sends about 15 plus attachments
# Multipart declarations in one post: a real mail nests a few (mixed, alternative, related); the
# standard parser recurses into each, so thousands would take seconds and then overflow the stack.
_MAX_NESTED = 100
_SUBJECT_CHARS = 998  # RFC 5322's line limit: a subject longer than this was not written by a person
_ADDRESS_CHARS = 320


class InvalidInboundPost(PipelineError, ValueError):
    """A post that is not an Inbound Parse form (answered 400; SendGrid does not send these)."""


@dataclass(frozen=True)
class InboundMessage:
    """One received mail in readerfirst's terms."""

    from_address: str
    recipients: tuple[str, ...]  # envelope recipients first, then the To and Cc headers
    subject: str
    text: str  # the plain-text body (the HTML's text when there is none), not yet stripped of quotes
    message_id: str  # the Message-ID header, or a digest of the post when the mail has none
    raw_size: int
    attachments: int = 0
    spf: str = ""


class _TextOfHtml(HTMLParser):
    """The visible text of an HTML body, one line per block, for mail without a text part."""

    _BLOCKS = {"p", "div", "br", "li", "tr", "blockquote", "h1", "h2", "h3", "h4"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._quoted = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("script", "style", "head"):
            self._hidden += 1
        if tag == "blockquote":
            self._quoted += 1  # what the reader quoted of our own newsletter
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._hidden = max(0, self._hidden - 1)
        if tag == "blockquote":
            self._quoted = max(0, self._quoted - 1)
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden and not self._quoted:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # html.parser gives up on some hostile markup: keep what it read
        pass
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()


def _clean(text: str) -> str:
    return text.replace("\x00", "")


def _decode(value: bytes, charset: str | None) -> str:
    try:
        return _clean(value.decode(charset or "utf-8", errors="replace"))
    except LookupError:  # a charset Python does not know
        return _clean(value.decode("utf-8", errors="replace"))


def _fields(body: bytes, content_type: str) -> tuple[dict[str, bytes], int]:
    """The form's fields (name -> bytes) and how many file parts it had."""
    content_type = " ".join(content_type.split())  # one header line, whatever the client sent
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type.lower():
        raise InvalidInboundPost("not a multipart/form-data post with a boundary")
    if body.lower().count(b"multipart/") > _MAX_NESTED:
        raise InvalidInboundPost(f"more than {_MAX_NESTED} nested multipart parts")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", errors="replace")
    try:
        message = email.message_from_bytes(head + body, policy=email.policy.compat32)
    except RecursionError:
        raise InvalidInboundPost("multipart parts nested too deeply") from None
    if not message.is_multipart():
        raise InvalidInboundPost("the multipart body has no parts")
    parts = message.get_payload()
    if not isinstance(parts, list) or not parts:
        raise InvalidInboundPost("the multipart body has no parts")
    if len(parts) > MAX_PARTS:
        raise InvalidInboundPost(f"more than {MAX_PARTS} parts")
    fields: dict[str, bytes] = {}
    files = 0
    for part in parts:
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, tuple):  # RFC 2231 form
            name = email.utils.collapse_rfc2231_value(name)
        if part.get_param("filename", header="content-disposition") is not None:
            files += 1
            continue
        if not isinstance(name, str) or name in fields:
            continue
        payload = part.get_payload(decode=True)
        fields[name] = payload if isinstance(payload, bytes) else b""
    return fields, files


def _charsets(fields: dict[str, bytes]) -> dict[str, str]:
    try:
        named = json.loads(fields.get("charsets", b"{}").decode("utf-8", errors="replace") or "{}")
    except (ValueError, RecursionError):
        return {}
    if not isinstance(named, dict):
        return {}
    return {str(k): v for k, v in named.items() if isinstance(v, str) and len(v) <= 40}


def _envelope_recipients(raw: str) -> list[str]:
    try:
        envelope = json.loads(raw or "{}")
    except (ValueError, RecursionError):
        return []
    to = envelope.get("to") if isinstance(envelope, dict) else None
    if isinstance(to, str):
        to = [to]
    # JSON escapes can carry what the form's bytes could not: a NUL (which PostgreSQL cannot
    # store) or a lone surrogate (which no database can encode). Made safe as the fields are.
    return [_decode(t.encode("utf-8", "replace"), None) for t in to if isinstance(t, str)][:50] \
        if isinstance(to, list) else []


def _raw_mail(raw: bytes) -> tuple[Message, str]:
    """The headers of a raw-mode `email` field and its plain text (or the HTML's text)."""
    mail = email.message_from_bytes(raw, policy=email.policy.compat32)
    text = html = None
    for part in mail.walk() if mail.is_multipart() else [mail]:
        if part.get_filename() is not None or part.is_multipart():
            continue
        kind = part.get_content_type()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if kind == "text/plain" and text is None:
            text = _decode(payload, part.get_content_charset())
        elif kind == "text/html" and html is None:
            html = _decode(payload, part.get_content_charset())
    return mail, text if text is not None else _html_text(html or "")


def _header_text(value: str) -> str:
    """A header's text with RFC 2047 encoded words decoded (raw mode keeps them encoded)."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return value


def _one_line(value: str, limit: int) -> str:
    return " ".join(value.split())[:limit]


def parse_inbound_form(body: bytes, content_type: str) -> InboundMessage:
    """Read one Inbound Parse post; raises InvalidInboundPost when it is not such a form."""
    fields, files = _fields(body, content_type)
    charsets = _charsets(fields)

    def field(name: str) -> str:
        return _decode(fields.get(name, b""), charsets.get(name))

    if "email" in fields:  # raw mode: the whole message, headers included
        try:
            mail, text = _raw_mail(fields["email"])
        except RecursionError:
            raise InvalidInboundPost("the raw message's parts are nested too deeply") from None
        headers: Message = mail
    else:
        text = field("text") or _html_text(field("html"))
        headers = email.message_from_string(field("headers"), policy=email.policy.compat32)
    def header_of(name: str) -> str:
        return _clean(_header_text(str(headers.get(name, "") or "")))

    sender = getaddresses([field("from") or header_of("From")])
    recipients = [*_envelope_recipients(field("envelope")),
                  *(address for _, address in getaddresses([field("to") or header_of("To"),
                                                            field("cc") or header_of("Cc")]))]
    message_id = _one_line(header_of("Message-ID"), 255)
    if not message_id:
        # No Message-ID: the same post resent by SendGrid has the same digest.
        message_id = "sha256:" + hashlib.sha256(body).hexdigest()
    return InboundMessage(
        from_address=_one_line(sender[0][1] if sender else "", _ADDRESS_CHARS),
        recipients=tuple(_one_line(r, _ADDRESS_CHARS) for r in recipients if r.strip())[:50],
        subject=_one_line(field("subject") or header_of("Subject"), _SUBJECT_CHARS),
        text=text,
        message_id=message_id,
        raw_size=len(body),
        attachments=files,
        spf=_one_line(field("SPF"), 40),
    )
