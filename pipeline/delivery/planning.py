"""Planning a send: choose each reader's sections and record them in the ledger.

Production and the evaluation harness share this one path: `plan_readers` takes the policy
('thompson' by default, 'editorial', or 'rule' for the first scoring rule), its seed and
exploration share, and the holdout share, each defaulting to its environment variable:

    READERFIRST_POLICY          thompson | editorial | rule   (default thompson)
    READERFIRST_POLICY_SEED     whole number                  (default 0)
    READERFIRST_EXPLORATION     share of non-pinned places for never-shown topics (default 0.1)
    READERFIRST_HOLDOUT_SHARE   share of readers who get the editor's selection  (default 0.1)

Holdout readers (`pipeline.content.holdout`) get the editorial selection whatever the policy,
and are marked in the ledger, from where the send tags their messages.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.audience.directory import load_profiles, population_prior
from pipeline.audience.profile import Profile, TopicSignal
from pipeline.content.arrangement import arrange_copy
from pipeline.content.ask import add_ask, selectable
from pipeline.content.edition import Edition
from pipeline.content.holdout import DEFAULT_HOLDOUT_SHARE, check_share, in_holdout
from pipeline.content.policy import (
    DEFAULT_EXPLORATION,
    EDITORIAL,
    POLICIES,
    THOMPSON,
    PolicySettings,
    choose_sections,
)
from pipeline.content.selection import Selection
from pipeline.delivery.ledger import PlannedEntry, SendLedger
from pipeline.delivery.preparation import PreparedEdition
from pipeline.errors import ConfigurationError
from pipeline.store.database import Database

__all__ = [
    "ENV_EXPLORATION",
    "ENV_HOLDOUT_SHARE",
    "ENV_POLICY",
    "ENV_SEED",
    "PlanReport",
    "PlanSettings",
    "choose_for_reader",
    "plan_readers",
    "plan_settings",
    "send_population",
]

ENV_POLICY = "READERFIRST_POLICY"
ENV_SEED = "READERFIRST_POLICY_SEED"
ENV_EXPLORATION = "READERFIRST_EXPLORATION"
ENV_HOLDOUT_SHARE = "READERFIRST_HOLDOUT_SHARE"


@dataclass
class PlanReport:
    """What planning a chunk of readers found."""

    readers: int = 0
    variants: Counter = field(default_factory=Counter)
    sections: Counter = field(default_factory=Counter)
    holdout: int = 0  # readers of the chunk in the holdout (they got the editorial selection)

    def add(self, other: PlanReport) -> None:
        """Fold another chunk's report into this one."""
        self.readers += other.readers
        self.variants.update(other.variants)
        self.sections.update(other.sections)
        self.holdout += other.holdout


