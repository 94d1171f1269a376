"""Which evaluations of a result are best: the ranking, the Pareto front and the winners
re-evaluated on fresh seeds (functions of a result's rows)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.records import Kind, Record, Status
from ..engine.seen import Seen
from ..space import Space
from ..strategies.pareto import nondominated, nsga2_order


@dataclass(frozen=True)
class Confirmed:
    """A winner re-evaluated on fresh seeds (see :attr:`Result.confirmed`).

    Attributes:
        params: the configuration.
        search: its best evaluation during the search (``None`` if it is not in this result).
        values: the optimized metric of each successful confirmation.
        mean: their mean (NaN if none succeeded).
        std: their standard deviation.
    """

    params: dict[str, Any]
    search: Record | None
    values: tuple[float, ...]
    mean: float
    std: float


def searched(rows: np.ndarray) -> np.ndarray:
    """Indices of the successful search evaluations (not confirmations)."""
    return np.flatnonzero((rows["status"] == Status.OK) & (rows["kind"] != Kind.CONFIRMATION))


def ranked(rows: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Successful search evaluations, best first: by loss with one objective, as NSGA-II
    ranks them (front, then crowding distance) with several."""
    ok = searched(rows)
    if losses.shape[1] > 1:
        return ok[nsga2_order(losses[ok])]
    return ok[np.argsort(losses[ok, 0], kind="stable")]


def front(space: Space, rows: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated search evaluations, in order of the first objective. A
    configuration evaluated again to the same values (``deduplicate=False``) is one point:
    its first evaluation (the non-dominated filter keeps equal points)."""
    ok = searched(rows)
    points = _distinct(space, rows, ok[nondominated(losses[ok])])
    return points[np.argsort(losses[points, 0], kind="stable")]


def confirmations(
    space: Space,
    rows: np.ndarray,
    losses: np.ndarray,
    direction: str,
    record: Callable[[int], Record],
) -> list[Confirmed]:
    """Each configuration re-evaluated at the end, with its best search record (``record(i)``
    makes row ``i``'s), best mean first (one objective, optimized in ``direction``)."""
    # A PBT confirmation is a schedule's replay in stretches: its last one (complete) counts;
    # a failed one may be any stretch, whose configuration is not the schedule's last.
    counted = rows["status"] == Status.OK if "member" in rows.dtype.names else True
    again = np.flatnonzero((rows["kind"] == Kind.CONFIRMATION) & counted)
    if not len(again):
        return []
    best_first = _configurations(space, rows, ranked(rows, losses))
    out = []
    for key, members in _configurations(space, rows, again).items():
        values = np.array([rows["values"][i, 0] for i in members if rows["status"][i] == Status.OK])
        origin = record(best_first[key][0]) if key in best_first else None
        mean = float(values.mean()) if len(values) else math.nan
        std = float(values.std()) if len(values) else math.nan
        params = space.decode(rows["genes"][members[0]])
        out.append(Confirmed(params, origin, tuple(values.tolist()), mean, std))
    sign = 1.0 if direction == "minimize" else -1.0
    return sorted(out, key=lambda c: (math.isnan(c.mean), sign * c.mean))


def _configurations(space: Space, rows: np.ndarray, indices: np.ndarray) -> dict[int, list[int]]:
    """``indices`` grouped by the configuration their genes decode to (in their order)."""
    key = Seen(space).key
    groups: dict[int, list[int]] = {}
    for i in indices:
        groups.setdefault(key(rows["genes"][i]), []).append(int(i))
    return groups


def _distinct(space: Space, rows: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``indices`` (ascending) less those that repeat an earlier one's configuration and
    values: the same point twice."""
    key = Seen(space).key
    points: set[tuple[int, bytes]] = set()
    keep = np.zeros(len(indices), dtype=bool)
    for j, i in enumerate(indices):
        point = (key(rows["genes"][i]), rows["values"][i].tobytes())
        keep[j] = point not in points
        points.add(point)
    return indices[keep]
