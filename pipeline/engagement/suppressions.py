"""A reader's "no", applied as soon as SendGrid reports it: unsubscribes, spam reports, group opt-outs.

Learning (`pipeline.engagement.learning`) applies every stored event, but only when
apply-engagement runs (every 15 minutes). A send running meanwhile re-checks each reader's status
and topic opt-outs when it claims them, so it honours a "no" only once it is in the readers'
rows. The webhook therefore applies these events in the transaction that stores them: once
SendGrid has its 2xx, the refusal is both kept and in force.

The rules are learning's own, so that applying an event twice (here, then in learning) changes
nothing the second time:
- unsubscribe and spam_report unsubscribe the reader, hard_bounce cleans them; the status moves
  only from subscribed, and reason and time are set only where none is (the first suppression
  stands). Within a batch, a reader's earliest event is applied first.
- group_unsubscribe opts the reader out of the ASM group's topic (READERFIRST_TOPIC_GROUPS),
  group_resubscribe back in, unless they made a newer choice about it (the opt-in comes along so
  that an opt-out the reader took back in the same batch is not applied alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Boolean, Connection, DateTime, Integer, String, bindparam, text

from pipeline.engagement.events import SUPPRESSING, EventType

__all__ = ["SUPPRESSED_STATUS", "GROUP_CHOICE", "READER_CHANGES", "apply_refusals"]

SUPPRESSED_STATUS = {EventType.UNSUBSCRIBE: "unsubscribed", EventType.SPAM_REPORT: "unsubscribed",
                     EventType.HARD_BOUNCE: "cleaned"}

# A group opt-out or opt-in, unless the reader made a newer choice about the topic (a later group
# event applied before, or the preference centre): SendGrid does not deliver events in order.
# An opt-in for a topic the reader has no row for records the choice too.
GROUP_CHOICE = text(
    "INSERT INTO reader_interests (reader_id, topic, opted_out, opted_at, learned_clicks, learned_exposures) "
    "VALUES (:reader, :topic, :out, :at, 0, 0) "
    "ON CONFLICT (reader_id, topic) DO UPDATE SET opted_out = excluded.opted_out, opted_at = excluded.opted_at "
    "WHERE reader_interests.opted_at IS NULL OR reader_interests.opted_at <= excluded.opted_at"
).bindparams(bindparam("out", type_=Boolean()), bindparam("at", type_=DateTime()))

# A reader's changes, made against the row as it is now, not as the writer read it: learning reads
# its readers without a lock, and a reader who unsubscribed on the web (or was suppressed by
# anything else) since then stays so. Only a writer that suppresses the reader sets the reason and
# time, and only where none is set (the first suppression stands), and the status only from
# subscribed. soft_bounces is learning's count (NULL: left as it is, the webhook's case). SQL's SET
# expressions all see the row before the update.
READER_CHANGES = text(
    "UPDATE readers SET soft_bounces = COALESCE(:soft_bounces, soft_bounces), "
    "status = CASE WHEN :suppresses AND suppressed_reason IS NULL AND status = 'subscribed' "
    "THEN :status ELSE status END, "
    "suppressed_at = CASE WHEN :suppresses AND suppressed_reason IS NULL THEN :suppressed_at ELSE suppressed_at END, "
    "suppressed_reason = CASE WHEN :suppresses AND suppressed_reason IS NULL THEN :suppressed_reason "
    "ELSE suppressed_reason END "
    "WHERE id = :b_id").bindparams(bindparam("soft_bounces", type_=Integer()), bindparam("suppresses", type_=Boolean()),
                                   bindparam("status", type_=String()), bindparam("suppressed_at", type_=DateTime()),
                                   bindparam("suppressed_reason", type_=String()))

_GROUP = (EventType.GROUP_UNSUBSCRIBE, EventType.GROUP_RESUBSCRIBE)
_KINDS = frozenset(kind.value for kind in (*SUPPRESSING, *_GROUP))


def apply_refusals(connection: Connection, rows: Sequence[Mapping], topic_groups: Mapping[str, str]) -> int:
    """Apply the refusals (and group choices) among event `rows` (engagement_events rows); returns how many.

    Only events attributed to a reader count. Locks are taken in learning's order, so that the
    webhook and a learning batch touching the same readers cannot wait for each other in a
    circle on PostgreSQL: reader_interests rows first (by reader and topic; the statement keeps
    the newest choice whatever the order), then readers rows (by reader, a reader's earliest
    event first, so that the first suppression stands). The count is of refusal events, each
    checked against the row: a retried batch counts again and changes nothing.
    """
    refusals = sorted((row for row in rows if row["event_type"] in _KINDS and row["reader_id"] is not None),
                      key=lambda row: (row["reader_id"], row["occurred_at"]))
    suppressions, choices = [], []
    for row in refusals:
        kind = EventType(row["event_type"])
        if kind in _GROUP:
            group = row["raw"].get("asm_group_id") if isinstance(row["raw"], dict) else None
            topic = topic_groups.get(str(group)) if group is not None else None
            if topic is not None:
                choices.append({"reader": row["reader_id"], "topic": topic, "out": kind is EventType.GROUP_UNSUBSCRIBE,
                                "at": row["occurred_at"]})
        else:
            suppressions.append({"b_id": row["reader_id"], "suppresses": True, "status": SUPPRESSED_STATUS[kind],
                                 "suppressed_reason": kind.value, "suppressed_at": row["occurred_at"],
                                 "soft_bounces": None})
    if choices:
        connection.execute(GROUP_CHOICE, sorted(choices, key=lambda choice: (choice["reader"], choice["topic"])))
    if suppressions:
        connection.execute(READER_CHANGES, suppressions)
    return len(suppressions) + len(choices)

