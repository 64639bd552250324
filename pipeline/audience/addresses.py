"""Readers' e-mail addresses: one stored form that every send accepts, a readable form for people.

An address is stored as SendGrid takes it: pure ASCII, lower-case, an internationalised
domain in its IDNA form (`anna@xn--mnchen-3ya.de`). People see and may type the Unicode form
(`anna@münchen.de`); `display_address` and `lookup_address` translate between the two.
A non-ASCII part before the @ (`jürgen@example.com`) has no ASCII form at all: it needs
SMTPUTF8, which SendGrid does not offer, so such an address is refused at import.
"""

from __future__ import annotations

import functools
import re

import idna
from email_validator import EmailNotValidError, validate_email

__all__ = ["AddressRefused", "stored_address", "validated_address", "lookup_address", "display_address"]

# What SendGrid's mail-send takes in an email field (the emulator holds the same rule): dot-atom
# local part, a dotted host name of letters, digits and dashes, a top-level label starting with
# a letter. email-validator follows the RFCs, not SendGrid; its ASCII output has matched this rule
# in every case the tests generate, and checking the final form again keeps it so whatever a
# future email-validator allows: nothing an import accepts can fail a send.
_SENDABLE = re.compile(
    r"(?!\.)(?!.*\.\.)[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}(?<!\.)"
    r"@(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?\Z"
)


class AddressRefused(ValueError):
    """An address readerfirst cannot store, with the reason in words a person can act on."""


def stored_address(raw: str) -> str:
    """The form to store for `raw` (ASCII, lower-case, IDNA domain); raises AddressRefused."""
    text = raw.strip()
    plain = text.lower()
    if text.isascii() and len(plain) <= 254 and _SENDABLE.match(plain):
        # Already in the stored form but for case: the local part is a dot-atom email-validator
        # takes as it is, so only the domain needs its judgement, once per domain. An import of
        # a million readers has a few thousand domains; validating every address in full cost
        # more than the rest of the import together.
        refusal = _domain_refusal(plain.rpartition("@")[2])
        if refusal is not None:
            raise AddressRefused(refusal)
        return plain
    return validated_address(text)


@functools.lru_cache(maxsize=65_536)
def _domain_refusal(domain: str) -> str | None:
    """Why email-validator refuses an address at `domain` (an ASCII host name), or None."""
    try:
        validate_email(f"reader@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def validated_address(text: str) -> str:
    """`stored_address` by email-validator's full check of the address (the path for any unusual address)."""
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressRefused(str(exc)) from None
    if checked.ascii_email is None:
        raise AddressRefused("the part before the @ has non-ASCII characters, which SendGrid does not accept;"
                             " ask the reader for an address in plain ASCII before the @")
    address = checked.ascii_email.lower()
    if len(address) > 254 or not _SENDABLE.match(address):
        raise AddressRefused("not an address SendGrid accepts (letters, digits and !#$%&'*+/=?^_`{|}~.- before"
                             " the @; a dotted host name whose last label starts with a letter)")
    return address


def lookup_address(typed: str) -> str:
    """The stored form of an address a person typed, in whichever form, to find its reader.

    Never raises: an address that cannot be stored cannot be found either, and the lookup
    then reports the reader unknown with the address as typed.
    """
    try:
        return stored_address(typed)
    except AddressRefused:
        return typed.strip().lower()


def display_address(stored: str) -> str:
    """`stored` with its domain in Unicode (`anna@münchen.de`), for a person to read."""
    local, at, domain = stored.rpartition("@")
    if not at or "xn--" not in domain:
        return stored
    try:
        return f"{local}@{idna.decode(domain)}"
    except (idna.IDNAError, UnicodeError):
        return stored  # not a valid A-label: show it as stored rather than guess
