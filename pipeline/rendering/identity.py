"""Who a newsletter is from, as its masthead and footer say: name, organisation, postal address.

CAN-SPAM requires a valid physical postal address in every commercial message, and readers
trust mail whose sender they can identify. The sample values make outbox, emulator and demo
mail show where those lines go, and say plainly which setting fills them; a send through
SendGrid refuses to use them (`Settings.identity_problem`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SenderIdentity", "SAMPLE_ORGANIZATION", "SAMPLE_POSTAL_ADDRESS"]

SAMPLE_ORGANIZATION = "Sample Publisher (set READERFIRST_ORGANIZATION)"
SAMPLE_POSTAL_ADDRESS = "1 Sample Street, Sampletown (set READERFIRST_POSTAL_ADDRESS)"


@dataclass(frozen=True)
class SenderIdentity:
    """The newsletter's name (the masthead) and its publisher's name and postal address (the footer)."""

    newsletter_name: str = "readerfirst"
    organization: str = SAMPLE_ORGANIZATION
    postal_address: str = SAMPLE_POSTAL_ADDRESS
