"""The genetic algorithm: an elitist steady-state GA with a self-adapting mutation step.

One breeding step, on genes in ``[0, 1]``:

1. Until the island pool holds ``population`` successful records, or with probability
   ``random_init``, sample uniformly.
2. Otherwise pick two distinct parents uniformly from the pool (the pool already is the best
   ``population`` records of the island: truncation selection).
3. With probability ``crossover``, uniform crossover (each gene from either parent with
   probability 1/2); else the child is a copy of the first parent.
4. Gaussian mutation of one gene on average (at least one) with this worker's step size
   ``sigma`` (on the unit gene range), reflected at the bounds.
5. With probability ``mutation``, one random gene is resampled uniformly (a point mutation:
   the big jumps that leave a plateau or change a category).

The step size follows the 1/5th success rule of evolution strategies (Rechenberg; Kern et al.
2004): a child that enters the pool (beats its worst member) multiplies ``sigma`` by
``exp(adapt)``, any other divides it by ``exp(adapt / 4)``, so that about one child in five
succeeds. Far from an optimum steps stay large; near one they shrink, and the GA converges to
many digits where a fixed step would stall. Each worker adapts its own step from its own
children.

Why these defaults (measured on the 14 benchmark functions, 2 ranks × 500 evaluations, median
of 12 seeds not used for the published benchmark): Propulate's GA defaults (population 2 ×
ranks, always-on crossover, point mutation, a fixed 5 % Gaussian step) beat the earlier
defaults here (population 16, polynomial mutation) on most functions; a population of 4 and the
success rule beat both. See ``jobs/bench/quality.py`` for the comparison against the peers.

Every parameter type is one gene in ``[0, 1]``, so the operators respect bounds, integers and
categories by construction: decoding maps any gene to a valid value. The operators are a few
numpy expressions rather than deap's (which draw from Python's global ``random`` and loop over
genes in Python, an order of magnitude slower here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..space import Space
from .base import Breeder, StrategySpec
from .checks import is_real
from .pool import Pool

_SIGMA_RANGE = (1e-9, 0.5)


class _GABreeder(Breeder):
    def __init__(self, spec: GA, n_genes: int, population: int) -> None:
        self._spec = spec
        self._n = n_genes
        self.pool_size = population
        self._sigma = spec.sigma
        self._up, self._down = math.exp(spec.adapt), math.exp(-spec.adapt / 4)
        self._bred: np.ndarray | None = None  # the last child bred (not sampled), until told
        self._bar: Any = math.inf  # what the child had to beat to enter the pool
        self._passes = Pool.passes

    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        s, n = self._spec, self._n
        # One draw for the step's decisions, read as Python floats, and scalar arithmetic on
        # the few mutated genes: numpy's per-call cost dominates at these sizes.
        u = rng.random(6 + 2 * n)
        fresh, first, second, cross, forced, point = u[:6].tolist()
        if len(pool) < self.pool_size or n == 0 or fresh < s.random_init:
            self._bred = None
            return u[6 : 6 + n]
        size = len(pool)
        i = int(first * size)
        j = int(second * (size - 1))
        j += j >= i  # two distinct parents, uniformly
        genes = pool.genes
        child = genes[i].copy()
        if cross < s.crossover:
            take = u[6 : 6 + n] < 0.5
            child[take] = genes[j][take]
        mutated = (u[6 + n :] < 1.0 / n).nonzero()[0].tolist() or [int(forced * n)]
        steps = (self._sigma * rng.standard_normal(len(mutated))).tolist()
        for m, step in zip(mutated, steps, strict=True):
            # base.reflect, per gene on Python floats (numpy's per-call cost, as above)
            x = abs(float(child[m]) + step) % 2.0
            child[m] = 2.0 - x if x > 1.0 else x
        if point < s.mutation:
            child[int(point / s.mutation * n)] = rng.random()
        self._bred, self._bar, self._passes = child, pool.bar(), pool.passes
        return child

    def tell(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:
        bred = self._bred
        if bred is None:
            return
        for i in (genes[:, 0] == bred[0]).nonzero()[0].tolist() if self._n else ():
            if genes[i].tobytes() == bred.tobytes():
                success = bool(ok[i]) and self._passes(self._bar, loss[i])
                self._sigma *= self._up if success else self._down
                self._sigma = min(max(self._sigma, _SIGMA_RANGE[0]), _SIGMA_RANGE[1])
                self._bred = None
                return


@dataclass(frozen=True)
class GA(StrategySpec):
    """Asynchronous steady-state genetic algorithm (see the module docstring).

    Args:
        population: pool size per island; ``None`` (default) means ``max(4, 2 × workers on
            the island)``.
        crossover: probability of uniform crossover (default 1.0).
        mutation: probability of a point mutation, resampling one gene (default 0.2).
        random_init: probability of a uniform random child instead (default 0.05).
        sigma: initial Gaussian step on the unit gene range (default 0.2).
        adapt: log-factor of the 1/5th success rule (default 0.3); 0 keeps ``sigma`` fixed.
    """

    population: int | None = None
    crossover: float = 1.0
    mutation: float = 0.2
    random_init: float = 0.05
    sigma: float = 0.2
    adapt: float = 0.3

    name = "ga"
    multi_objective = True

    def __post_init__(self) -> None:
        if self.population is not None and (
            not isinstance(self.population, int)
            or isinstance(self.population, bool)
            or self.population < 2
        ):
            raise ConfigError(
                f"strategy.population must be an integer >= 2, but got {self.population!r}"
            )
        for field in ("crossover", "mutation", "random_init"):
            p = getattr(self, field)
            if not is_real(p) or not 0.0 <= p <= 1.0:
                raise ConfigError(
                    f"strategy.{field} must be a probability in [0, 1], but got {p!r}"
                )
        if not is_real(self.sigma) or not _SIGMA_RANGE[0] <= self.sigma <= _SIGMA_RANGE[1]:
            raise ConfigError(f"strategy.sigma must be in [1e-9, 0.5], but got {self.sigma!r}")
        if not is_real(self.adapt) or not 0.0 <= self.adapt <= 2.0:
            raise ConfigError(f"strategy.adapt must be in [0, 2], but got {self.adapt!r}")

    def create(self, space: Space, island_workers: int, objectives: int = 1) -> Breeder:
        population = self.population or max(4, 2 * island_workers)
        return _GABreeder(self, space.dim, population)
