"""Evaluation records: the fixed-size numeric form that travels between ranks, and the
rich form (:class:`Record`) the user reads.

On the wire a record is one row of a numpy structured array whose size depends only on the
number of genes and objectives, never on the space definition or the returned metrics;
metrics, error messages and intermediate reports stay with the worker that produced them.
"""

from __future__ import annotations

import enum
import io
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np


class Status(enum.IntEnum):
    """Outcome of an evaluation."""

    OK = 0
    FAILED = 1
    PRUNED = 2
    PAUSED = 3  # stopped at a rung with its training saved: it may be resumed (promotion)


class Kind(enum.IntEnum):
    """Why a record row was sent."""

    EVALUATED = 0  # evaluated on the sender's island: for the island peers' pools
    IMMIGRANT = 1  # sent from another island: replaces the worst of the receiver's pool
    DEPARTED = 2  # migrated away (migration, not pollination): drop it from the pool
    STOP = 3  # leader -> worker ranks: no more candidates
    CONFIRMATION = 4  # a winner evaluated again on a fresh seed, after the search
    RESUMED = 5  # evaluated, after a pause: a promoted training (see Record.promoted)
    PENDING = 6  # leader -> island peers: a candidate it started to evaluate (never stored)


def wire_dtype(
    n_genes: int, n_rungs: int = 0, n_values: int = 1, lineage: bool = False
) -> np.dtype:
    """The structured dtype of one record on the wire (packed, native byte order).

    ``step`` is the last step the evaluation reported (-1: none); ``rungs`` its values at the
    pruner's rungs (see :mod:`propagator.pruners`), present only in searches with a pruner;
    ``parent`` and ``member`` a PBT segment's lineage (see :mod:`propagator.pbt`; -1: none),
    present only with ``lineage``.
    """
    fields = [
        ("id", np.int64),
        ("generation", np.int64),
        ("island", np.int32),
        ("worker", np.int32),
        ("owner", np.int32),  # worker responsible for emigrating it (migration mode)
        ("status", np.int8),
        ("kind", np.int8),
        ("step", np.int32),
        ("start", np.float64),
        ("end", np.float64),
        ("values", np.float64, (n_values,)),
        ("genes", np.float64, (n_genes,)),
    ]
    if n_rungs:
        fields.append(("rungs", np.float64, (n_rungs,)))
    if lineage:
        fields += [("parent", np.int64), ("member", np.int64)]
    return np.dtype(fields)


def latest(rows: np.ndarray) -> np.ndarray:
    """One row per id, ordered by id: the one that ended last (later in ``rows`` on a tie).
    A paused training's record is replaced so by the record of its resumption."""
    if len(rows) < 2:
        return rows
    order = np.lexsort((np.arange(len(rows)), rows["end"], rows["id"]))
    ids = rows["id"][order]
    last = np.append(ids[1:] != ids[:-1], True)
    return rows[order[last]]


@dataclass(frozen=True)
class Record:
    """One evaluation, as the user sees it.

    Attributes:
        id: unique in the run.
        params: the parameters the objective got (active ones only).
        value: the optimized metric (the first, with several); NaN when the evaluation failed.
        metrics: every value the objective returned (``{metric: value}`` for a float).
        status: ``"ok"``, ``"failed"``, ``"pruned"`` or ``"paused"`` (stopped at a rung with
            its training saved, or a PBT segment that ended; a later session with budget left
            may resume it).
        error: the failure message (with traceback) when failed, else ``None``.
        island: island index.
        worker: worker index (a worker is a group of ``ranks_per_worker`` ranks).
        generation: how many evaluations this worker had finished before this one.
        start: start time in seconds since the search started.
        end: end time in seconds since the search started.
        intermediate: ``(step, value)`` pairs the objective reported via ``trial.report``.
        step: the last step it reported (``None``: none); where a pruned evaluation stopped.
        confirmation: a winner evaluated again on a fresh seed after the search.
        values: every optimized metric's value, in the order of ``metric`` (``(value,)``
            with one).
        promoted: the training was paused at a rung and resumed later (ASHA's promotion).
        parent: PBT: the segment whose saved training this one continued (``None``: it
            started afresh, or no PBT).
        member: PBT: the member it trained, the id of that member's first segment
            (``None``: no PBT).
    """

    id: int
    params: dict[str, Any]
    value: float
    metrics: dict[str, float]
    status: str
    error: str | None
    island: int
    worker: int
    generation: int
    start: float
    end: float
    intermediate: tuple[tuple[int, float], ...] = field(default=())
    step: int | None = None
    confirmation: bool = False
    values: tuple[float, ...] = ()
    promoted: bool = False
    parent: int | None = None
    member: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def pruned(self) -> bool:
        """Stopped early (by the pruner, the step budget or ``pg.Pruned``)."""
        return self.status == "pruned"

    @property
    def paused(self) -> bool:
        """Paused at a rung, its training saved (see :attr:`status`)."""
        return self.status == "paused"

    @property
    def duration(self) -> float:
        """Evaluation time in seconds."""
        return self.end - self.start


