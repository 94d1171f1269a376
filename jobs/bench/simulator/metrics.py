"""Utilization and throughput in a search's steady window, the same for real and simulated
records (so that the validation compares like with like).

The window runs from the moment every worker has started its first evaluation (start-up,
which the simulator does not model, is left out; a worker that never started is left out and
counted as ``absent``) to the moment the first surviving worker's
last evaluation ends (with a time budget, about the deadline: no worker is short of work
before it). Utilization is the time spent inside the objective in the window over the
workers' time alive in it; throughput counts each evaluation by the share of it inside the
window, per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """Attributes: ``start`` and ``end`` of the window (s, the records' clock);
    ``utilization`` (0..1); ``throughput`` (evaluations/s); ``absent``: workers with no
    evaluation at all (left out: their start-up outlasted the search)."""

    start: float
    end: float
    utilization: float
    throughput: float
    absent: int = 0


def window(rows: np.ndarray, n_workers: int, dies: np.ndarray | None = None) -> Window:
    """The steady window of ``rows`` (fields ``worker``, ``start``, ``end``) of
    ``n_workers`` workers; ``dies``: when each worker died (inf: never)."""
    dies = np.full(n_workers, np.inf) if dies is None else np.asarray(dies, dtype=float)
    worker, start, end = rows["worker"], rows["start"], rows["end"]
    first = np.full(n_workers, np.inf)
    np.minimum.at(first, worker, start)
    last = np.full(n_workers, -np.inf)
    np.maximum.at(last, worker, end)
    present = np.isfinite(first)
    if not present.any():
        raise ValueError("no evaluation: no steady window")
    a = float(first[present].max())
    survivors = present & ~np.isfinite(dies)
    b = float(last[survivors].min())
    if b <= a:
        raise ValueError("no steady window: some worker ended before every worker had started")
    overlap = np.clip(np.minimum(end, b) - np.maximum(start, a), 0.0, None)
    alive = np.clip(np.minimum(dies[present], b) - a, 0.0, None).sum()
    busy = float(overlap.sum())
    counted = float(np.sum(overlap / np.maximum(end - start, 1e-12)))
    return Window(a, b, busy / alive, counted / (b - a), int(n_workers - present.sum()))
