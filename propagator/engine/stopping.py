"""Stopping an evaluation early, from inside it: what ``trial.should_stop()`` asks.

The worker's first rank applies the rules: the pruner at each rung of its bracket the first repeat
of an evaluation reaches (see :mod:`propagator.pruners`; later repeats are of a candidate that
passed every rung it reached; a resumed training is judged from the rung after its pause), the
search's step budget, and the time limit of one evaluation (``trial_timeout``). A pruner that
promotes pauses instead of stopping (the reason starts with "paused", see :attr:`Trial.paused`); the
worker keeps the paused training (:mod:`.promotion`). Every rank of the worker gets the same answer
through its :class:`~.crew.Crew`, so ranks that train inside collectives stop at the same step. With
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

from ..pruners import RUNGS, PrunerSpec, RungView
from .comm.tickets import TicketCounter
from .context import RunContext
from .crew import Crew
from .evaluation import PAUSED_PREFIX, TIME_LIMIT_PREFIX, Trial
from .records import Status

_OUT_OF_STEPS = "the search's step budget is spent"
_OK = int(Status.OK)


def stopping_active(ctx: RunContext) -> bool:
    """Whether evaluations may be stopped early in this search (the same on every rank)."""
    s = ctx.settings
    return (
        s.pruner is not None
        or s.budget.steps is not None
        or s.trial_timeout is not None
        or s.pbt is not None
    )


class Rungs:
    """The losses the island's evaluations had at each rung of their bracket, as this worker
    knows them, and the best complete evaluation's loss and last step.

    Args:
        pruner: the pruner (its rungs' steps, its brackets).
        sign: +1 when minimising, -1 when maximising.
        seed: the run seed (it draws each evaluation's bracket).
    """

    def __init__(self, pruner: PrunerSpec, sign: float, seed: int) -> None:
        self.pruner = pruner
        self.steps = pruner.steps()
        self.sign = sign
        self.horizon: int | None = None  # the last step of the longest complete evaluation
        self.incumbent: float | None = None  # the best loss of a complete evaluation
        self._seed = seed
        self._losses = [[[] for _ in range(RUNGS)] for _ in range(pruner.brackets)]
        self._sorted: dict[tuple[int, int], np.ndarray] = {}  # (bracket, rung) -> sorted losses
        self._learned: dict[int, int] = {}  # id -> rungs taken in (a resumed one adds more)

    def bracket(self, record_id: int) -> int:
        return self.pruner.bracket(record_id, self._seed)

    def learn(self, rows: np.ndarray) -> None:
        """Add the rung values of records (each value once: immigrants may come again, and a
        paused training's record comes again, with more rungs, when it is resumed)."""
        for row in rows:
            record_id = int(row["id"])
            values = row["rungs"]
            reached = int(np.count_nonzero(np.isfinite(values)))
            learned = self._learned.get(record_id, 0)
            if reached > learned:
                self._learned[record_id] = reached
                bracket = self.bracket(record_id)
                rungs = self._losses[bracket]
                for k in range(max(learned, bracket), reached):
                    rungs[k].append(self.sign * float(values[k]))
                    self._sorted.pop((bracket, k), None)
            if row["status"] == _OK:
                self._complete(int(row["step"]), self.sign * float(row["values"][0]))

    def _complete(self, step: int, loss: float) -> None:
        if math.isfinite(loss) and (self.incumbent is None or loss < self.incumbent):
            self.incumbent = loss
        if step > 0 and (self.horizon is None or step > self.horizon):
            self.horizon = step

    def at(self, bracket: int, k: int) -> np.ndarray:
        return np.array(self._losses[bracket][k])

    def sorted_at(self, bracket: int, k: int) -> np.ndarray:
        """The losses at rung ``k`` of ``bracket``, sorted (kept until the rung grows)."""
        key = (bracket, k)
        if key not in self._sorted:
            self._sorted[key] = np.sort(self.at(bracket, k))
        return self._sorted[key]

    def view(
        self,
        loss: float,
        bracket: int,
        rung: int,
        reports: list[tuple[int, float]],
        counted: bool = False,
    ) -> RungView:
        """What the pruner judges an evaluation by at a rung of its bracket; ``counted``: its
        own loss is among the rung's (a paused training's), and is left out of the others."""
        others = self.at(bracket, rung)
        if counted:
            others = np.delete(others, np.flatnonzero(others == loss)[:1])
        steps = np.array([s for s, _ in reports], dtype=float)
        losses = self.sign * np.array([v for _, v in reports], dtype=float)
        return RungView(loss, others, steps, losses, self.horizon, self.incumbent)


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
        self._first_rung = 0  # the first rung the candidate is judged at
        self._next_rung = 0
        self._bracket = 0
        # rung, step, value to judge; whether the step is between rungs (``pruner.goes_on``)
        self._pending: tuple[int, int, float, bool] | None = None
        self._prunes = False  # the pruner judges this repeat
        self._reserved = False  # a step of the budget is reserved for the next report
        self._out_of_steps = False
        self.budget_spent = False  # the step budget ran out (then no evaluation starts)
        self.paused_at: tuple[int, int, float] | None = None  # bracket, rung, loss of a pause
        self._last_step = 0
        self._segment_end: int | None = None  # PBT: the step a segment pauses at

    def candidate(self, record_id: int, reports: list[tuple[int, float]]) -> None:
        """The next candidate is ``record_id``, resumed after ``reports`` (a paused training)
        or new (none): it is judged from its bracket's first rung, or from the rung after
        the one it was paused at."""
        last = reports[-1][0] if reports else 0
        self._last_step = last
        self._segment_end = None
        if self._rungs is None:
            return
        self._bracket = self._rungs.bracket(record_id)
        passed = int(np.count_nonzero(self._rungs.steps <= last))
        self._first_rung = max(self._bracket, passed)

    def pause_at(self, step: int | None) -> None:
        """PBT: the candidate (a segment) pauses once it has reported ``step`` (``None``:
        it trains to its end)."""
        self._segment_end = step

    def start(self, repeat: int) -> str | None:
        """A repeat begins: ``None``, or why it must not (the step budget is spent)."""
        self._started = time.monotonic()
        self._next_rung = self._first_rung
        self._pending = None
        self.paused_at = None
        self._prunes = repeat == 0 and self._rungs is not None
        self._out_of_steps = False
        self._reserved = False
        return self._crew.tell(None if self._reserve() else _OUT_OF_STEPS)

    def reported(self, trial: Trial, step: int, value: float) -> None:
        if not self._reserved and not self._reserve():
            self._out_of_steps = True  # the step ran unreserved: the objective did not ask
        self._reserved = False
        self._last_step = step
        if not self._prunes:
            return
        steps = self._rungs.steps
        rung = self._next_rung
        while self._next_rung < RUNGS and step >= steps[self._next_rung]:
            self._pending = (self._next_rung, step, value, False)
            self._next_rung += 1
        if self._next_rung == rung and rung > self._bracket and self._rungs.pruner.between_rungs:
            self._pending = (rung - 1, step, value, True)

    def decide(self, trial: Trial) -> str | None:
        reason = self._reason(trial)
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

    def _reason(self, trial: Trial) -> str | None:
        if self._out_of_steps:
            return _OUT_OF_STEPS
        limit = self._ctx.settings.trial_timeout
        if limit is not None and time.monotonic() - self._started > limit:
            return f"{TIME_LIMIT_PREFIX} (trial_timeout = {limit:g} s) has passed"
        if self._segment_end is not None and self._last_step >= self._segment_end:
            return f"{PAUSED_PREFIX} by pbt at step {self._last_step}: its segment is done"
        if self._pending is None or self._rungs is None:
            return None
        rung, step, value, between = self._pending
        self._pending = None
        self._refresh()
        loss = self._ctx.settings.sign * value
        view = self._rungs.view(loss, self._bracket, rung, trial.reports)
        pruner = self._rungs.pruner
        if pruner.goes_on(view) if between else pruner.judge(view):
            return None
        if pruner.promotion:
            self.paused_at = (self._bracket, rung, loss)
            return f"{PAUSED_PREFIX} by {pruner.name} at step {step}: {pruner.why(view)}"
        return f"pruned by {pruner.name} at step {step}: {pruner.why(view)}"


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
