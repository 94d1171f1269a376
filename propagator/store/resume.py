"""Continuing a run from its store: what changed, what is left, where each island restarts.

* The search file may change only by a larger budget; any other change is refused with a diff.
* Budgets count what was done: evaluations already stored, and wall time of earlier sessions.
* Ids continue after the largest stored id, so they stay unique.
* Island pools are rebuilt from the stored successful records: a record evaluated on old
  island ``j`` seeds new island ``j mod islands``, best first, up to the island's pool size.
  With the same number of islands that is the island it came from; with a different number of
  ranks the islands keep their count and only their sizes change.
* A worker that existed before continues its journaled RNG streams; a new worker index gets
  fresh streams derived from the run seed and the session number.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from ..engine.layout import Layout
from ..engine.records import Status
from ..settings import Budget, Settings
from ..space import Space
from .run_store import StoredRun


@dataclass(frozen=True)
class Plan:
    """What a session starts from (built on rank 0, broadcast to every rank)."""

    session: int
    next_id: int
    done: int
    budget: Budget | None  # what is left; None when nothing is left
    pools: dict[int, np.ndarray] = field(default_factory=dict)
    rng_states: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def config_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """``None`` if ``new`` may continue ``old`` (equal, or only a larger budget), else a diff."""
    if {k: v for k, v in old.items() if k != "budget"} == {
        k: v for k, v in new.items() if k != "budget"
    } and _budget_grew(old["budget"], new["budget"]):
        return None
    before = yaml.safe_dump(old, sort_keys=True).splitlines()
    after = yaml.safe_dump(new, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(before, after, "stored run", "search file", lineterm=""))


def _budget_grew(old: dict[str, Any], new: dict[str, Any]) -> bool:
    for key in ("evaluations", "time"):
        if (old[key] is None) != (new[key] is None):
            return False
        if old[key] is not None and new[key] < old[key]:
            return False
    return True


def time_spent(stored: StoredRun) -> float:
    """Wall seconds of earlier sessions (a session killed without a stop event counts until
    its last stored evaluation ended)."""
    starts = [e for e in stored.events if e["kind"] in ("start", "resume")]
    total = 0.0
    for i, start in enumerate(starts):
        after = starts[i + 1]["time"] if i + 1 < len(starts) else np.inf
        stops = [
            e["time"]
            for e in stored.events
            if e["kind"] in ("stop", "interrupted") and start["time"] <= e["time"] < after
        ]
        ends = stored.rows["end"][
            (stored.rows["end"] >= start["time"]) & (stored.rows["end"] < after)
        ]
        end = stops[0] if stops else (float(ends.max()) if len(ends) else start["time"])
        total += end - start["time"]
    return total


def plan(stored: StoredRun, settings: Settings, layout: Layout, space: Space) -> Plan:
    """Where a resumed session starts (see the module docstring)."""
    done = stored.n_done
    budget = settings.budget
    evaluations = None if budget.evaluations is None else budget.evaluations - done
    time_left = None if budget.time is None else budget.time - time_spent(stored)
    session = 1 + sum(e["kind"] == "resume" for e in stored.events)
    exhausted = (evaluations is not None and evaluations <= 0) or (
        time_left is not None and time_left <= 0
    )
    left = None if exhausted else Budget(evaluations=evaluations, time=time_left)
    ok = stored.rows[stored.rows["status"] == Status.OK]
    loss = settings.sign * ok["values"][:, 0]
    pools = {}
    for island in range(layout.n_islands):
        size = settings.strategy[island].create(space, layout.island_sizes[island]).pool_size
        mine = np.flatnonzero(ok["island"] % layout.n_islands == island)
        best = mine[np.argsort(loss[mine], kind="stable")[:size]]
        pools[island] = ok[best]
    rng_states = {w: s for w, s in stored.rng_states.items() if w < layout.n_workers and s}
    return Plan(session, stored.next_id, done, left, pools, rng_states)


def encode_plan(p: Plan) -> bytes:
    """Plan -> bytes for the broadcast: JSON header, newline, the pools' rows."""
    islands = sorted(p.pools)
    header = {
        "session": p.session,
        "next_id": p.next_id,
        "done": p.done,
        "budget": None if p.budget is None else [p.budget.evaluations, p.budget.time],
        "pool_sizes": [len(p.pools[i]) for i in islands],
        "rng_states": {str(w): s for w, s in p.rng_states.items()},
    }
    rows = b"".join(p.pools[i].tobytes() for i in islands)
    return json.dumps(header).encode() + b"\n" + rows


def decode_plan(data: bytes, dtype: np.dtype) -> Plan:
    head, _, raw = data.partition(b"\n")
    header = json.loads(head)
    rows = np.frombuffer(raw, dtype=dtype)
    edges = np.cumsum([0, *header["pool_sizes"]])
    pools = {i: rows[edges[i] : edges[i + 1]].copy() for i in range(len(header["pool_sizes"]))}
    budget = header["budget"]
    return Plan(
        session=header["session"],
        next_id=header["next_id"],
        done=header["done"],
        budget=None if budget is None else Budget(evaluations=budget[0], time=budget[1]),
        pools=pools,
        rng_states={int(w): s for w, s in header["rng_states"].items()},
    )
