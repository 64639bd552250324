"""The evaluation's figures: needs served, and the lift interval bootstrapped over readers and editions."""

from __future__ import annotations

import random

from pipeline.simulation.measures import ReaderOutcome, lift_over_editions, measure_edition


def outcomes(lift: float, readers: int = 300, seed: int = 0) -> list[ReaderOutcome]:
    """One edition's readers: editorial clicks around 0.1, personalised (1 + lift) times that, with reader noise."""
    rng = random.Random(seed)
    rows = []
    for reader in range(readers):
        editorial = rng.uniform(0.05, 0.15)
        rows.append(ReaderOutcome(editorial * (1 + lift) * rng.uniform(0.9, 1.1), editorial, 0.3, 0.0, 0.0,
                                  reader_id=reader))
    return rows


def test_editions_that_swing_widen_the_interval_beyond_the_readers_alone():
    """Editions whose lift swings from -0.2 to +0.6 give a far wider interval than eight alike editions of the same mean."""
    alike = [outcomes(0.2, seed=n) for n in range(8)]
    swinging = [outcomes(lift, seed=n) for n, lift in enumerate([-0.2, 0.6, -0.2, 0.6, -0.2, 0.6, -0.2, 0.6])]
    lift, low, high = lift_over_editions(alike)
    assert low < lift < high and high - low < 0.05
    wide = lift_over_editions(swinging)
    assert wide[1] < wide[0] < wide[2]
    assert wide[2] - wide[1] > 4 * (high - low)


def test_the_bootstrap_is_repeatable_for_a_seed():
    """The same outcomes and seed give the same interval."""
    editions = [outcomes(0.1, seed=n) for n in range(3)]
    assert lift_over_editions(editions, seed=4) == lift_over_editions(editions, seed=4)


def test_needs_served_counts_only_readers_with_a_need_the_edition_could_serve():
    """The share served and the clicks on the need are over needy readers only; without any, there is no figure."""
    base = dict(personalised=0.2, editorial=0.1, oracle=0.3, unsubscribe_personalised=0.0, unsubscribe_editorial=0.0)
    rows = [ReaderOutcome(**base, reader_id=1, need=True, need_served=True, need_clicks=0.4),
            ReaderOutcome(**base, reader_id=2, need=True, need_served=False),
            ReaderOutcome(**base, reader_id=3)]
    assert measure_edition(1, "e1", rows, {}).needs == {"readers": 2, "served": 0.5, "ctr_on_need": 0.2}
    assert measure_edition(1, "e1", rows[2:], {}).needs is None
