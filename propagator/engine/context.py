"""What a rank knows about the search it takes part in, and the optional parts a session
plugs into a worker leader (the run store, progress display, stop requests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..settings import Settings
from ..space import Space
from .comm.groups import Comms
from .evaluation import Objective
from .layout import Layout


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


@dataclass
class LeaderOptions:
    """Optional parts of a leader's session.

    Attributes:
        sink: the run store writer (``None``: keep records in memory only).
        pool_rows: records to seed the island pool with (a resumed run).
        rng_states: bit-generator states of the breeding and migration streams to continue.
        should_stop: polled between evaluations; ``True`` stops the whole search (signals).
        monitor: progress display (rank 0).
    """

    sink: Sink | None = None
    pool_rows: np.ndarray | None = None
    rng_states: list[dict[str, Any]] | None = None
    should_stop: Callable[[], bool] | None = None
    monitor: Monitor | None = None
