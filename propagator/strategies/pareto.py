"""Ranking points of several objectives (all to minimise): Pareto fronts, NSGA-II's crowding
distance and order, and the hypervolume.

Fronts and the hypervolume come from ``moocore`` (the C library behind deap's own
``hypervolume``); the crowding distance is NSGA-II's (Deb et al., 2002), written here on numpy
arrays and tested against deap's ``assignCrowdingDist``.

``moocore`` is imported on first use, not with this module: every strategy and the results
import this module, and ``moocore`` brings ``urllib.request``, ``ssl`` and ``platformdirs``
for its data sets (about 50 ms of CPU), which every rank of a single-objective search would
pay at start-up for nothing.
"""

from __future__ import annotations

import numpy as np


def fronts(losses: np.ndarray) -> np.ndarray:
    """Each point's non-dominated front: 0 for the Pareto front, 1 for the front of what is
    left, ...; a point with a NaN loss (failed) comes after every front."""
    losses = np.asarray(losses, dtype=np.float64)
    out = np.full(len(losses), len(losses), dtype=np.int64)
    finite = np.isfinite(losses).all(axis=1)
    if finite.any():
        import moocore

        out[finite] = moocore.pareto_rank(losses[finite])
    return out


def nondominated(losses: np.ndarray) -> np.ndarray:
    """Which points no other point dominates (finite ones only); equal points all stay."""
    return fronts(losses) == 0


def crowding(losses: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of the points of one front: per objective, the gap between
    each point's neighbours over the objective's range, summed; the extremes get infinity.
    (deap's ``assignCrowdingDist`` divides the sum by the number of objectives: the same
    order.)"""
    losses = np.asarray(losses, dtype=np.float64)
    n, m = losses.shape
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(losses[:, j], kind="stable")
        column = losses[order, j]
        out[order[0]] = out[order[-1]] = np.inf
        span = column[-1] - column[0]
        if span > 0:
            out[order[1:-1]] += (column[2:] - column[:-2]) / span
    return out


def nsga2_order(losses: np.ndarray) -> np.ndarray:
    """The points' indices from best to worst as NSGA-II ranks them: by front, and within a
    front by decreasing crowding distance (ties by index)."""
    rank = fronts(losses)
    spread = np.zeros(len(losses))
    for front in np.unique(rank):
        members = np.flatnonzero(rank == front)
        if np.isfinite(losses[members]).all():
            spread[members] = crowding(losses[members])
    return np.lexsort((np.arange(len(losses)), -spread, rank))


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """The volume the points dominate up to ``reference`` (finite points below it only)."""
    losses = np.asarray(losses, dtype=np.float64)
    inside = np.isfinite(losses).all(axis=1) & (losses < reference).all(axis=1)
    if not inside.any():
        return 0.0
    import moocore

    return float(moocore.hypervolume(losses[inside], ref=np.asarray(reference, dtype=float)))
