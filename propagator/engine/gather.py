"""The end of a session: every leader's records, gathered on every rank into one
:class:`Result` (the wire rows travel raw; metrics, errors and reports as JSON)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import ConfigError, ObjectiveError
from ..results.result import Result, RunInfo
from ..settings import Settings
from ..space import Space
from .layout import Layout
from .leader import Leader
from .records import LocalLog


def pack(log: LocalLog | None, leader: Leader | None, stats: bool = True) -> bytes:
    """A leader's records as ``json side data, newline, raw rows``; nothing for followers.
    ``stats``: with the leader's traffic and de-duplication counts (once per session)."""
    if log is None or leader is None:
        return b""
    side = {
        "metrics": log.metrics,
        "errors": log.errors,
        "reports": log.reports,
        "abort": leader.abort_error,
        "mistake": leader.abort_is_mistake,
        "interrupted": leader.interrupted,
        "stats": leader.stats if stats else {},
    }
    return json.dumps(side).encode() + b"\n" + log.view().tobytes()


def merge(
    space: Space,
    settings: Settings,
    layout: Layout,
    dtype: np.dtype,
    parts: list[bytes],
    run_seed: int,
    wall: float,
) -> Result:
    metrics: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    reports: dict[int, list[tuple[int, float]]] = {}
    rows, aborts, interrupted = [], [], False
    stats: dict[str, int] = {}
    for part in parts:
        if not part:
            continue
        head, _, raw = part.partition(b"\n")
        side = json.loads(head)
        metrics.update((int(k), v) for k, v in side["metrics"].items())
        errors.update((int(k), v) for k, v in side["errors"].items())
        reports.update((int(k), [tuple(p) for p in v]) for k, v in side["reports"].items())
        if side["abort"]:
            aborts.append((side["mistake"], side["abort"]))
        interrupted = interrupted or side["interrupted"]
        for key, n in side["stats"].items():
            stats[key] = stats.get(key, 0) + n
        rows.append(np.frombuffer(raw, dtype=dtype))
    if aborts:
        mistake, message = max(aborts, key=lambda a: a[0])  # a set-up mistake explains more
        raise (ConfigError if mistake else ObjectiveError)(message)
    info = RunInfo(
        seed=run_seed,
        world_size=layout.world_size,
        n_workers=layout.n_workers,
        n_islands=layout.n_islands,
        wall_time=wall,
        interrupted=interrupted,
        exhausted=bool(stats.pop("exhausted", 0)),
        **stats,
    )
    return Result(
        space,
        settings.metric,
        settings.direction,
        np.concatenate(rows),
        metrics,
        errors,
        reports,
        info,
    )


def ended_normally(parts: list[bytes]) -> bool:
    """Whether no leader stopped the search on a signal, an interrupt or a broken objective."""
    for part in parts:
        if part:
            side = json.loads(part.partition(b"\n")[0])
            if side["abort"] or side["interrupted"]:
                return False
    return True


def rows_of(parts: list[bytes], dtype: np.dtype) -> np.ndarray:
    """The wire rows of every part."""
    rows = [np.frombuffer(p.partition(b"\n")[2], dtype=dtype) for p in parts if p]
    return np.concatenate(rows) if rows else np.zeros(0, dtype)
