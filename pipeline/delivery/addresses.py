"""Readers' addresses as they go on the wire: IDN domains in IDNA (punycode), the rest refused per reader.

SendGrid, like SMTP without SMTPUTF8, takes only ASCII addresses: an internationalised domain
must travel as its IDNA form (`user@xn--bcher-kva.example`), and a non-ASCII local part cannot
travel at all. Addresses already in a database from before the import refused them must still
never stop a send: each becomes one reader's refusal, with the reason, and the others go out.
"""

from __future__ import annotations

import idna

from pipeline.errors import PipelineError

__all__ = ["UnsendableAddress", "wire_address"]

_MAX_ADDRESS = 254  # RFC 5321's path limit, less the angle brackets


class UnsendableAddress(PipelineError, ValueError):
    """An address no provider can send to as it is; the message names the address and why."""

    def __init__(self, address: str, reason: str):
        self.address = address
        self.reason = reason
        shown = address if len(address) <= 80 else address[:77] + "..."
        super().__init__(f"email={shown!r}: {reason}")

    def __reduce__(self):
        return type(self), (self.address, self.reason)  # pickled (from a Dask worker) by its arguments


def wire_address(address: str) -> str:
    """`address` in the ASCII form a mail provider accepts; raises UnsendableAddress when it has none."""
    if address.isascii():
        if any(ord(c) < 33 or ord(c) == 127 for c in address):
            raise UnsendableAddress(address, "the address contains a space or a control character")
        return address  # the usual case; whether it is well formed is the provider's verdict
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise UnsendableAddress(address, "not an address (no local part and domain around one @)")
    if not local.isascii():
        raise UnsendableAddress(address, "the local part (before @) has non-ASCII characters: such an address"
                                         " needs SMTPUTF8, which neither transport can send")
    if any(ord(c) < 33 or ord(c) == 127 for c in address):
        raise UnsendableAddress(address, "the address contains a space or a control character")
    try:
        encoded = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as error:
        raise UnsendableAddress(address, f"the domain is not a valid internationalised domain name ({error})") from None
    wire = f"{local}@{encoded}"
    if len(wire) > _MAX_ADDRESS:
        raise UnsendableAddress(address, f"its IDNA form is {len(wire)} characters long; at most {_MAX_ADDRESS} can be sent")
    return wire
