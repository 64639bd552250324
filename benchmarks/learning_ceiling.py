"""Learning ceiling: how close an informed Bayesian reference learner gets to the oracle.

The evaluation's goals (0.85 x oracle and 1.5 x editorial CTR after 8 editions, back within
10% of the oracle 3 editions after a drift) ask a learner to find out, from a handful of
clicks, what a reader who declared nothing likes. This benchmark measures how far a learner
that knows much more than production can get on the very same simulated readers:

- it knows the reader model file exactly: the Dirichlet prior of the hidden preferences
  (alpha_t = concentration x number of topics x popularity share of t), how declarations are
  made, click_rate, position_decay, open_rate and the drift (share and edition), but never a
  reader's hidden preferences;
- it sees every reader's true reading (`Response.opened`, also for Apple MPP readers whose
  reading the provider cannot see) and every click of every newsletter it sent;
- it keeps a Bayesian posterior over each reader's preference vector: importance weights over
  particles drawn from the model's prior, conditioned on the reader's declared interests (the
  audience file's `interests`: the reader's top-n topics with their rounded weights) and
  multiplied, for every newsletter the reader read, by the product over its sections of q or
  1 - q, q = click_rate x affinity x position_decay ** position (unread newsletters say
  nothing). With drift it keeps the exact mixture: after the drift a reader either kept their
  preferences or has a fresh, independent prior draw (their declaration still describes the
  old one);
- made stronger (never weaker) for issue 14's reader models: with wrong declarations it keeps
  the mixture "this reader's declaration is right" (the declared pool) or "wrong" (the prior),
  weighed by `declared.wrong_share` and the evidence; a reader's active need (the audience
  file's `needs` and `needs_until`, as production reads them) scores its topic at
  `needs.strength`, and clicks on it while the need lasts are not taken as taste;
- it chooses each newsletter greedily on posterior expected clicks, as the oracle does on the
  truth: pinned sections first, then the candidates by posterior mean affinity (ties in
  editorial order), at most max_per_topic per topic, k in all, the rest in editorial order.

Readers, editions and measurement are the evaluation's own: `write_audience` and
`write_edition` with the same seed, `SimulatedAudience.respond` for what the reader did with
the learner's newsletter, and `SimulatedAudience.expect` for the expected clicks of the
learner's, the editorial and the oracle's newsletter, averaged over every reader (no holdout,
and readers who unsubscribe stay in, as they cost nothing here).

A reference, not a proven upper bound: the choice is greedy (it never explores for the sake
of later editions) and the posterior is estimated with finite particles (the effective sample
size is printed; readers below 50 are counted).

Run: `python benchmarks/learning_ceiling.py` (the four shipped models and an unseen one,
seeds 1 and 2, 5,000 readers, 8 editions); `--models audiences/reader-models/focused.yaml
--seeds 1 --readers 1000`; `--policy` also runs the production evaluation for comparison;
`--json` prints every figure as JSON. Needs numpy (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.content.edition import Edition, load_edition  # noqa: E402
from pipeline.content.policy import editorial_sections  # noqa: E402
from pipeline.simulation.evaluate import START  # noqa: E402
from pipeline.simulation.inputs import write_audience, write_edition  # noqa: E402
from pipeline.simulation.models import ReaderModel, load_reader_model  # noqa: E402
from pipeline.simulation.readers import Candidate, ShownSection, SimulatedAudience, fill_newsletter  # noqa: E402

MODELS = ROOT / "audiences" / "reader-models"
SHIPPED = ("focused.yaml", "broad.yaml", "drifting.yaml", "niche-topics.yaml")
ESS_WARN = 50  # readers whose posterior rests on fewer effective particles are counted
ROW_CHUNK = 512  # readers per numpy block
LEVELS = ("weights", "ranked", "set")  # how much of a declaration a pool is conditioned on

# A model that is not shipped (tests/test_simulation_evaluate.py runs it too): its own taxonomy,
# nobody declares anything, half the readers drift at edition 3, k=4 and m=1.
UNSEEN_MODEL = ROOT / "tests" / "fixtures" / "reader-models" / "unseen.yaml"


# --- the prior: a bank of particles -----------------------------------------------------------

def prior_alphas(model: ReaderModel) -> np.ndarray:
    """Dirichlet parameters of the hidden preferences, in the model's topic order (as readers.py)."""
    count = len(model.topics)
    return np.array([model.concentration * count * share for share in model.topics.values()])


