"""Optuna's TPE sampler, asked and told through a private in-memory study.

Told records become finished trials of the study (``optuna.trial.create_trial``): successes as
COMPLETE with their loss, failures as PRUNED. TPE fits its "good" density on its best
``min(⌈0.1 n⌉, 25)`` trials of ``n``, completed ones first, so failures land in the bad
density as long as they are fewer than 9 per success: the study keeps at most that many (the
most recent), so a failure is never proposed as good. Not FAIL: TPE ignores FAIL trials, and
an unexplored region then looks better than any explored one (the good density's prior
weighs more than the bad one's). Measured with Optuna 5.0 on ``x, y`` in ``[0, 1]``, every
evaluation at ``x > 0.5`` failing: of the last 40 of 80 candidates, TPE with FAIL trials put
100 % in the failing half, with PRUNED trials 7 % (univariate) and 5 % (multivariate).

Each ``ask`` runs one define-by-run trial: the parameters are suggested in dependency order
with their real distributions (``Float`` and ``Int`` with their bounds and log scale; a
``Categorical`` as the index of its choice, since Optuna compares choices with ``==``, which
equates ``1``, ``1.0`` and ``True``), and a conditional parameter is suggested only when its
condition holds, so inactive parameters are absent from the trial as TPE expects
(``group=True`` splits the space by which parameters occur together). The asked trial is
closed as FAIL at once (ignored by TPE): its result arrives later through ``tell`` like
everyone else's. Until the study holds ``startup`` successes, candidates are random (Optuna's
``RandomSampler``). A record told again counts once (:mod:`.told`).

Pending points (``pending: true``): the candidates the island's other workers are
evaluating (told through :meth:`Breeder.pending`) enter the study as RUNNING trials for the
ask and are closed as FAIL after it, and the sampler runs with Optuna's ``constant_liar``,
which counts a running trial as bad: a worker does not crowd the region its peers are
evaluating. Off by default, because it measured no better on the discrete set
(``jobs/bench/quality.py --set discrete --ranks 8``, 10 seeds, 12 problems at 50 and 100
evaluations, pending on against off): the default portfolio won 7, tied 5 and lost 12, TPE
alone 1-2-5 on the first 4 problems, no difference significant (Mann-Whitney p > 0.16). The
liar pushes every worker away from the region its peers are in, which is where the best
configurations are at 50-100 evaluations. Without it, a repeat of a peer's candidate is still
never evaluated (the island's claim table).

Determinism: the sampler is rebuilt at each ask, seeded from ``rng``; the study's content
depends only on the told records and their order.

Bounded cost: an ask costs O(trials in the study). The study holds at most ``max_trials``
trials (default 1000): when it would grow past that it is rebuilt from the ``max_trials // 4``
best successes ever told and the most recent told records, up to ``3/4 max_trials`` in all,
in the order they were told. TPE's "good" density is fitted on the best ``min(⌈0.1 n⌉, 25)``
trials, all of which the kept best contain, and Optuna already weights recent trials more in
the other one. A rebuild re-adds ``3/4 max_trials`` trials once per ``max_trials / 4`` told,
so telling costs a few trial insertions per record; memory is O(max_trials) whatever the
history. ``jobs/bench/strategy_cost.py`` measures both.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..space import Categorical, Constant, Float, Int, Space
from ..space.conditions import is_active
from .base import Breeder, StrategySpec
from .checks import is_int, require
from .pareto import nsga2_order
from .pool import Pool
from .told import SeenFilter

_FAILURES_PER_SUCCESS = 9  # more, and TPE's good density would take failures


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna without its INFO/WARNING lines (study created, trial failed) and experimental
    warnings, restoring the user's own settings afterwards."""
    from optuna.exceptions import ExperimentalWarning

    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            yield
    finally:
        logger.setLevel(level)


