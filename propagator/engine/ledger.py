"""A worker leader's bookkeeping: its records, the run store they go to, and the progress it
shares with the other workers (and rank 0's display)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .candidate import Evaluated, wire_row
from .comm.tickets import TicketCounter
from .context import Monitor, RunContext, Sink
from .evaluation import error_headline
from .records import Kind, LocalLog, Status

_log = logging.getLogger("propagate")
_EVALUATED = int(Kind.EVALUATED)


class Ledger:
    """Records one leader's evaluations (journaled before the next one starts), counts its
    failures and best loss, and publishes them every half second.

    Args:
        ctx: the rank's context.
        counter: the run-wide counters (progress is published there).
        sink: the run store writer (``None``: records in memory only).
        monitor: rank 0's progress display.
        rng_states: the worker's RNG states now (stored with each HDF5 update).
    """

    def __init__(
        self,
        ctx: RunContext,
        counter: TicketCounter,
        sink: Sink | None,
        monitor: Monitor | None,
        rng_states: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self._ctx = ctx
        self._counter = counter
        self._sink = sink
        self._monitor = monitor
        self._rng_states = rng_states
        self.log = LocalLog(ctx.dtype)
        self.n_failed = 0
        self.n_replaced = 0  # records that replaced a paused training's
        self.best_loss = np.inf
        self._published = (0, 0)  # evaluations and failures already published
        self._next_publish = 0.0
        self._stored = 0  # records of the log already in the store's HDF5 file

    def record(
        self,
        record_id: int,
        genes: np.ndarray,
        evaluated: Evaluated,
        kind: int = _EVALUATED,
        replaces: bool = False,
        lineage: tuple[int, int] = (-1, -1),
    ) -> np.void:
        """Log and journal a finished evaluation; returns its row. ``replaces``: the record of
        a paused training, recorded before (counted once); ``lineage``: a PBT segment's
        parent and member."""
        outcome, reports = evaluated.outcome, evaluated.reports
        status, value = int(outcome.status), outcome.value
        row = wire_row(
            self._ctx,
            record_id,
            self.log.size,
            status,
            evaluated.times,
            outcome.row_values,
            genes,
            reports,
            evaluated.judged,
            lineage,
        )
        row = self.log.append((*row[:6], kind, *row[7:]), outcome.metrics, outcome.error, reports)
        if self._sink is not None:
            self._sink.append(row, outcome.metrics, outcome.error, reports)
        self.n_replaced += replaces
        if outcome.status == Status.OK:
            self.best_loss = min(self.best_loss, self._ctx.settings.sign * value)
        elif outcome.status == Status.FAILED:
            self.n_failed += 1
            _log.warning("evaluation %d failed: %s", record_id, error_headline(outcome.error))
        else:
            _log.info("evaluation %d %s", record_id, outcome.error)
        return row

    def publish(self, force: bool = False) -> None:
        """Every half second (or ``force``): share progress counts, show them (rank 0), bring
        the store's HDF5 file up to date."""
        now = time.perf_counter()
        if not force and now < self._next_publish:
            return
        done, failed = self.log.size - self.n_replaced, self.n_failed
        if (done, failed) != self._published or force:
            self._counter.publish(
                done - self._published[0], failed - self._published[1], self.best_loss
            )
            self._published = (done, failed)
        if self._monitor is not None:
            self._monitor.update(*self._counter.progress())
        if self._sink is not None and self._sink.consolidate(self._unstored(), self._rng_states()):
            self._stored = self.log.size
        self._next_publish = now + 0.5

    def close(self) -> None:
        """Write what the store lacks and close it."""
        if self._sink is not None:
            self._sink.close(self._unstored(), self._rng_states())

    def restart(self, counter: TicketCounter, sink: Sink | None) -> None:
        """A new phase (the confirmations): a new log, counter and store writer."""
        self._counter, self._sink = counter, sink
        self.log, self._stored, self.n_replaced = LocalLog(self._ctx.dtype), 0, 0

    def _unstored(self) -> np.ndarray:
        """Records journaled but not yet in the HDF5 file."""
        return self.log.since(self._stored)