SPILL_ROWS = 1 << 16  # rows a log holds in memory (4.8 MB of 74-byte rows); older ones on disk


@dataclass
class LocalLog:
    """Everything one worker evaluated: wire rows plus the side data that stays local.

    Rows live in a grow-by-doubling array of at most :data:`SPILL_ROWS` rows, so appending is
    amortised O(1). When it is full, its rows are appended to the log's spill file (an
    anonymous temporary file, gone when the process ends) and a new array starts: a worker's
    memory for its rows stays bounded however long it searches (74 bytes per row of a 2-gene
    search would be 37 MB per rank after 1,000,000 evaluations on 2 ranks), and the rows are
    read back when asked for (:meth:`since`), in full for the final result. The metrics dicts
    of dict-returning objectives, errors and reports stay in memory: the final result needs
    them, and a float-returning objective has none.
    """

    dtype: np.dtype
    rows: np.ndarray = field(init=False)  # the latest rows (the log's from `spilled` on)
    size: int = field(init=False, default=0)
    spilled: int = field(init=False, default=0)  # rows in the spill file, the log's first
    metrics: dict[int, dict[str, float]] = field(init=False, default_factory=dict)
    errors: dict[int, str] = field(init=False, default_factory=dict)
    reports: dict[int, list[tuple[int, float]]] = field(init=False, default_factory=dict)
    _file: BinaryIO | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.rows = np.zeros(64, dtype=self.dtype)

    def append(
        self,
        row: tuple,
        metrics: dict[str, Any] | None,
        error: str | None,
        reports: list[tuple[int, float]],
    ) -> np.void:
        """Append a record (a tuple in wire-field order) with its side data; returns the row."""
        held = self.size - self.spilled
        if held == len(self.rows):
            if held >= SPILL_ROWS:
                self._spill()
                held = 0
            else:
                grown = np.zeros(2 * len(self.rows), dtype=self.dtype)
                grown[:held] = self.rows
                self.rows = grown
        self.rows[held] = row
        i = row[0]
        # a resumed training's record replaces its paused one's side data too
        for side, value in ((self.metrics, metrics), (self.errors, error), (self.reports, reports)):
            if value:
                side[i] = value
            else:
                side.pop(i, None)
        self.size += 1
        return self.rows[held]

    def since(self, start: int) -> np.ndarray:
        """The rows from the ``start``-th on (a view when they are all in memory)."""
        held = self.rows[: self.size - self.spilled]
        if start >= self.spilled:
            return held[start - self.spilled :]
        return np.concatenate([self._read(start), held])

    def view(self) -> np.ndarray:
        """Every row."""
        return self.since(0)

    def _spill(self) -> None:
        """Append the rows in memory to the spill file; start a new array (rows handed out
        by :meth:`append` stay valid: they are views of the old one)."""
        if self._file is None:
            # open as long as the log; closed (and gone) with it
            self._file = tempfile.TemporaryFile(prefix="propagate-log-")  # noqa: SIM115
        self._file.seek(0, io.SEEK_END)
        self._file.write(self.rows.view(np.uint8))
        self.spilled += len(self.rows)
        self.rows = np.zeros(SPILL_ROWS, dtype=self.dtype)

    def _read(self, start: int) -> np.ndarray:
        """The spilled rows from the ``start``-th on."""
        out = np.zeros(self.spilled - start, dtype=self.dtype)
        self._file.seek(start * self.dtype.itemsize)
        self._file.readinto(out.view(np.uint8))
        return out
