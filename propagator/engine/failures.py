"""Telling a broken objective from a corner of the space where evaluations fail."""

from __future__ import annotations

import logging

from .comm.tickets import TicketCounter
from .evaluation import Outcome
from .records import Status

_log = logging.getLogger("propagate")


class FailureWatch:
    """Stops the search when a worker's first ``max_initial_failures`` evaluations all failed
    and nothing has succeeded anywhere (its island, or any worker of the run): the objective
    is broken, and burning the budget would only repeat its error.

    Args:
        worker: this worker's index.
        limit: ``max_initial_failures``.
        counter: the run-wide counters (they count workers with a success).
    """

    def __init__(self, worker: int, limit: int, counter: TicketCounter) -> None:
        self._worker = worker
        self._limit = limit
        self._counter = counter
        self._had_success = False  # this worker
        self.island_success = False  # this worker or one it heard from
        self._consecutive = 0
        self._first_error: str | None = None

    def broken(self, outcome: Outcome) -> str | None:
        """After an evaluation: the reason to stop everyone, when the objective looks broken
        (the run-wide stop is already requested then)."""
        if outcome.status != Status.FAILED:  # a pruned evaluation ran: the objective works
            if not self._had_success:
                self._had_success = self.island_success = True
                self._counter.note_success()
            self._consecutive = 0
            return None
        self._consecutive += 1
        self._first_error = self._first_error or outcome.error
        if self.island_success or self._consecutive < self._limit:
            return None
        if self._counter.any_success():
            self.island_success = True
            return None
        reason = (
            f"the first {self._consecutive} evaluations of worker {self._worker} failed and "
            f"none has succeeded anywhere; stopping the search. First error:\n{self._first_error}"
        )
        self._counter.stop()
        _log.error(reason)
        return reason
