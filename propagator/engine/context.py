"""What a rank knows about the search it takes part in, and the optional parts a session
plugs into a worker leader (the run store, progress display, stop requests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..settings import Settings
from ..space import Space
from ..store.checkpoints import Checkpoints
from .comm.groups import Comms
from .evaluation import Objective
from .layout import Layout
from .report_watch import ReportWatch


@dataclass(frozen=True)
class RunContext:
    """Everything a rank needs to take part in a search (the same on every rank of a worker)."""

    objective: Objective
    pass_trial: bool
    space: Space
    settings: Settings
    layout: Layout
    comms: Comms
    dtype: np.dtype
    worker: int
    island: int
    run_seed: int
    t0: float  # epoch seconds at the start of the search, shared by all ranks
    deadline: float | None  # time.perf_counter() after which no evaluation starts
    session: int = 0  # 0 for a new run, n for its n-th resumption
    run_dir: Path | None = None  # the run store, if any
    checkpoints: Checkpoints | None = None  # where trial.save writes (always set by run)

    @cached_property
    def report_watch(self) -> ReportWatch:
        """This rank's warnings about the objective's reports, for the whole session."""
        return ReportWatch(self.settings.objectives[0], self.settings.directions[0])


class Sink(Protocol):
    """Where a leader writes each finished evaluation (the run store), see ``WorkerSink``."""

    def append(
        self,
        row: np.void,
        metrics: dict[str, Any] | None,
        error: str | None,
        reports: list[tuple[int, float]],
    ) -> None: ...

    def consolidate(
        self, rows: np.ndarray, rng_states: list[dict[str, Any]], force: bool = False
    ) -> bool: ...

    def close(self, rows: np.ndarray, rng_states: list[dict[str, Any]]) -> None: ...


class Monitor(Protocol):
    """Shows progress on rank 0; called between evaluations with the run-wide counts."""

    def update(self, done: int, failed: int, best_loss: float) -> None: ...

    def close(self) -> None: ...


@dataclass
class LeaderOptions:
    """Optional parts of a leader's session.

    Attributes:
        sink: the run store writer (``None``: keep records in memory only).
        rng_states: bit-generator states of the breeding and migration streams to continue.
        should_stop: polled between evaluations; ``True`` stops the whole search (signals).
        monitor: progress display (rank 0).
        initial: genes of the configurations to evaluate first (the ``initial`` ones not yet
            stored), one row each: the ids from ``first_id`` on are theirs.
        first_id: the session's first evaluation id.
        stored: the island's records of earlier sessions (paused trainings are taken over).
    """

    sink: Sink | None = None
    rng_states: list[dict[str, Any]] | None = None
    should_stop: Callable[[], bool] | None = None
    monitor: Monitor | None = None
    initial: np.ndarray | None = None
    first_id: int = 0
    stored: np.ndarray | None = None


@dataclass(frozen=True)
class Session:
    """How this run of the engine fits into a longer search (the command line fills it in).

    Attributes:
        run_dir: run store directory; ``None`` keeps records in memory only.
        number: 0 for a new run, ``n`` for its ``n``-th resumption.
        next_id: first evaluation id (one past the largest stored id).
        islands: island -> stored records of earlier sessions to seed that island with.
        warm: records of another search to seed every island's pool and strategy with (a
            warm start; not records of this run).
        rng_states: worker -> stored breeding/migration RNG states to continue.
        should_stop: polled between evaluations on every leader (signals).
        monitor: builds rank 0's progress display from the evaluation budget.
    """

    run_dir: Path | None = None
    number: int = 0
    next_id: int = 0
    islands: Mapping[int, np.ndarray] = field(default_factory=dict)
    warm: np.ndarray | None = None
    rng_states: Mapping[int, list[dict[str, Any]]] = field(default_factory=dict)
    should_stop: Callable[[], bool] | None = None
    monitor: Callable[[int | None], Monitor] | None = None