def draw_affinities(alphas: np.ndarray, size: int, rng: np.random.Generator, chunk: int = 250_000) -> np.ndarray:
    """`size` prior draws, each as affinities p_t / max(p) (float32, size x topics)."""
    out = np.empty((size, len(alphas)), dtype=np.float32)
    for start in range(0, size, chunk):
        stop = min(size, start + chunk)
        gammas = rng.gamma(alphas, 1.0, size=(stop - start, len(alphas)))
        top = gammas.max(axis=1)
        empty = top <= 0.0  # every draw underflowed: all weight on one topic, as readers.py does
        if empty.any():
            gammas[empty] = 0.0
            gammas[empty, rng.integers(len(alphas), size=int(empty.sum()))] = 1.0
            top = gammas.max(axis=1)
        out[start:stop] = gammas / top[:, None]
    return out


# --- declarations ------------------------------------------------------------------------------

def parse_interests(text: str, index: dict[str, int]) -> tuple[tuple[int, int], ...]:
    """`climate:1;ai:0.6` as ((topic index, weight in fifths), ...) in the file's (ranked) order."""
    parts = []
    for item in filter(None, (p.strip() for p in (text or "").split(";"))):
        topic, _, weight = item.partition(":")
        parts.append((index[topic.strip()], int(round(float(weight or 1) * 5))))
    return tuple(parts)


def level_key(declared: tuple[tuple[int, int], ...], level: str) -> tuple:
    """What a pool conditioned at `level` must match: ranked topics and weights, ranked topics, or the set."""
    if level == "weights":
        return tuple(x for pair in declared for x in pair)
    if level == "ranked":
        return tuple(t for t, _ in declared)
    return tuple(sorted(t for t, _ in declared))


def bank_keys(bank: np.ndarray, n: int, level: str) -> np.ndarray:
    """Each particle's declaration at `level` if it declared its top `n` topics (rows of ints)."""
    ranked = np.argsort(-bank, axis=1, kind="stable")[:, :n]
    if level == "ranked":
        return ranked
    if level == "set":
        return np.sort(ranked, axis=1)
    weights = np.take_along_axis(bank, ranked, axis=1)  # affinities are already p_t / max(p)
    fifths = np.maximum(1, np.round(weights * 5)).astype(np.int64)
    return np.stack([ranked, fifths], axis=2).reshape(len(bank), 2 * n)


def matching_rows(keys: np.ndarray, wanted: set[tuple], cap: int) -> dict[tuple, np.ndarray]:
    """For each wanted key, the first `cap` bank rows whose key equals it."""
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    lookup = {tuple(int(x) for x in row): i for i, row in enumerate(unique)}
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
    found = {}
    for key in wanted:
        i = lookup.get(key)
        rows = order[bounds[i]:bounds[i + 1]][:cap] if i is not None else np.empty(0, dtype=np.int64)
        found[key] = rows
    return found


@dataclass
class Pool:
    """Particles (rows of the bank) a group of readers shares, and what they were conditioned on."""

    rows: np.ndarray
    level: str  # "prior" for readers who declared nothing


