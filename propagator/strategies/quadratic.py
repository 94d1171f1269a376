"""Local quadratic models: from the best point found so far, a step to the minimum of a
quadratic fitted to the points around it (a model-based trust region, as in Powell's NEWUOA,
refitted at every ask from whatever the island has evaluated).

Near a smooth optimum a quadratic is what every function looks like, and a step to the
model's minimum converges faster than any sampling distribution can shrink: where CMA-ES
gains a constant factor per generation, the model's step gains about as many digits as the
fit has. Far from one, or on a rugged landscape, its steps fail, and in the portfolio its
share falls to the floor (see :mod:`.portfolio`). It takes its points from every result, so
with CMA-ES it refines the cloud CMA-ES samples.

The model. Around the best point ``b``, the ``2 t`` nearest points (``t = (n+1)(n+2)/2``
terms of a full quadratic in ``n`` genes) set the radius ``r`` (the farthest of them).
Coordinates ``(x - b) / r`` and losses scaled to ``[0, 1]`` keep the least-squares fit well
conditioned at any scale, down to steps of 1e-11. The step solves ``H s = -g`` along each
eigenvector of the model's Hessian, with flat and concave directions taking long steps
downhill; its length is capped at ``r``, where the model was fitted. Each step is jittered by
``jitter`` of its length (at least ``jitter / 10`` of ``r``): workers that ask at the same
time with the same points then propose different configurations, and the points around the
best keep spanning every direction. Until there are ``t + 1`` points, and once the points
around the best are within 1e-11 of it (converged, as far as distinct parameters go), a
child is a Gaussian step (0.1 of the range) from the best point.

Genes are treated as continuous (an integer or a category decodes to its level); the portfolio
uses this member only on spaces of at most 10 float genes. Written here rather than taken from
a library: NEWUOA's and BOBYQA's Python ports (PDFO, Py-BOBYQA) call the objective
themselves and cannot be driven by ask and tell from asynchronous results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..space import Space
from .base import Breeder, StrategySpec, reflect
from .checks import is_real, require
from .pool import Pool
from .told import SeenFilter

_MAX_GENES = 20  # 231 terms: a fit of 462 points per ask, about a millisecond
_MEMORY = 5000  # points kept: the best half and the most recent half
_GAUSSIAN = 0.1  # step of a child bred without a model, in gene units
# Converged: smaller steps would decode to parameters within a few float roundings of each
# other, where workers that ask at once may propose the same configuration.
_MIN_RADIUS = 1e-11


class _QuadraticBreeder(Breeder):
    pool_size = 4
    model_based = True

    def __init__(self, spec: Quadratic, n_genes: int) -> None:
        self._jitter = spec.jitter
        self._n = n_genes
        self._terms = (n_genes + 1) * (n_genes + 2) // 2
        self._pairs = np.triu_indices(n_genes)
        # Points in buffers that grow by doubling (a tell copies only what it adds);
        # _x and _f are views of the filled part.
        self._xs, self._fs = np.zeros((64, n_genes)), np.zeros(64)
        self._x, self._f = self._xs[:0], self._fs[:0]
        self._seen = SeenFilter()

    def tell(self, genes: np.ndarray, loss: np.ndarray, ok: np.ndarray) -> None:
        keep = self._seen.fresh(genes, loss) & ok & np.isfinite(loss)
        if not keep.any():
            return
        old, new = len(self._f), int(keep.sum())
        size = old + new
        if size > len(self._fs):
            grown = max(2 * len(self._fs), size)
            self._xs = np.concatenate([self._x, np.zeros((grown - old, self._n))])
            self._fs = np.concatenate([self._f, np.zeros(grown - old)])
        self._xs[old:size], self._fs[old:size] = genes[keep], loss[keep]
        if size > _MEMORY:
            half = _MEMORY // 2
            rows = np.zeros(size, dtype=bool)
            rows[np.argpartition(self._fs[:size], half)[:half]] = True
            rows[size - half : size] = True
            x, f = self._xs[: len(rows)][rows], self._fs[: len(rows)][rows]
            size = len(f)
            if len(self._fs) > 2 * _MEMORY:  # a large tell (a resume) grew them: give it back
                self._xs, self._fs = np.zeros((2 * _MEMORY, self._n)), np.zeros(2 * _MEMORY)
            self._xs[:size], self._fs[:size] = x, f
        self._x, self._f = self._xs[:size], self._fs[:size]

    def ask(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        n, f = self._n, self._f
        if not len(f) or n == 0:
            return rng.random(n)
        best = int(np.argmin(f))
        step = self._model_step(best, rng) if len(f) > self._terms else None
        if step is None:
            step = _GAUSSIAN * rng.standard_normal(n)
        return reflect(self._x[best] + step)

    def _model_step(self, best: int, rng: np.random.Generator) -> np.ndarray | None:
        """The jittered step to the minimum of the model around ``best`` (``None`` once the
        points around it are closer than :data:`_MIN_RADIUS`)."""
        d = self._x - self._x[best]
        dist = np.einsum("ij,ij->i", d, d)
        k = min(len(dist), 2 * self._terms)
        near = np.argpartition(dist, k - 1)[:k]
        radius = math.sqrt(float(dist[near].max()))
        if radius < _MIN_RADIUS:
            return None
        z = d[near] / radius
        y = self._f[near] - self._f[best]
        y = y / max(float(np.abs(y).max()), 1e-300)
        i, j = self._pairs
        features = np.column_stack([np.ones(k), z, z[:, i] * z[:, j]])
        coef = np.linalg.lstsq(features, y, rcond=None)[0]
        n = self._n
        g = coef[1 : n + 1]
        h = np.zeros((n, n))
        h[i, j] = coef[n + 1 :]
        h = h + h.T  # the diagonal doubles: d²(h_ii z_i²)/dz_i² = 2 h_ii
        w, v = np.linalg.eigh(h)
        # Flat and concave directions get the floor's curvature: a long step downhill, cut
        # to the radius below (also a flat model's: a plain gradient step).
        floor = max(1e-3 * float(np.abs(w).max()), 1e-6 * float(np.linalg.norm(g)), 1e-300)
        s = -v @ ((v.T @ g) / np.maximum(w, floor))
        length = float(np.linalg.norm(s))
        if length > 1.0:
            s, length = s / length, 1.0
        noise = self._jitter * max(length, 0.1) / math.sqrt(n)
        return radius * (s + noise * rng.standard_normal(n))


@dataclass(frozen=True)
class Quadratic(StrategySpec):
    """Steps to the minimum of a local quadratic model around the best point (see the module).

    Args:
        jitter: random perturbation of each step, relative to its length (at least a tenth
            of it relative to the model's radius); in ``(0, 1]`` (default 0.1).
    """

    jitter: float = 0.1

    name = "quadratic"

    def __post_init__(self) -> None:
        j = self.jitter
        require(is_real(j) and 0.0 < j <= 1.0, "jitter", "a number in (0, 1]", j)

    def check(self, space: Space) -> None:
        """Raises :class:`ConfigError` for more than 20 genes: a full quadratic has
        ``(n+1)(n+2)/2`` terms to fit at every ask."""
        if space.dim > _MAX_GENES:
            raise ConfigError(
                f"strategy quadratic fits a full quadratic model ((n+1)(n+2)/2 terms) at every "
                f"ask and takes at most {_MAX_GENES} parameters, but the space has {space.dim}; "
                "use strategy cmaes, ga or random for this space"
            )

    def create(self, space: Space, island_workers: int, objectives: int = 1) -> Breeder:
        return _QuadraticBreeder(self, space.dim)