class _Memory:
    """The told records the study is built from: the ``n_best`` best successes ever told and
    the ``n_recent`` latest records, with their arrival numbers (bounded memory)."""

    def __init__(self, dim: int, objectives: int, n_best: int, n_recent: int) -> None:
        self._n_best, self._n_recent = n_best, n_recent
        no_loss = np.zeros(0) if objectives == 1 else np.zeros((0, objectives))
        self._best = (np.zeros((0, dim)), no_loss, np.zeros(0, dtype=bool), np.zeros(0, int))
        self._recent = self._best
        self._told = 0

    def add(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:
        seq = np.arange(self._told, self._told + len(genes))
        self._told += len(genes)
        new = (genes, loss, ok, seq)
        self._recent = tuple(
            np.concatenate([a, b])[-self._n_recent :]
            for a, b in zip(self._recent, new, strict=True)
        )
        best = tuple(np.concatenate([a, b[ok]]) for a, b in zip(self._best, new, strict=True))
        loss = best[1]
        order = (nsga2_order(loss) if loss.ndim == 2 else np.argsort(loss, kind="stable"))[
            : self._n_best
        ]
        self._best = tuple(a[order] for a in best)

    def rows(self) -> tuple[np.ndarray, ...]:
        """The kept records (genes, loss, ok), each once, in the order they were told."""
        both = [np.concatenate([a, b]) for a, b in zip(self._best, self._recent, strict=True)]
        _, first = np.unique(both[3], return_index=True)
        return tuple(a[first] for a in both[:3])


class _Suggestion:
    """One define-by-run trial: suggests each active parameter, in dependency order."""

    def __init__(self, breeder: _TPEBreeder, trial: Any) -> None:
        self._b, self._trial = breeder, trial
        self.values: dict[str, Any] = {}
        self.active: dict[str, bool] = {}
        self.genes = np.full(len(breeder.index), 0.5)

    def visit(self, name: str) -> bool:
        """Whether ``name`` is active; suggests it (and what it depends on) the first time."""
        if name in self.active:
            return self.active[name]
        p = self._b.params[name]
        for ref in sorted(p.when.names) if p.when is not None else ():
            self.visit(ref)
        on = is_active(name, p.when, self.values)
        self.active[name] = on
        if on:
            self.values[name] = p.value if isinstance(p, Constant) else self._suggest(name, p)
        return on

    def _suggest(self, name: str, p: Float | Int | Categorical) -> Any:
        i = self._b.index[name]
        if isinstance(p, Categorical):
            j = self._trial.suggest_categorical(name, self._b.dists[name].choices)
            self.genes[i] = (j + 0.5) / len(p.choices)
            return p.choices[j]
        if isinstance(p, Int):
            v = min(max(self._trial.suggest_int(name, p.low, p.high, log=p.log), p.low), p.high)
        else:
            v = min(max(self._trial.suggest_float(name, p.low, p.high, log=p.log), p.low), p.high)
        self.genes[i] = p.encode(v)
        return v


class _TPEBreeder(Breeder):
    pool_size = 16
    model_based = True

    def __init__(self, spec: TPE, space: Space, objectives: int) -> None:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        self._spec, self._space = spec, space
        self.uses_pending = spec.pending
        self.params = space.params
        self.index = {name: i for i, name in enumerate(space.genes)}
        self.dists: dict[str, Any] = {}
        for name in space.genes:
            p = self.params[name]
            if isinstance(p, Categorical):
                self.dists[name] = CategoricalDistribution(tuple(range(len(p.choices))))
            elif isinstance(p, Int):
                self.dists[name] = IntDistribution(p.low, p.high, log=p.log)
            else:
                self.dists[name] = FloatDistribution(p.low, p.high, log=p.log)
        self._seen = SeenFilter()
        self._objectives = objectives
        self._memory = _Memory(space.dim, objectives, spec.max_trials // 4, spec.max_trials // 2)
        self._study: Any = None
        self._size = 0  # trials in the study
        self._n_ok = self._n_failed = 0  # successes and failures in the study
        self._unsynced: list[tuple[np.ndarray, ...]] = []  # told since the last ask
        self._n_unsynced = 0
        self._pending = np.zeros((0, space.dim))

    def pending(self, genes: np.ndarray) -> None:
        self._pending = genes

    def tell(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:
        if not self.dists:
            return
        fresh = self._seen.fresh(genes, loss)
        rows = (genes[fresh], loss[fresh], ok[fresh])
        self._memory.add(*rows)
        self._n_unsynced += len(rows[0])
        # past this many the study is rebuilt from the memory anyway
        self._unsynced = [] if self._n_unsynced > self._spec.max_trials else [*self._unsynced, rows]

    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        if not self.dists:
            return np.full(len(self.index), 0.5)
        import optuna

        failed = optuna.trial.TrialState.FAIL
        with _quiet():
            self._sync(len(self._pending))
            self._study.add_trials([self._trial(g, np.nan, None) for g in self._pending])
            running = list(range(self._size, self._size + len(self._pending)))
            self._study.sampler = self._sampler(int(rng.integers(2**32)))
            trial = self._study.ask()
            try:
                suggestion = _Suggestion(self, trial)
                for name in self.params:
                    suggestion.visit(name)
            finally:
                for number in [*running, trial.number]:
                    self._study.tell(number, state=failed)
                self._size += 1 + len(running)
        self._seen.asked(suggestion.genes)
        return suggestion.genes

    def _sampler(self, seed: int) -> Any:
        import optuna

        spec = self._spec
        if self._n_ok < max(spec.startup, 1):
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(
            n_startup_trials=spec.startup,
            multivariate=spec.multivariate,
            group=spec.multivariate,
            constant_liar=spec.pending,  # the peers' pending points, running during the ask
            seed=seed,
        )

    def _sync(self, pending: int) -> None:
        """Bring the study up to date with what was told, rebuilding it when it would grow
        past ``max_trials`` with the ``pending`` points and the trial about to be asked."""
        import optuna

        room = self._spec.max_trials - 1 - pending
        if self._study is None or self._size + self._n_unsynced > room:
            self._study = optuna.create_study(directions=["minimize"] * self._objectives)
            self._size = self._n_ok = self._n_failed = 0
            self._unsynced = [self._memory.rows()]
        for rows in self._unsynced:
            rows = self._admit(*rows)
            self._study.add_trials([self._trial(*row) for row in zip(*rows, strict=True)])
            self._size += len(rows[0])
        self._unsynced, self._n_unsynced = [], 0

    def _admit(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> tuple:
        """The rows to add: every success, and the most recent failures that keep the study
        within ``_FAILURES_PER_SUCCESS`` failures per success."""
        self._n_ok += int(np.count_nonzero(ok))
        room = max(0, _FAILURES_PER_SUCCESS * self._n_ok - self._n_failed)
        failed = np.flatnonzero(~ok)
        keep = ok.copy()
        keep[failed[max(0, len(failed) - room) :]] = True
        self._n_failed += int(np.count_nonzero(keep & ~ok))
        return genes[keep], loss[keep], ok[keep]

    def _trial(self, genes: np.ndarray, loss: float | np.ndarray, ok: bool | None) -> Any:
        """A finished trial for a told record (the active parameters only), or a running one
        for a pending point (``ok`` None)."""
        from optuna.trial import TrialState, create_trial

        params = {}
        for name, value in self._space.decode(genes).items():
            if name in self.dists:
                p = self.params[name]
                if isinstance(p, Categorical):
                    u = min(max(float(np.nan_to_num(genes[self.index[name]])), 0.0), 1.0)
                    value = min(int(u * len(p.choices)), len(p.choices) - 1)
                params[name] = value
        dists = {name: self.dists[name] for name in params}
        if ok is None:
            return create_trial(params=params, distributions=dists, state=TrialState.RUNNING)
        if ok:
            values = np.atleast_1d(loss).tolist()
            return create_trial(params=params, distributions=dists, values=values)
        return create_trial(params=params, distributions=dists, state=TrialState.PRUNED)


@dataclass(frozen=True)
class TPE(StrategySpec):
    """Optuna's Tree-structured Parzen Estimator (module docstring: how it is driven).

    Args:
        startup: random trials before TPE takes over (Optuna's ``n_startup_trials``,
            default 10), counted over the island's successes.
        multivariate: a joint density over the parameters that occur together (Optuna's
            ``multivariate=True, group=True``; default ``True``), rather than one density per
            parameter.
        max_trials: most trials the study holds, which bounds the cost of an ask; at least
            100 (default 1000).
        pending: count the island peers' candidates in flight as bad results while asking
            (Optuna's ``constant_liar``; default ``False``, see the module docstring); their
            workers then send each candidate as they start it, with their previous result.
    """

    startup: int = 10
    multivariate: bool = True
    max_trials: int = 1000
    pending: bool = False

    name = "tpe"
    multi_objective = True

    def __post_init__(self) -> None:
        s = self.startup
        require(is_int(s) and s >= 0, "startup", "an integer >= 0", s)
        m = self.multivariate
        require(isinstance(m, bool), "multivariate", "true or false", m)
        t = self.max_trials
        require(is_int(t) and t >= 100, "max_trials", "an integer >= 100", t)
        require(isinstance(self.pending, bool), "pending", "true or false", self.pending)
        if importlib.util.find_spec("optuna") is None:  # found without importing it
            raise ConfigError("strategy tpe needs optuna: pip install 'propagate[optuna]'")

    def create(self, space: Space, island_workers: int, objectives: int = 1) -> Breeder:
        return _TPEBreeder(self, space, objectives)
