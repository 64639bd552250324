"""Where readers' learned interests stand: per topic, from reader_interests, in one grouped query.

reader_interests keeps only the current (time-decayed) counts, no history, so this is a
snapshot; the report pairs it with each edition's click share per topic to show movement.
A reader's learned CTR is min(1, clicks / exposures): decay can leave a late click weighing a
little more than the delivery it followed (see pipeline/engagement/learning.py).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from pipeline.report.model import LEARNED_CTR_BUCKETS, InterestMetrics

__all__ = ["learned_interests"]

_LEARNED_CTR = ("(CASE WHEN learned_clicks >= learned_exposures THEN 1.0"
                " ELSE learned_clicks / learned_exposures END)")


def _bucket_sql() -> str:
    sums, low = [], None
    for high in LEARNED_CTR_BUCKETS:
        upper = f"{_LEARNED_CTR} <= {high}" if high >= 1.0 else f"{_LEARNED_CTR} < {high}"
        lower = f" AND {_LEARNED_CTR} >= {low}" if low is not None else ""
        sums.append(f"SUM(CASE WHEN learned_exposures > 0 AND {upper}{lower} THEN 1 ELSE 0 END)")
        low = high
    return ", ".join(sums)


_INTERESTS = text(f"""
SELECT topic, COUNT(*),
       SUM(CASE WHEN declared_weight > 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN opted_out THEN 1 ELSE 0 END),
       SUM(CASE WHEN learned_exposures > 0 THEN 1 ELSE 0 END),
       AVG(CASE WHEN learned_exposures > 0 THEN {_LEARNED_CTR} END),
       SUM(learned_clicks), SUM(learned_exposures),
       {_bucket_sql()}
FROM reader_interests GROUP BY topic ORDER BY topic
""")


def learned_interests(connection: Connection) -> list[InterestMetrics]:
    """Per topic: readers, declared, opted out, exposed, mean and pooled learned CTR, and its distribution."""
    found = []
    for topic, readers, declared, opted_out, exposed, mean, clicks, exposures, *buckets in connection.execute(
            _INTERESTS):
        exposures = float(exposures or 0.0)
        found.append(InterestMetrics(
            topic=topic, readers=int(readers), declared=int(declared or 0), opted_out=int(opted_out or 0),
            exposed=int(exposed or 0), mean_learned_ctr=float(mean) if mean is not None else None,
            pooled_learned_ctr=min(1.0, float(clicks or 0.0) / exposures) if exposures > 0 else None,
            buckets=[int(b or 0) for b in buckets]))
    return found
