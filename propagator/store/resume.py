"""Continuing a run from its store: what changed, what is left, where each island restarts.

* The search file may change only by a larger budget; any other change is refused with a diff.
* Budgets count what was done: evaluations already stored, and wall time of earlier sessions.
* Ids continue after the largest stored id, so they stay unique.
* Islands are rebuilt from the stored records: a record evaluated on old island ``j`` seeds
  new island ``j mod islands``: its pool (the best successful ones, up to the pool size), its
  strategy (told every record) and its set of evaluated configurations (never proposed again).
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

from ..engine.confirm import winners
from ..engine.layout import Layout
from ..engine.records import Kind, Status
from ..settings import Budget, Settings
from .run_store import StoredRun

_NO_TIME = 1e-9  # seconds: a time budget that ends the search at once


@dataclass(frozen=True)
class Plan:
    """What a session starts from (built on rank 0, broadcast to every rank).

    Attributes:
        session: 0 for a new run, ``n`` for its ``n``-th resumption.
        next_id: first evaluation id of this session.
        done: evaluations stored so far.
        seed: the run seed (stored with the run).
        budget: what is left of the budget; ``None`` when nothing is left.
        spent: which budget is spent (``"evaluations"``, ``"time"`` or ``"steps"``) when
            ``budget`` is None.
        time_spent: wall seconds of earlier sessions.
        steps_spent: steps reported by the stored evaluations.
        failed: stored evaluations that failed.
        first_error: the first stored failure's message.
        islands: island -> every stored record that seeds it (its pool, its strategy's
            history and its set of evaluated configurations).
        rng_states: worker -> stored breeding/migration RNG states to continue.
    """

    session: int
    next_id: int
    done: int
    seed: int
    budget: Budget | None
    spent: str | None = None
    time_spent: float = 0.0
    steps_spent: int = 0
    failed: int = 0
    first_error: str | None = None
    islands: dict[int, np.ndarray] = field(default_factory=dict)
    rng_states: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def _replays_left(rows: np.ndarray, settings: Settings) -> bool:
    """Whether a PBT run's winners still lack confirmations (see :mod:`..engine.confirm`)."""
    if settings.confirm is None:
        return False
    return any(left for *_, left in winners(rows, settings.confirm, settings.sign, None))


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
    for key in ("evaluations", "time", "steps"):
        before, after = old.get(key), new.get(key)
        if (before is None) != (after is None):
            return False
        if before is not None and after < before:
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


def plan(stored: StoredRun, settings: Settings, layout: Layout) -> Plan:
    """Where a resumed session starts (see the module docstring)."""
    rows = stored.rows
    replays = settings.pbt is not None  # PBT's confirmations follow the budget, outside it
    counted = rows[rows["kind"] != Kind.CONFIRMATION] if replays else rows
    done = len(counted)
    budget = settings.budget
    spent_time = time_spent(stored)
    spent_steps = sum(len(stored.reports.get(int(i), ())) for i in counted["id"])
    evaluations = None if budget.evaluations is None else budget.evaluations - done
    time_left = None if budget.time is None else budget.time - spent_time
    steps_left = None if budget.steps is None else budget.steps - spent_steps
    spent = None
    if evaluations is not None and evaluations <= 0:
        spent = "evaluations"
    elif time_left is not None and time_left <= 0:
        spent = "time"
    elif steps_left is not None and steps_left <= 0:
        spent = "steps"
    left = Budget(evaluations, time_left, steps_left) if spent is None else None
    if spent is not None and replays and _replays_left(rows, settings):
        # the search is over but a kill cut its confirmations: a session for them alone
        left, spent = Budget(time=_NO_TIME), None
    failed = rows["status"] == Status.FAILED
    first_error = None
    if failed.any():
        first_error = stored.errors.get(int(rows["id"][np.flatnonzero(failed)[0]]))
    return Plan(
        session=1 + sum(e["kind"] == "resume" for e in stored.events),
        next_id=stored.next_id,
        done=done,
        seed=int(stored.meta["seed"]),
        budget=left,
        spent=spent,
        time_spent=spent_time,
        steps_spent=spent_steps,
        failed=int(np.count_nonzero(failed)),
        first_error=first_error,
        islands={i: rows[rows["island"] % layout.n_islands == i] for i in range(layout.n_islands)},
        rng_states={w: s for w, s in stored.rng_states.items() if w < layout.n_workers and s},
    )


def encode_plan(p: Plan) -> bytes:
    """Plan -> bytes for the broadcast: JSON header, newline, the islands' rows."""
    islands = sorted(p.islands)
    header = {
        **{k: getattr(p, k) for k in ("session", "next_id", "done", "seed", "spent")},
        **{k: getattr(p, k) for k in ("time_spent", "steps_spent", "failed", "first_error")},
        "budget": None
        if p.budget is None
        else [p.budget.evaluations, p.budget.time, p.budget.steps],
        "island_sizes": [len(p.islands[i]) for i in islands],
        "rng_states": {str(w): s for w, s in p.rng_states.items()},
    }
    rows = b"".join(p.islands[i].tobytes() for i in islands)
    return json.dumps(header).encode() + b"\n" + rows


def decode_plan(data: bytes, dtype: np.dtype) -> Plan:
    head, _, raw = data.partition(b"\n")
    header = json.loads(head)
    rows = np.frombuffer(raw, dtype=dtype)
    sizes = header.pop("island_sizes")
    edges = np.cumsum([0, *sizes])
    budget = header.pop("budget")
    return Plan(
        **{k: v for k, v in header.items() if k != "rng_states"},
        budget=None if budget is None else Budget(*budget),
        islands={i: rows[edges[i] : edges[i + 1]].copy() for i in range(len(sizes))},
        rng_states={int(w): s for w, s in header["rng_states"].items()},
    )
