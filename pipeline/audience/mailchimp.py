"""Mailchimp audience exports: which columns are ours, and which status the people in a file have.

Mailchimp exports an audience as one CSV per status, `subscribed_members_export_<id>.csv`,
`unsubscribed_…` (with UNSUB_TIME, UNSUB_CAMPAIGN_TITLE, UNSUB_CAMPAIGN_ID, UNSUB_REASON,
UNSUB_REASON_OTHER), `cleaned_…` (CLEAN_TIME, CLEAN_CAMPAIGN_TITLE, CLEAN_CAMPAIGN_ID) and
`nonsubscribed_…`. No row says its status: the file does, by its columns and its name. Reading
every file as `subscribed` would mail people who left, so a file whose status cannot be told
for certain is refused, and the user states it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MAILCHIMP_COLUMNS", "NONSUBSCRIBED", "StatusUnclear", "is_mailchimp_export", "export_status"]

# Mailchimp's headers (compared case-insensitively) that mean one of our columns; the rest are ignored.
MAILCHIMP_COLUMNS = {
    "email address": "email",
    "first name": "first_name",
    "last name": "last_name",
    "tags": "tags",
    "timezone": "timezone",
}
# Mailchimp's "non-subscribed" contacts (a purchase, a form without opt-in) never agreed to
# the newsletter: they are kept, with this status, and never sent to.
NONSUBSCRIBED = "nonsubscribed"

_FILE_NAME = re.compile(r"(subscribed|unsubscribed|cleaned|nonsubscribed)_members_export", re.IGNORECASE)
_COLUMN_PREFIXES = (("unsub_", "unsubscribed"), ("clean_", "cleaned"))


class StatusUnclear(ValueError):
    """The status of a Mailchimp export's people cannot be told for certain; says how to state it."""


def is_mailchimp_export(headers: Sequence[str | None]) -> bool:
    """True when a CSV header row is Mailchimp's (it has 'Email Address')."""
    return any(h and h.strip().lower() == "email address" for h in headers)


def _status_of_columns(headers: Sequence[str | None]) -> str | None:
    found = {status for h in headers if h for prefix, status in _COLUMN_PREFIXES
             if h.strip().lower().startswith(prefix)}
    if len(found) > 1:
        raise StatusUnclear("the file has both UNSUB_* and CLEAN_* columns, so its people's status is unclear;"
                            " import Mailchimp's unsubscribed and cleaned export files one at a time")
    return found.pop() if found else None


def _status_of_name(path: Path) -> str | None:
    match = _FILE_NAME.match(path.name)
    return match.group(1).lower() if match else None


def export_status(path: Path, headers: Sequence[str | None], stated: str | None) -> str:
    """The status of every person in the Mailchimp export `path`; raises StatusUnclear.

    The UNSUB_*/CLEAN_* columns are what Mailchimp wrote and always win; the file name (which
    a person may have changed) and the status the user states must agree with them. Without
    such columns a subscribed and a non-subscribed export look alike, so the name or the user
    must say which.
    """
    by_columns = _status_of_columns(headers)
    by_name = _status_of_name(path)
    if by_columns:
        if stated and stated != by_columns:
            raise StatusUnclear(f"--status {stated} contradicts the file's columns, which Mailchimp writes"
                                f" for {by_columns} members; these people are {by_columns}")
        if not stated and by_name and by_name != by_columns:
            raise StatusUnclear(f"the file name says {by_name} but the columns say {by_columns};"
                                f" check the file, then pass --status {by_columns}")
        return by_columns
    if stated:
        if stated == "subscribed" and by_name and by_name != "subscribed":
            raise StatusUnclear(f"--status subscribed contradicts the file name, which says {by_name}")
        return stated
    if by_name:
        return by_name
    raise StatusUnclear("cannot tell whether this Mailchimp export holds subscribed or non-subscribed people"
                        " (neither its columns nor its name say); pass --status subscribed (or nonsubscribed,"
                        " unsubscribed, cleaned), or keep Mailchimp's file name")