@dataclass(frozen=True)
class PlanSettings:
    """How a send chooses sections: the policy, its seed and exploration share, and the holdout share."""

    policy: str = THOMPSON
    seed: int = 0
    exploration: float = DEFAULT_EXPLORATION
    holdout_share: float = DEFAULT_HOLDOUT_SHARE

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigurationError(f"policy={self.policy!r}: use one of {', '.join(POLICIES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigurationError(f"seed={self.seed!r}: must be a whole number")
        check_share(self.exploration, "exploration")
        check_share(self.holdout_share, "holdout_share")


def _from_env(environ: Mapping[str, str], name: str, parse: type) -> object | None:
    """The variable's value parsed and checked, None when unset; a wrong value names the variable."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ConfigurationError(f"{name}={raw!r}: must be {kind}") from None
    if parse is float:
        check_share(value, name)
    elif parse is str and value not in POLICIES:
        raise ConfigurationError(f"{name}={raw!r}: use one of {', '.join(POLICIES)}")
    return value


def plan_settings(*, policy: str | None = None, seed: int | None = None, exploration: float | None = None,
                  holdout_share: float | None = None, environ: Mapping[str, str] | None = None) -> PlanSettings:
    """Settings from the arguments given, then the environment variables, then the defaults."""
    env = os.environ if environ is None else environ
    values = {"policy": policy if policy is not None else _from_env(env, ENV_POLICY, str),
              "seed": seed if seed is not None else _from_env(env, ENV_SEED, int),
              "exploration": exploration if exploration is not None else _from_env(env, ENV_EXPLORATION, float),
              "holdout_share": holdout_share if holdout_share is not None else _from_env(env, ENV_HOLDOUT_SHARE, float)}
    return PlanSettings(**{k: v for k, v in values.items() if v is not None})


# Per database engine: (audience, edition) -> population prior. One aggregate over every
# reader's interests costs about half a second at 100k readers, and the flow plans a send in
# many chunks: computing it once per send keeps that off every chunk, and gives every chunk
# (and a resumed send in the same process) the same prior.
_POPULATIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_POPULATIONS_LOCK = threading.Lock()


def send_population(db: Database, audience_id: int, edition_id: str) -> dict[str, TopicSignal]:
    """The audience's per-topic clicks and exposures, computed once per (edition, audience) in this process."""
    with _POPULATIONS_LOCK:  # the flow's first chunks start together: one of them computes it
        per_engine = _POPULATIONS.setdefault(db.engine, {})
        key = (audience_id, edition_id)
        found = per_engine.get(key)
        if found is None:
            found = per_engine[key] = population_prior(db, audience_id)
            if len(per_engine) > 16:
                per_engine.pop(next(iter(per_engine)))  # oldest send first: dicts keep insertion order
        return found


def choose_for_reader(edition: Edition, profile: Profile, *, today: dt.date, settings: PlanSettings,
                      population: Mapping[str, TopicSignal] | None = None) -> tuple[Selection, bool]:
    """The reader's selection and whether they are in the holdout (who get the editorial one).

    The edition's ask, if it has one, is never chosen by the policy: it is added last for a
    reader due to be asked, in either arm (pipeline/content/ask.py).
    """
    holdout = in_holdout(profile, settings.holdout_share)
    policy = PolicySettings(name=EDITORIAL if holdout else settings.policy, exploration=settings.exploration)
    chosen = choose_sections(selectable(edition), profile, today=today, seed=settings.seed, policy_settings=policy,
                             population=population)
    # Every copy, holdout included, follows the editor's layout rules (pipeline.content.arrangement);
    # the ask, when due, comes after them, last.
    return add_ask(arrange_copy(edition, chosen, profile), edition, profile, today), holdout


def plan_readers(prepared: PreparedEdition, ledger: SendLedger, audience_id: int, reader_ids: Sequence[int],
                 *, today: dt.date, record: bool = True, policy: str | None = None, seed: int | None = None,
                 exploration: float | None = None, holdout_share: float | None = None,
                 population: Mapping[str, TopicSignal] | None = None) -> PlanReport:
    """Select sections for `reader_ids` and, unless `record` is false (dry run), store the plan.

    `policy`, `seed`, `exploration` and `holdout_share` default to their environment variables
    (see the module docstring). `population` defaults to the audience's, computed once per send.
    """
    settings = plan_settings(policy=policy, seed=seed, exploration=exploration, holdout_share=holdout_share)
    if population is None and settings.policy == THOMPSON:
        population = send_population(ledger.db, audience_id, ledger.edition_id)
    edition = prepared.edition
    report = PlanReport()
    entries = []
    for profile in load_profiles(ledger.db, reader_ids):
        selection, holdout = choose_for_reader(edition, profile, today=today, settings=settings, population=population)
        variant_id = selection.variant_id
        if record:
            entries.append(PlannedEntry(profile.reader_id, variant_id,
                                        [[p.section_id, p.reason] for p in selection.picks], holdout))
        else:
            prepared.layout.variant(selection.section_ids)  # a dry run still renders every variant
        report.readers += 1
        report.holdout += holdout
        report.variants[variant_id] += 1
        report.sections.update(selection.section_ids)
    if record:
        ledger.record_plan(audience_id, entries)
    return report