def declaration_pools(bank: np.ndarray, declarations: Sequence[tuple], size: int,
                      minimum: int) -> dict[tuple, Pool]:
    """A pool per distinct declaration: the prior conditioned on it, as exactly as the bank allows.

    The bank is a sample of the prior, so its rows whose top-n topics (and rounded weights)
    equal a declaration are a sample of the prior conditioned on that declaration. A
    declaration matched by fewer than `minimum` rows falls back to the ranked topics without
    their weights, then to the set of topics: a coarser condition, still an exact posterior
    of less information.
    """
    pools: dict[tuple, Pool] = {(): Pool(np.arange(size), "prior")}
    pending = {d for d in declarations if d}
    for level in LEVELS:
        by_size: dict[int, set[tuple]] = {}
        for d in pending:
            by_size.setdefault(len(d), set()).add(d)
        for n, group in by_size.items():
            wanted = {level_key(d, level) for d in group}
            found = matching_rows(bank_keys(bank, n, level), wanted, size)
            for d in group:
                rows = found[level_key(d, level)]
                if len(rows) >= minimum or level == LEVELS[-1]:
                    pools[d] = Pool(rows, level)
        pending = {d for d in pending if d not in pools}
    return pools


# --- posterior over a block of readers ---------------------------------------------------------

@dataclass
class Block:
    """Readers sharing a pool: their log-weights over its particles (float32, readers x particles)."""

    pool: Pool
    readers: np.ndarray  # indices into the audience
    logw: np.ndarray

    @classmethod
    def start(cls, pool: Pool, readers: np.ndarray) -> Block:
        return cls(pool, readers, np.zeros((len(readers), len(pool.rows)), dtype=np.float32))


