"""Readers' addresses in the form SendGrid takes: IDNA domains; non-ASCII local parts suppressed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 02:00:00

Before 0008 the importer stored an internationalised domain in Unicode (`anna@münchen.de`),
which made the send fail, and accepted addresses with a non-ASCII part before the @
(`jürgen@example.com`), which SendGrid refuses. The importer now stores the IDNA form and
refuses the others; this migration brings the readers already stored to the same rule:

- A Unicode domain is converted to its IDNA form (`anna@xn--mnchen-3ya.de`), lower-case.
- An address with no ASCII form (a non-ASCII local part, or a domain IDNA refuses) cannot
  be converted: the reader is suppressed (`suppressed_reason = 'address-not-ascii'`), so no
  send includes them; the row and its history stay, and importing a new address for that
  person creates a new reader.
- Collision: the IDNA form may already belong to another reader of the same audience (the
  same mailbox imported once in each form). Then the reader already holding the ASCII form
  stays the reader; the Unicode row keeps its address (the unique index forbids two) and is
  suppressed as `duplicate-address`. The person's stricter choice wins: if the Unicode row was
  unsubscribed or cleaned, the kept row takes that status (unless it already left too), and
  if it was suppressed, the kept row is suppressed with the same reason. The two rows are not
  merged because each has its own ledger entries, events and learned interests, referenced
  by id from several tables: a merge would rewrite that history for a rare case and could not
  be undone, while keeping both loses nothing and mails the mailbox once. The ASCII row is
  the one kept because it is the one sends could reach, so its history is the real one.

Downgrade leaves the addresses as they are: converting back would bring back failing sends.
"""

from __future__ import annotations

import datetime as dt

import idna
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPTED_OUT = ("unsubscribed", "cleaned")

readers = sa.table(
    "readers",
    sa.column("id", sa.Integer),
    sa.column("audience_id", sa.Integer),
    sa.column("email", sa.String),
    sa.column("status", sa.String),
    sa.column("suppressed_reason", sa.String),
    sa.column("suppressed_at", sa.DateTime),
)


def ascii_form(email: str) -> str | None:
    """The address SendGrid takes for `email`, or None when there is none (a non-ASCII local part)."""
    local, at, domain = email.rpartition("@")
    if not at or not local.isascii():
        return None
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    return f"{local}@{domain}".lower()


def upgrade() -> None:
    connection = op.get_bind()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    # The whole table is scanned once, streamed; only the (few) non-ASCII rows are kept in memory.
    result = connection.execute(sa.select(readers.c.id, readers.c.audience_id, readers.c.email, readers.c.status,
                                          readers.c.suppressed_reason).order_by(readers.c.id)
                                .execution_options(yield_per=5000))
    unicode_rows = [tuple(row) for row in result if not row.email.isascii()]

    def suppress(reader_id: int, reason: str) -> None:
        connection.execute(readers.update().where(readers.c.id == reader_id, readers.c.suppressed_reason.is_(None))
                           .values(suppressed_reason=reason, suppressed_at=now))

    for reader_id, audience_id, email, status, suppressed in unicode_rows:
        target = ascii_form(email)
        if target is None:
            suppress(reader_id, "address-not-ascii")
            continue
        holder = connection.execute(sa.select(readers.c.id, readers.c.status, readers.c.suppressed_reason)
                                    .where(readers.c.audience_id == audience_id, readers.c.email == target)).first()
        if holder is None:
            connection.execute(readers.update().where(readers.c.id == reader_id).values(email=target))
            continue
        if status in _OPTED_OUT and holder.status not in _OPTED_OUT:
            connection.execute(readers.update().where(readers.c.id == holder.id).values(status=status))
        if suppressed is not None:
            suppress(holder.id, suppressed)
        suppress(reader_id, "duplicate-address")


def downgrade() -> None:
    pass
