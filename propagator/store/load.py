"""``pg.load``: a run directory as a :class:`Result` (finished, crashed or still running)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..engine.records import wire_dtype
from ..errors import PropagateError
from ..results.result import Result, RunInfo
from .hdf5 import read_meta
from .run_store import META, StoredRun, read_run

# RunInfo's counts that add up over sessions
_COUNTED = (
    "messages",
    "message_bytes",
    "migrants_sent",
    "immigrants_received",
    "duplicates_avoided",
)


def read(run_dir: str | Path) -> StoredRun:
    """The stored run at ``run_dir`` (read-only; damage is reported in ``problems``).

    Raises:
        PropagateError: ``run_dir`` holds no run.
    """
    run_dir = Path(run_dir)
    if not (run_dir / META).exists():
        raise PropagateError(f"{str(run_dir)!r} is not a propagate run directory (no {META})")
    meta, _ = read_meta(run_dir / META)
    return read_run(run_dir, stored_dtype(meta))


def _session_counts(events: list[dict]) -> dict:
    """The traffic and de-duplication counts of :class:`RunInfo`, summed over the sessions
    whose end event holds their RunInfo (a killed session left none), and whether the last
    one ended with the space exhausted."""
    counts = dict.fromkeys(_COUNTED, 0)
    exhausted = False
    for event in events:
        if event["kind"] in ("stop", "interrupted") and event["detail"].startswith("{"):
            info = json.loads(event["detail"])
            for name in _COUNTED:
                counts[name] += int(info.get(name, 0))
            exhausted = bool(info.get("exhausted", False))
    return {**counts, "exhausted": exhausted}


def stored_dtype(meta: dict) -> np.dtype:
    """The wire dtype of a stored run's records, from its ``run.h5`` attributes."""
    n_values = int(meta.get("n_objectives", 1))
    lineage = bool(meta.get("lineage", False))
    return wire_dtype(int(meta["n_genes"]), int(meta.get("n_rungs", 0)), n_values, lineage)


def objectives(meta: dict) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """A stored run's optimized metrics (``None``: the objective returns a float) and their
    directions."""
    metric, direction = json.loads(meta["metric"]), json.loads(meta["direction"])
    return (tuple(metric) or None), tuple(direction)


def load(run_dir: str | Path) -> Result:
    """Every evaluation stored in ``run_dir``, as the :class:`Result` a search returns.

    Times are seconds since the run's first session started; ``info.wall_time`` adds up the
    sessions. Works while the run is still going (records up to the last finished one).
    """
    stored = read(run_dir)
    meta = stored.meta
    starts = [e for e in stored.events if e["kind"] in ("start", "resume")]
    origin = starts[0]["time"] if starts else float(meta.get("created", 0.0))
    rows = stored.rows.copy()
    rows["start"] -= origin
    rows["end"] -= origin
    layout = json.loads(starts[-1]["detail"]) if starts and starts[-1]["detail"] else {}
    info = RunInfo(
        seed=int(meta["seed"]),
        world_size=layout.get("world_size", 0),
        n_workers=layout.get("n_workers", 0),
        n_islands=layout.get("n_islands", 0),
        wall_time=float(rows["end"].max()) if len(rows) else 0.0,
        interrupted=any(e["kind"] == "interrupted" for e in stored.events[-1:]),
        **_session_counts(stored.events),
    )
    metric, direction = objectives(meta)
    return Result(
        stored.space,
        metric,
        direction,
        rows,
        stored.metrics,
        stored.errors,
        stored.reports,
        info,
        problems=stored.problems,
    )
