"""Stopping an evaluation early, from inside it: what ``trial.should_stop()`` asks.

The worker's first rank applies the rules: the pruner at each rung the evaluation reaches
(see :mod:`propagator.pruners`), the search's step budget (each ``trial.report`` claims one
step from the run-wide counter), and the time limit of one evaluation (``trial_timeout``).
Every rank of the worker then gets the same answer through a broadcast on the engine's own
communicator, so ranks that train inside collectives stop at the same step. With neither a
pruner, a step budget nor a time limit no trial gets a stopping channel and ``should_stop``
costs nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ..pruners import RUNGS, PrunerSpec
from .comm.collect import broadcast_bytes
from .comm.tickets import TicketCounter
from .context import RunContext
from .evaluation import Trial


def stopping_active(ctx: RunContext) -> bool:
    """Whether evaluations may be stopped early in this search (the same on every rank)."""
    s = ctx.settings
    return s.pruner is not None or s.budget.steps is not None or s.trial_timeout is not None


class Rungs:
    """The losses the island's evaluations had at each rung, as this worker knows them.

    Args:
        pruner: the pruner (its rungs' steps).
        sign: +1 when minimising, -1 when maximising.
    """

    def __init__(self, pruner: PrunerSpec, sign: float) -> None:
        self.pruner = pruner
        self.steps = pruner.steps()
        self._sign = sign
        self._losses: list[list[float]] = [[] for _ in range(RUNGS)]
        self._seen: set[int] = set()

    def learn(self, rows: np.ndarray) -> None:
        """Add the rung values of records (each record once: immigrants may come again)."""
        for row in rows:
            record_id = int(row["id"])
            if record_id in self._seen:
                continue
            self._seen.add(record_id)
            for k, value in enumerate(row["rungs"]):
                if math.isfinite(value):
                    self._losses[k].append(self._sign * float(value))

    def at(self, k: int) -> np.ndarray:
        return np.array(self._losses[k])


class LeaderStopping:
    """The rules, on a worker's first rank, and the answer's broadcast to the other ranks.

    Args:
        ctx: the rank's context.
        counter: the run-wide counters (for the step budget).
        rungs: the island's rung losses (``None`` without a pruner).
        refresh: takes in the records that arrived meanwhile (so a long evaluation is judged
            against fresh rung values).
    """

    def __init__(
        self,
        ctx: RunContext,
        counter: TicketCounter,
        rungs: Rungs | None,
        refresh: Callable[[], None],
    ) -> None:
        self._ctx = ctx
        self._counter = counter
        self._rungs = rungs
        self._refresh = refresh
        self._started = 0.0
        self._next_rung = 0
        self._pending: tuple[int, int, float] | None = None  # rung, step, value to judge
        self._out_of_steps = False
        self.budget_spent = False  # the step budget ran out (then no evaluation starts)

    def start(self) -> None:
        """A new evaluation begins."""
        self._started = time.monotonic()
        self._next_rung = 0
        self._pending = None
        self._out_of_steps = False

    def reported(self, trial: Trial, step: int, value: float) -> None:
        if not self._counter.claim_step():
            self._out_of_steps = self.budget_spent = True
        rungs = self._rungs
        if rungs is None:
            return
        while self._next_rung < RUNGS and step >= rungs.steps[self._next_rung]:
            self._pending = (self._next_rung, step, value)
            self._next_rung += 1

    def decide(self, trial: Trial) -> str | None:
        reason = self._reason()
        if self._ctx.layout.ranks_per_worker > 1:
            broadcast_bytes(self._ctx.comms.worker, (reason or "").encode())
        return reason

    def _reason(self) -> str | None:
        if self._out_of_steps:
            return "the search's step budget is spent"
        limit = self._ctx.settings.trial_timeout
        if limit is not None and time.monotonic() - self._started > limit:
            return f"its time limit (trial_timeout = {limit:g} s) has passed"
        if self._pending is None or self._rungs is None:
            return None
        rung, step, value = self._pending
        self._pending = None
        self._refresh()
        loss, others = self._ctx.settings.sign * value, self._rungs.at(rung)
        pruner = self._rungs.pruner
        if pruner.keeps(loss, others):
            return None
        return f"pruned by {pruner.name} at step {step}: {pruner.explain(loss, others)}"


class FollowerStopping:
    """The other ranks of a worker: the first rank's answer, by broadcast."""

    def __init__(self, ctx: RunContext) -> None:
        self._comm = ctx.comms.worker

    def start(self) -> None:
        """Nothing: the first rank keeps the time."""

    def reported(self, trial: Trial, step: int, value: float) -> None:
        """Nothing: the first rank counts and judges."""

    def decide(self, trial: Trial) -> str | None:
        return broadcast_bytes(self._comm, None).decode() or None
