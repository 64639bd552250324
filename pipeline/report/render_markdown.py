"""The engagement report as Markdown (the CLI's `--format md` and the flow's markdown artifact)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

from pipeline.report.formats import MISSING, count, interval, percent, signed_percent
from pipeline.report.model import LEARNED_CTR_BUCKETS, Report

__all__ = ["render_markdown", "edition_rows"]


def _cell(value: object) -> str:
    # A pipe or a line break in a title would split the table row; a "<" could open an HTML tag.
    return (str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def _flagged(text: str, flag: bool) -> str:
    return f"**{text} ⚠**" if flag else text


def edition_rows(report: Report) -> list[dict[str, str]]:
    """One row per edition with its headline numbers, formatted (the flow's table artifact)."""
    return [{
        "edition": e.edition_id, "first sent": f"{e.first_sent_at:%Y-%m-%d}", "sent": count(e.sent),
        "delivered": count(e.delivered), "hard bounces": count(e.hard_bounces),
        "soft bounces": count(e.soft_bounces), "bounce rate": _flagged(percent(e.bounce_rate), e.bounce_flag),
        "human openers": count(e.human_openers), "machine openers": count(e.machine_openers),
        "clickers": count(e.clickers), "CTR": percent(e.ctr), "CTOR": percent(e.ctor),
        "unsubscribes": count(e.unsubscribes), "unsubscribe rate": percent(e.unsubscribe_rate),
        "spam reports": count(e.spam_reports), "spam rate": _flagged(percent(e.spam_rate), e.spam_flag),
        "failed (never sent)": count(e.failed),
    } for e in report.editions]


def render_markdown(report: Report) -> str:
    """`report` as a Markdown document: editions, flags, holdout lift, sections, topics, interests, method."""
    lines = [f"# Engagement report: {report.scope()}", "",
             (f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC. Spam rate is flagged above"
              f" {percent(report.spam_threshold)} (Gmail's line), bounce rate above {percent(report.bounce_threshold)}."),
             ""]
    if not report.editions:
        return "\n".join(lines + [note for note in report.notes[-1:]]) + "\n"

    rows = edition_rows(report)
    lines += ["## Editions", ""] + _table(list(rows[0]), [list(row.values()) for row in rows])
    flagged = [e for e in report.editions if e.spam_flag or e.bounce_flag]
    for e in flagged:
        problems = ([f"spam complaints {percent(e.spam_rate)} > {percent(report.spam_threshold)}"] if e.spam_flag
                    else []) + ([f"bounces {percent(e.bounce_rate)} > {percent(report.bounce_threshold)}"]
                                if e.bounce_flag else [])
        lines.append(f"- ⚠ **{e.edition_id}**: " + "; ".join(problems))
    if flagged:
        lines.append("")
    lost = [e for e in report.editions if e.unattributed_events]
    if lost:
        lines += ["Events without a known reader: " + ", ".join(f"{e.edition_id} {count(e.unattributed_events)}"
                                                                   for e in lost) + ".", ""]

    lines += ["## Personalised vs holdout", ""]
    lines += _table(["edition", "personalised delivered", "personalised clickers", "personalised CTR",
                     "holdout delivered", "holdout clickers", "holdout CTR", "lift", "95% interval",
                     "detectable lift (MDE)", "why missing"],
                    [[m.edition_id, count(m.personalised.delivered), count(m.personalised.clickers),
                      percent(m.personalised.ctr), count(m.holdout.delivered), count(m.holdout.clickers),
                      percent(m.holdout.ctr), signed_percent(m.lift), interval(m.lift_low, m.lift_high),
                      signed_percent(m.mde), m.note or ""] for m in report.lift])
    lines += [f"- **{m.edition_id}**: {m.verdict}" for m in report.lift if m.verdict] + [""]

    lines += ["## Response rate: answers to the ask and replies", ""]
    lines += _table(["edition", "arm", "sent", "asked", "answered", "replied", "responded", "response rate"],
                    [[m.edition_id, arm.arm, count(arm.sent), count(arm.asked), count(arm.answered),
                      count(arm.replied), count(arm.responded), percent(arm.response_rate)]
                     for m in report.responses for arm in (m.personalised, m.holdout)])
    lines += _table(["edition", "lift in response rate", "95% interval", "detectable lift (MDE)", "what it shows"],
                    [[m.edition_id, signed_percent(m.lift), interval(m.lift_low, m.lift_high), signed_percent(m.mde),
                      m.verdict or m.note or "the interval excludes 0: personalisation changed the response rate"] for m in report.responses])

    lines += ["## Needs served", ""]
    lines += _table(["edition", "readers with a need", "served", "share served", "clicked it", "CTR on the need"],
                    [[n.edition_id, count(n.readers_with_need), count(n.served), percent(n.share_served),
                      count(n.clicked), percent(n.ctr_on_need)] for n in report.needs_served])

    lines += ["## Trends", ""]
    trends = report.trends()
    lines += _table(["edition", "CTR", "CTOR", "unsubscribe rate"],
                    [[edition, percent(ctr), percent(ctor), percent(unsub)] for edition, ctr, ctor, unsub
                     in zip(trends["editions"], trends["ctr"], trends["ctor"], trends["unsubscribe_rate"])])

    for e in report.editions:
        lines += [f"## Edition {e.edition_id}: sections and topics", ""]
        lines += _table(["#", "section", "title", "topics", "readers exposed", "clickers", "CTR"],
                        [[s.position if s.position >= 0 else MISSING, s.section_id, s.title, ", ".join(s.topics),
                          count(s.exposed), count(s.clickers), percent(s.ctr)] for s in report.sections_of(e.edition_id)])
        lines += _table(["topic", "readers exposed", "clickers", "CTR", "click share"],
                        [[t.topic, count(t.exposed), count(t.clickers), percent(t.ctr), percent(t.click_share)]
                         for t in report.topics_of(e.edition_id)])

    lines += ["## Learned interests (current)", ""]
    bounds = ["0"] + [percent(b, 0) for b in LEARNED_CTR_BUCKETS]
    ranges = [f"{low}–{high}" for low, high in pairwise(bounds)]
    lines += _table(["topic", "readers", "declared", "opted out", "exposed", "mean learned CTR",
                     "pooled learned CTR", *ranges],
                    [[i.topic, count(i.readers), count(i.declared), count(i.opted_out), count(i.exposed),
                      percent(i.mean_learned_ctr), percent(i.pooled_learned_ctr), *map(count, i.buckets)]
                     for i in report.interests])

    lines += ["## How these numbers are counted", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"
