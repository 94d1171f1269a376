"""Stopping an evaluation early, from inside it: what ``trial.should_stop()`` asks.

The worker's first rank applies the rules: the pruner at each rung the first repeat of an
evaluation reaches (see :mod:`propagator.pruners`; later repeats are of a candidate that
passed every rung it reached), the search's step budget, and the time limit of one evaluation
(``trial_timeout``). Every rank of the worker gets the same answer through its
:class:`~.crew.Crew`, so ranks that train inside collectives stop at the same step. With
neither a pruner, a step budget nor a time limit no trial gets a stopping channel and
``should_stop`` costs nothing.

A step of the step budget is reserved before it runs: when a repeat starts, and at each
``should_stop`` that lets the evaluation go on; each ``trial.report`` spends the reservation
(or reserves its step then, for an objective that does not ask). A reservation left unspent
when the objective returns is given back. So the steps stored never exceed the budget, however
many workers reach its end at once, as long as the objective asks ``should_stop`` between
steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ..pruners import RUNGS, PrunerSpec
from .comm.tickets import TicketCounter
from .context import RunContext
from .crew import Crew
from .evaluation import Trial

_OUT_OF_STEPS = "the search's step budget is spent"


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
    """The rules, on a worker's first rank; the answers reach the other ranks through ``crew``.

    Args:
        ctx: the rank's context.
        counter: the run-wide counters (for the step budget).
        rungs: the island's rung losses (``None`` without a pruner).
        refresh: takes in the records that arrived meanwhile (so a long evaluation is judged
            against fresh rung values).
        crew: the worker's protocol.
    """

    def __init__(
        self,
        ctx: RunContext,
        counter: TicketCounter,
        rungs: Rungs | None,
        refresh: Callable[[], None],
        crew: Crew,
    ) -> None:
        self._ctx = ctx
        self._counter = counter
        self._rungs = rungs
        self._refresh = refresh
        self._crew = crew
        self._started = 0.0
        self._next_rung = 0
        self._pending: tuple[int, int, float] | None = None  # rung, step, value to judge
        self._prunes = False  # the pruner judges this repeat
        self._reserved = False  # a step of the budget is reserved for the next report
        self._out_of_steps = False
        self.budget_spent = False  # the step budget ran out (then no evaluation starts)

    def start(self, repeat: int) -> str | None:
        """A repeat begins: ``None``, or why it must not (the step budget is spent)."""
        self._started = time.monotonic()
        self._next_rung = 0
        self._pending = None
        self._prunes = repeat == 0 and self._rungs is not None
        self._out_of_steps = False
        self._reserved = False
        return self._crew.tell(None if self._reserve() else _OUT_OF_STEPS)

    def reported(self, trial: Trial, step: int, value: float) -> None:
        if not self._reserved and not self._reserve():
            self._out_of_steps = True  # the step ran unreserved: the objective did not ask
        self._reserved = False
        if not self._prunes:
            return
        steps = self._rungs.steps
        while self._next_rung < RUNGS and step >= steps[self._next_rung]:
            self._pending = (self._next_rung, step, value)
            self._next_rung += 1

    def decide(self, trial: Trial) -> str | None:
        reason = self._reason()
        if reason is None and not self._reserved and not self._reserve():
            reason = _OUT_OF_STEPS
        return self._crew.tell(reason)

    def finish(self) -> None:
        """The repeat has ended: give back a step reserved for a report that never came."""
        if self._reserved:
            self._counter.return_step()
            self._reserved = False

    def _reserve(self) -> bool:
        if self._ctx.settings.budget.steps is None:
            return True
        self._reserved = self._counter.claim_step()
        self.budget_spent |= not self._reserved
        return self._reserved

    def _reason(self) -> str | None:
        if self._out_of_steps:
            return _OUT_OF_STEPS
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
    """The other ranks of a worker: the first rank's answers, through ``crew``."""

    def __init__(self, crew: Crew) -> None:
        self._crew = crew

    def start(self, repeat: int) -> str | None:
        return self._crew.tell(None)

    def reported(self, trial: Trial, step: int, value: float) -> None:
        """Nothing: the first rank counts and judges."""

    def decide(self, trial: Trial) -> str | None:
        return self._crew.tell(None)

    def finish(self) -> None:
        """Nothing: the first rank holds the reservations."""
