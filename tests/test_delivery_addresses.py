"""Readers' addresses in their wire form: IDN domains as IDNA, unsendable ones refused with the reason."""

from __future__ import annotations

import pytest

from pipeline.delivery.addresses import UnsendableAddress, wire_address


@pytest.mark.parametrize("address, wire", [
    ("ada@example.com", "ada@example.com"),
    ("ines@bücher.example", "ines@xn--bcher-kva.example"),
    ("ines@Bücher.Example", "ines@xn--bcher-kva.example"),
    ("ana@café.example", "ana@xn--caf-dma.example"),
    ("kai@xn--bcher-kva.example", "kai@xn--bcher-kva.example"),
])
def test_ascii_and_idn_addresses_get_their_wire_form(address: str, wire: str) -> None:
    """ASCII addresses pass unchanged; an internationalised domain is written in IDNA."""
    assert wire_address(address) == wire


@pytest.mark.parametrize("address, reason", [
    ("jürgen@example.com", "non-ASCII"),
    ("ada@☃.example", "not a valid internationalised domain name"),
    ("ada lovelace@example.com", "space or a control character"),
    ("ünicode-without-at", "not an address"),
])
def test_unsendable_addresses_are_refused_with_the_reason(address: str, reason: str) -> None:
    """A non-ASCII local part, an invalid IDN, a space or a missing @ is refused, naming the address and why."""
    with pytest.raises(UnsendableAddress) as refused:
        wire_address(address)
    assert reason in refused.value.reason and repr(address) in str(refused.value)
