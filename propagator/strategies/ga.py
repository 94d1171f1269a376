"""The genetic algorithm, with Propulate's defaults (and without its operator bugs).

One breeding step, on genes in ``[0, 1]``:

1. Until the island pool holds ``population`` successful records, sample uniformly.
2. Otherwise pick two distinct parents uniformly from the pool (the pool already is the best
   ``population`` records: truncation selection, as Propulate's ``SelectMin``).
3. With probability ``crossover``, uniform crossover (``deap.tools.cxUniform``, each gene from
   either parent with probability 0.5); else the child is a copy of the first parent.
4. With probability ``mutation``, resample one random gene uniformly (point mutation).
5. Always, bounded polynomial mutation (``deap.tools.mutPolynomialBounded``, ``eta``, one
   gene on average, and one for sure if the child still equals a parent) for local
   refinement; it never leaves ``[0, 1]``.
6. With probability ``random_init``, replace the child by a uniform sample.

Because every parameter type is one gene in ``[0, 1]``, these operators respect bounds, ints
and categories by construction: decoding maps any gene to a valid value.

NOTE: deap's operators draw from Python's global ``random``; the breeder reseeds it from its
own numpy stream before each step, so a seeded search repeats whatever the objective does
with ``random`` (and the objective sees a reproducible ``random`` stream per candidate).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from deap import tools

from ..errors import ConfigError
from ..space import Space
from .base import Breeder, StrategySpec
from .pool import Pool


class _GABreeder(Breeder):
    def __init__(self, spec: GA, n_genes: int, population: int) -> None:
        self._spec = spec
        self._n = n_genes
        self.pool_size = population

    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        s, n = self._spec, self._n
        if len(pool) < self.pool_size or n == 0:
            return rng.random(n)
        # One draw for every decision of this step: numpy's per-call cost dominates here.
        u = rng.random(8).tolist()
        random.seed(int(u[0] * 2**52))
        size = len(pool)
        i = int(u[1] * size)
        j = int(u[2] * (size - 1))
        j += j >= i  # two distinct parents, uniformly
        genes = pool.genes
        child, other = genes[i].copy(), genes[j].copy()
        if u[3] < s.crossover:
            tools.cxUniform(child, other, 0.5)
        if u[4] < s.mutation:
            child[int(u[5] * n)] = u[6]
        tools.mutPolynomialBounded(child, s.eta, 0.0, 1.0, 1.0 / n)
        as_bytes = child.tobytes()  # exact comparison, an order cheaper than np.array_equal
        if as_bytes == genes[i].tobytes() or as_bytes == genes[j].tobytes():
            # never re-evaluate a parent: move one gene (as Propulate's interval mutation)
            k = int(u[0] * 2**20) % n
            tools.mutPolynomialBounded(child[k : k + 1], s.eta, 0.0, 1.0, 1.0)
        if u[7] < s.random_init:
            child = rng.random(n)
        return child


@dataclass(frozen=True)
class GA(StrategySpec):
    """Asynchronous genetic algorithm.

    Args:
        population: pool size per island; ``None`` (default) means ``max(16, 2 × workers on
            the island)``.
        crossover: probability of uniform crossover (default 0.7).
        mutation: probability of a point mutation (default 0.4).
        random_init: probability of replacing the child by a random sample (default 0.1).
        eta: crowding index of the always-on polynomial mutation; larger means smaller
            steps (default 20).
    """

    population: int | None = None
    crossover: float = 0.7
    mutation: float = 0.4
    random_init: float = 0.1
    eta: float = 20.0

    name = "ga"

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
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
                raise ConfigError(
                    f"strategy.{field} must be a probability in [0, 1], but got {p!r}"
                )
        if not isinstance(self.eta, (int, float)) or isinstance(self.eta, bool) or self.eta <= 0:
            raise ConfigError(f"strategy.eta must be a positive number, but got {self.eta!r}")

    def create(self, space: Space, island_workers: int) -> Breeder:
        population = self.population or max(16, 2 * island_workers)
        return _GABreeder(self, space.dim, population)