def section_affinities(affinities: np.ndarray, kinds: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Particles x section kinds: the best affinity among each kind's topics (0 without topics)."""
    columns = [affinities[:, list(k)].max(axis=1) if k else np.zeros(len(affinities), np.float32) for k in kinds]
    return np.stack(columns, axis=1).astype(np.float64)


def chunks(count: int) -> Iterator[slice]:
    for start in range(0, count, ROW_CHUNK):
        yield slice(start, min(count, start + ROW_CHUNK))


def summarise(logw: np.ndarray, affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per reader: posterior mean affinity of each kind, log mean likelihood (evidence), sum of squared weights."""
    means = np.empty((len(logw), affinity.shape[1]))
    evidence = np.empty(len(logw))
    squares = np.empty(len(logw))
    for part in chunks(len(logw)):
        block = logw[part].astype(np.float64)
        top = block.max(axis=1, keepdims=True)
        # No particle explains what this reader did (possible only with click chances of exactly 0
        # or 1): keep the pool's plain average, with no evidence and an effective sample size of 1.
        dead = ~np.isfinite(top[:, 0])
        block[dead], top[dead] = 0.0, 0.0
        weights = np.exp(block - top)
        total = weights.sum(axis=1, keepdims=True)
        weights /= total
        means[part] = weights @ affinity
        evidence[part] = np.where(dead, -np.inf, top[:, 0] + np.log(total[:, 0] / block.shape[1]))
        squares[part] = np.where(dead, 1.0, np.einsum("ij,ij->i", weights, weights))
    return means, evidence, squares


def click_loglik(affinity: np.ndarray, shown: np.ndarray, clicked: np.ndarray, click_rate: float,
                 decay: float) -> np.ndarray:
    """Readers x particles: log P(these clicks | read, particle) for each reader's shown kinds."""
    out = np.zeros((len(shown), affinity.shape[0]))
    by_kind = affinity.T  # kinds x particles
    with np.errstate(divide="ignore"):
        for position in range(shown.shape[1]):
            q = np.minimum(1.0, click_rate * decay ** position * by_kind[shown[:, position]])
            out += np.where(clicked[:, position, None], np.log(q), np.log1p(-q))
    return out


def condition(block: Block, affinity: np.ndarray, local: np.ndarray, shown: np.ndarray, clicked: np.ndarray,
              model: ReaderModel) -> None:
    """Multiply in the likelihood of what the block's readers at rows `local` did with what they read."""
    engagement = model.engagement
    for part in chunks(len(local)):
        rows = local[part]
        block.logw[rows] += click_loglik(affinity, shown[part], clicked[part], engagement.click_rate,
                                         engagement.position_decay).astype(np.float32)


# --- the reference learner ---------------------------------------------------------------------

@dataclass
class Learner:
    """The informed reference learner's posteriors for every reader of one run."""

    model: ReaderModel
    bank: np.ndarray
    blocks: list[Block]
    prior: Pool  # the undeclared pool, also the fresh draw of a drifted reader
    fresh: Block | None = None  # after a drift: every reader's posterior of a fresh draw
    stale_evidence: np.ndarray | None = None  # log evidence of the pre-drift clicks, frozen at the drift
    misled: Block | None = None  # with wrong declarations: declared readers' posterior if theirs was wrong
    conditioning: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, model: ReaderModel, declarations: Sequence[tuple], *, particles: int, bank_size: int,
               minimum: int, rng: np.random.Generator) -> Learner:
        bank = draw_affinities(prior_alphas(model), max(bank_size, particles), rng)
        pools = declaration_pools(bank, declarations, particles, minimum)
        members: dict[tuple, list[int]] = {}
        for i, d in enumerate(declarations):
            members.setdefault(d, []).append(i)
        blocks = [Block.start(pools[d], np.array(rows)) for d, rows in members.items()]
        conditioning: dict[str, int] = {}
        for d, rows in members.items():
            conditioning[pools[d].level] = conditioning.get(pools[d].level, 0) + len(rows)
        misled = None
        if model.declared.wrong_share > 0:
            misled = Block.start(pools[()], np.array([i for i, d in enumerate(declarations) if d], dtype=np.int64))
        return cls(model, bank, blocks, pools[()], conditioning=conditioning, misled=misled)

    @property
    def drift_at(self) -> int | None:
        return self.model.drift.at_edition if self.model.drift else None

    def begin(self, number: int, readers: int) -> None:
        """At the drift edition: freeze the evidence of what came before and start the fresh branch."""
        if number != self.drift_at:
            return
        self.stale_evidence = self.before_drift(lambda rows: np.zeros((len(rows), 1)), readers)[1]
        self.fresh = Block.start(self.prior, np.arange(readers))

    def before_drift(self, affinity_of: Callable[[np.ndarray], np.ndarray],
                     readers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per reader, under their first tastes: posterior mean affinities, log evidence, sum of squared weights.

        With wrong declarations in the model, a reader who declared is a mixture: their
        declaration is right (the declared pool) or wrong (the prior), weighed by the evidence.
        """
        width = affinity_of(self.bank[:1]).shape[1]
        means, evidence, squares = np.empty((readers, width)), np.empty(readers), np.empty(readers)
        for block in self.blocks:
            m, e, s = summarise(block.logw, affinity_of(self.bank[block.pool.rows]))
            means[block.readers], evidence[block.readers], squares[block.readers] = m, e, s
        if self.misled is not None and len(self.misled.readers):
            wrong = self.model.declared.wrong_share
            idx = self.misled.readers
            m, e, s = summarise(self.misled.logw, affinity_of(self.bank[self.misled.pool.rows]))
            with np.errstate(divide="ignore", invalid="ignore"):
                log_right = math.log1p(-wrong) + evidence[idx] if wrong < 1 else np.full(len(idx), -np.inf)
                log_wrong = math.log(wrong) + e
                odds = np.nan_to_num(log_right - log_wrong, nan=0.0)
            misled = 1.0 / (1.0 + np.exp(np.clip(odds, -700, 700)))
            means[idx] = (1 - misled)[:, None] * means[idx] + misled[:, None] * m
            evidence[idx] = np.logaddexp(log_right, log_wrong)
            squares[idx] = (1 - misled) ** 2 * squares[idx] + misled ** 2 * s
        return means, evidence, squares

    def scores(self, kinds: Sequence[tuple[int, ...]],
               readers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per reader: posterior mean affinity of each section kind, effective sample size, P(drifted)."""
        means, evidence, squares = self.before_drift(lambda rows: section_affinities(rows, kinds), readers)
        if self.fresh is None:
            return means, 1.0 / squares, None
        fresh_means, fresh_evidence, fresh_squares = summarise(
            self.fresh.logw, section_affinities(self.bank[self.prior.rows], kinds))
        share = self.model.drift.share
        # P(drifted | evidence): stay = (1 - s) Z(all clicks on the old draw); drift = s Z(old) Z(new).
        log_stay = math.log1p(-share) + evidence if share < 1 else np.full(readers, -np.inf)
        log_drift = math.log(share) + self.stale_evidence + fresh_evidence if share > 0 else np.full(readers, -np.inf)
        with np.errstate(invalid="ignore"):
            odds = np.nan_to_num(log_stay - log_drift, nan=0.0)  # neither branch explains the reader: even
        drifted = 1.0 / (1.0 + np.exp(np.clip(odds, -700, 700)))
        mixed = (1 - drifted)[:, None] * means + drifted[:, None] * fresh_means
        ess = 1.0 / ((1 - drifted) ** 2 * squares + drifted ** 2 * fresh_squares)
        return mixed, ess, drifted

    def observe(self, kinds: Sequence[tuple[int, ...]], opened: np.ndarray, shown: np.ndarray,
                clicked: np.ndarray) -> None:
        """Condition every reader who read the newsletter on their clicks (readers x positions arrays)."""
        for block in self.blocks:
            local = np.flatnonzero(opened[block.readers])
            if len(local):
                chosen = block.readers[local]
                condition(block, section_affinities(self.bank[block.pool.rows], kinds), local, shown[chosen],
                        clicked[chosen], self.model)
        if self.misled is not None:
            local = np.flatnonzero(opened[self.misled.readers])
            if len(local):
                chosen = self.misled.readers[local]
                condition(self.misled, section_affinities(self.bank[self.prior.rows], kinds), local, shown[chosen],
                          clicked[chosen], self.model)
        if self.fresh is not None:
            local = np.flatnonzero(opened)
            condition(self.fresh, section_affinities(self.bank[self.prior.rows], kinds), local, shown[local],
                    clicked[local], self.model)


# --- one edition -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidates:
    """An edition's candidates as the learner sees them: topic kinds, pinned flags, editorial order."""

    edition: Edition
    sections: tuple[Candidate, ...]
    kinds: tuple[tuple[int, ...], ...]  # distinct topic sets, as topic indices
    kind_of: np.ndarray  # candidate -> kind

    @classmethod
    def of(cls, edition: Edition, index: dict[str, int]) -> Candidates:
        sections = tuple(Candidate(s.id, s.topics, s.pinned) for s in edition.sections)
        kinds: dict[tuple[int, ...], int] = {}
        kind_of = [kinds.setdefault(tuple(sorted(index[t] for t in s.topics)), len(kinds)) for s in sections]
        return cls(edition, sections, tuple(kinds), np.array(kind_of))


def shown_of(sections: Sequence[Candidate], picks: Sequence[int]) -> list[ShownSection]:
    return [ShownSection(sections[i].section_id, sections[i].topics, place) for place, i in enumerate(picks)]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None  # None, not NaN: the JSON stays valid


@dataclass
class Run:
    """One model and seed: the audience, its addresses and declarations, the learner."""

    model: ReaderModel
    seed: int
    folder: Path
    emails: list[str]
    declarations: list[tuple]
    learner: Learner
    index: dict[str, int]
    audience: SimulatedAudience
    needs: list[tuple[int, dt.date] | None] = field(default_factory=list)  # per reader: (topic, until)

    def edition(self, number: int) -> dict:
        """Choose, respond, measure and learn for edition `number`; returns its figures."""
        sent = (START + dt.timedelta(weeks=number - 1)).date()  # as the evaluation dates edition n
        edition = load_edition(write_edition(self.model, self.folder / "editions", number, seed=self.seed, sent=sent))
        cands = Candidates.of(edition, self.index)
        k, cap = edition.sections_per_reader, edition.max_per_topic
        readers = len(self.emails)
        self.learner.begin(number, readers)
        scores, ess, belief = self.learner.scores(cands.kinds, readers)
        # An active need (the audience file's, as production reads it) makes its topic at least
        # needs.strength to the reader: scored so, and its clicks say nothing of their tastes.
        strength = self.model.needs.strength if self.model.needs else 1.0
        needing = {r: need[0] for r, need in enumerate(self.needs) if need is not None and need[1] >= sent}
        on_need = {t: np.array([t in kind for kind in cands.kinds]) for t in set(needing.values())}
        for r, topic in needing.items():
            scores[r, on_need[topic]] = np.maximum(scores[r, on_need[topic]], strength)
        ranking = np.argsort(-scores[:, cands.kind_of], axis=1, kind="stable")  # equal kinds tie exactly
        editorial = [ShownSection(sid, edition.by_id[sid].topics, place)
                     for place, sid in enumerate(editorial_sections(edition).section_ids)]
        rows = {"reference": [], "editorial": [], "oracle": [], "predicted": []}
        engagement = self.model.engagement
        weight = engagement.open_rate * engagement.click_rate * engagement.position_decay ** np.arange(k)
        drifted, declared = [], []
        width = min(k, len(cands.sections))
        shown = np.zeros((readers, width), dtype=np.int64)
        clicked = np.zeros((readers, width), dtype=bool)
        opened = np.zeros(readers, dtype=bool)
        for r, email in enumerate(self.emails):
            picks = fill_newsletter(cands.sections, ranking[r], k=k, max_per_topic=cap)
            mine = shown_of(cands.sections, picks)
            response = self.audience.respond(email, number, mine)
            opened[r] = response.opened
            shown[r, :len(picks)] = cands.kind_of[picks]
            # What the posterior expects of its own choice: unbiased for the truth if the posterior is right.
            rows["predicted"].append(float(weight[:len(picks)] @ scores[r, cands.kind_of[picks]]))
            clicked[r, :len(picks)] = [s.section_id in response.clicks for s in mine]
            if r in needing:
                ignored = on_need[needing[r]][shown[r, :len(picks)]]
                shown[r, :len(picks)][ignored] = len(cands.kinds)  # the kind without topics: affinity 0, never clicked
                clicked[r, :len(picks)][ignored] = False
            best = self.audience.oracle(email, number, cands.sections, k=k, max_per_topic=cap)
            for arm, newsletter in (("reference", mine), ("editorial", editorial), ("oracle", best)):
                rows[arm].append(self.audience.expect(email, number, newsletter).clicks)
            drifted.append(self.audience.reader(email).drifted(number))
            declared.append(bool(self.declarations[r]))
        self.learner.observe((*cands.kinds, ()), opened, shown, clicked)
        return figures(number, rows, drifted, declared, ess, belief)


def figures(number: int, rows: dict[str, list[float]], drifted: list[bool], declared: list[bool],
            ess: np.ndarray, belief: np.ndarray | None) -> dict:
    """One edition's CTRs and ratios, over every reader and over drifted / undeclared ones."""
    ref, edi, ora = (mean(rows[a]) for a in ("reference", "editorial", "oracle"))

    def over(members: list[bool]) -> float | None:
        picked = [i for i, m in enumerate(members) if m]
        if not picked:
            return None
        return ratio(mean([rows["reference"][i] for i in picked]), mean([rows["oracle"][i] for i in picked]))

    return {"edition": number, "ctr_reference": ref, "ctr_editorial": edi, "ctr_oracle": ora,
            "ctr_predicted": mean(rows["predicted"]),
            "reference_vs_oracle": ratio(ref, ora), "reference_vs_editorial": ratio(ref, edi),
            "oracle_vs_editorial": ratio(ora, edi), "drifted_reference_vs_oracle": over(drifted),
            "drifted_readers": sum(drifted), "undeclared_reference_vs_oracle": over([not d for d in declared]),
            "ess_min": float(ess.min()), "ess_below_50": int((ess < ESS_WARN).sum()),
            # The learner's mean P(drifted) over readers who did drift and over those who did not.
            "belief_drifted": None if belief is None else float(belief[np.array(drifted)].mean()),
            "belief_stayed": None if belief is None else float(belief[~np.array(drifted)].mean())}


def read_audience(path: Path, index: dict[str, int]) -> tuple[list[str], list[str], list[tuple[int, dt.date] | None]]:
    """Addresses, declared interests and needs ((topic index, until) or None) of an audience file."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    needs = [(index[r["needs"].split(";")[0].strip()], dt.date.fromisoformat(r["needs_until"]))
             if r.get("needs") and r.get("needs_until") else None for r in rows]
    return [r["email"] for r in rows], [r.get("interests", "") for r in rows], needs


def run_reference(model: ReaderModel, seed: int, *, readers: int, editions: int, particles: int, bank: int,
                  minimum: int) -> dict:
    """The reference learner on `readers` readers of `model` for `editions` editions; every figure."""
    started = time.perf_counter()
    index = {t: i for i, t in enumerate(model.topic_names)}
    with tempfile.TemporaryDirectory(prefix="readerfirst-ceiling-") as work:
        folder = Path(work)
        audience = SimulatedAudience(model, seed)
        emails, interests, needs = read_audience(
            write_audience(audience, folder / "audience.csv", readers, seed=seed, first_sent=START.date()), index)
        declarations = [parse_interests(text, index) for text in interests]
        rng = np.random.default_rng([seed, zlib.crc32(model.name.encode()), 0xCE11])
        learner = Learner.create(model, declarations, particles=particles, bank_size=bank, minimum=minimum, rng=rng)
        run = Run(model, seed, folder, emails, declarations, learner, index, audience, needs)
        measures = [run.edition(n) for n in range(1, editions + 1)]
    return {"model": model.name, "seed": seed, "readers": readers, "particles": particles, "bank": bank,
            "declared_readers": sum(1 for d in declarations if d), "conditioning": learner.conditioning,
            "drift_at": learner.drift_at, "seconds": round(time.perf_counter() - started, 1), "editions": measures}


def run_policy(model: ReaderModel, seed: int, *, readers: int, editions: int) -> list[float]:
    """The production policy's personalised / oracle CTR per edition (`run_evaluation`, defaults)."""
    from pipeline.simulation.evaluate import run_evaluation

    result = run_evaluation(model, editions=editions, readers=readers, seed=seed)
    return [ratio(m.ctr_personalised, m.ctr_oracle) for m in result.measures]


# --- output ------------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def belief(entry: dict) -> str:
    """Mean P(drifted) the learner holds for readers who drifted / who did not."""
    if entry["belief_drifted"] is None:
        return "-"
    return f"{entry['belief_drifted']:.2f}/{entry['belief_stayed']:.2f}"


# Per-edition columns: header, width, and how an edition's figures are shown.
COLUMNS = (
    ("ed", 3, lambda e: str(e["edition"])),
    ("ctr_pred", 8, lambda e: f"{e['ctr_predicted']:.4f}"),
    ("ctr_ref", 8, lambda e: f"{e['ctr_reference']:.4f}"),
    ("ctr_edi", 8, lambda e: f"{e['ctr_editorial']:.4f}"),
    ("ctr_ora", 8, lambda e: f"{e['ctr_oracle']:.4f}"),
    ("ref/ora", 8, lambda e: fmt(e["reference_vs_oracle"])),
    ("ref/edi", 8, lambda e: fmt(e["reference_vs_editorial"])),
    ("ora/edi", 8, lambda e: fmt(e["oracle_vs_editorial"])),
    ("drift r/o", 9, lambda e: fmt(e["drifted_reference_vs_oracle"])),
    ("undecl r/o", 10, lambda e: fmt(e["undeclared_reference_vs_oracle"])),
    ("ess_min", 8, lambda e: f"{e['ess_min']:.0f}"),
    ("ess<50", 6, lambda e: str(e["ess_below_50"])),
    ("P(drift) d/s", 12, belief),
)


def print_run(result: dict) -> None:
    """A run's header and one line per edition (with the production policy's figure when run)."""
    conditioning = ", ".join(f"{k} {v}" for k, v in sorted(result["conditioning"].items()))
    print(f"\n{result['model']}  seed {result['seed']}  {result['readers']} readers  "
          f"{result['declared_readers']} declared  particles {result['particles']} (bank {result['bank']})  "
          f"conditioned on: {conditioning}  drift at {result['drift_at'] or '-'}  {result['seconds']} s")
    policy = result.get("policy")
    extra = [("policy/ora", 10)] if policy else []
    print(" ".join(f"{name:>{width}}" for name, width, *_ in [*COLUMNS, *extra]))
    for i, entry in enumerate(result["editions"]):
        cells = [f"{show(entry):>{width}}" for _, width, show in COLUMNS]
        if policy:
            cells.append(f"{fmt(policy[i]):>10}")
        print(" ".join(cells), flush=True)


def print_summary(results: list[dict]) -> None:
    print("\nSummary at the last edition (goals: ref/ora >= 0.85, ref/edi >= 1.5, "
          "drifted >= 0.9 x oracle within 3 editions of the drift)")
    with_policy = any("policy" in r for r in results)
    print(f"{'model':<14} {'seed':>4} {'ed':>3} {'ref/ora':>8} {'ref/edi':>8} {'ora/edi':>8} {'drift r/o':>9} "
          f"{'undecl r/o':>10} {'after drift (all r/o)':>22}" + (f" {'policy/ora':>10}" if with_policy else ""))
    for r in results:
        last = r["editions"][-1]
        after = ""
        if r["drift_at"]:
            window = [e for e in r["editions"] if r["drift_at"] < e["edition"] <= r["drift_at"] + 3]
            after = " ".join(fmt(e["reference_vs_oracle"], 2) for e in window) or "-"
        line = (f"{r['model']:<14} {r['seed']:>4} {last['edition']:>3} {fmt(last['reference_vs_oracle']):>8} "
                f"{fmt(last['reference_vs_editorial']):>8} {fmt(last['oracle_vs_editorial']):>8} "
                f"{fmt(last['drifted_reference_vs_oracle']):>9} {fmt(last['undeclared_reference_vs_oracle']):>10} "
                f"{after or '-':>22}")
        if with_policy:
            line += f" {fmt(r['policy'][-1]) if 'policy' in r else '-':>10}"
        print(line)


def load_models(names: Sequence[str]) -> list[ReaderModel]:
    """Model files by path (or a shipped file's name), and `unseen` for the test's unshipped model."""
    models = []
    for name in names:
        if name == "unseen":
            path = UNSEEN_MODEL
        else:
            path = Path(name) if Path(name).exists() else MODELS / name
        models.append(load_reader_model(path))
    return models


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", nargs="+", default=[*SHIPPED, "unseen"],
                        help="reader model files (or shipped names), 'unseen' for the tests' unshipped model")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--readers", type=int, default=5_000)
    parser.add_argument("--editions", type=int, default=8)
    parser.add_argument("--particles", type=int, default=20_000, help="particles per reader's posterior")
    parser.add_argument("--bank", type=int, default=2_000_000,
                        help="prior draws searched for particles that match a declaration")
    parser.add_argument("--min-matches", type=int, default=1_000,
                        help="fewest matching particles before a declaration's pool drops its weights, then its order")
    parser.add_argument("--policy", action="store_true", help="also run the production evaluation (slow)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON instead of tables")
    args = parser.parse_args(argv)
    results = []
    for model in load_models(args.models):
        for seed in args.seeds:
            result = run_reference(model, seed, readers=args.readers, editions=args.editions,
                                   particles=args.particles, bank=args.bank, minimum=args.min_matches)
            if args.policy:
                result["policy"] = run_policy(model, seed, readers=args.readers, editions=args.editions)
            results.append(result)
            if not args.json:
                print_run(result)
    if args.json:
        print(json.dumps({"runs": results}, indent=2))
    else:
        print_summary(results)
        low = [(r["model"], r["seed"], e["edition"], e["ess_below_50"]) for r in results for e in r["editions"]
               if e["ess_below_50"]]
        if low:
            print(f"\nwarning: posteriors with an effective sample size below {ESS_WARN} "
                  f"(model, seed, edition, readers): {low}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
