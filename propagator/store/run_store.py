"""A run directory: the writers each leader uses, and reading a run back.

Contract:
* Each worker leader is the only writer of ``workers/worker-NNNNN.{journal,h5}``; rank 0 is the
  only writer of ``run.h5``. No file is ever shared between writers, so serial h5py suffices.
* Every finished evaluation is appended to the leader's journal before the next one starts
  (one ``write`` call): a kill -9 of the whole job loses only evaluations in flight.
* The HDF5 worker file is the journal's consolidated, documented view; it is brought up to
  date every ``consolidate_every`` seconds, at the end of a session, and when a run is
  resumed. Readers merge both, so a running or crashed run reads complete.
* RNG states are saved with each HDF5 update: after a kill -9 a worker continues its streams
  from the last update (seconds old), not from its very last draw.
* Records are immutable once written; ids are unique across the run and all its sessions.
* Nothing in a run directory is unpickled or executed when it is read.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.records import latest
from ..space import Space
from .hdf5 import append_worker_rows, read_meta, read_worker_file
from .journal import JournalContents, JournalWriter, read_journal

META = "run.h5"
WORKERS = "workers"


def worker_paths(run_dir: Path, worker: int) -> tuple[Path, Path]:
    """(journal, HDF5 file) of a worker."""
    stem = Path(run_dir) / WORKERS / f"worker-{worker:05d}"
    return stem.with_suffix(".journal"), stem.with_suffix(".h5")


def follower_journal(run_dir: Path, worker: int, rank: int) -> Path:
    """The journal in which rank ``rank`` (> 0) of ``worker`` records the failure that made it
    stop the job (see :mod:`propagator.engine.follower`); readers merge it into the worker's."""
    return Path(run_dir) / WORKERS / f"worker-{worker:05d}.rank-{rank}.journal"


class WorkerSink:
    """What a leader writes its records through (see the module contract).

    Args:
        run_dir: the run directory.
        worker: this leader's worker index.
        dtype: the wire dtype.
        space: the search space (to store params next to the genes).
        t0: epoch seconds at which this session's relative times start.
        consolidate_every: seconds between HDF5 updates.
    """

    def __init__(
        self,
        run_dir: Path,
        worker: int,
        dtype: np.dtype,
        space: Space,
        t0: float,
        consolidate_every: float = 2.0,
    ) -> None:
        self._journal_path, self._h5_path = worker_paths(run_dir, worker)
        self._journal_path.parent.mkdir(parents=True, exist_ok=True)
        self._journal = JournalWriter(self._journal_path, dtype)
        self._journal.start_session(t0)
        self._worker = worker
        self._space = space
        self._t0 = t0
        self._every = consolidate_every
        self._side: dict[int, dict[str, Any]] = {}
        self._last = time.perf_counter()

    def append(
        self,
        row: np.void,
        metrics: dict[str, Any] | None,
        error: str | None,
        reports: list[tuple[int, float]],
    ) -> None:
        """Journal one finished evaluation (before the next one starts)."""
        side = None
        if metrics is not None or error is not None or reports:
            side = {"m": metrics, "e": error, "r": reports}
            self._side[int(row["id"])] = side
        self._journal.append(row, side)

    def consolidate(
        self, rows: np.ndarray, rng_states: list[dict[str, Any]], force: bool = False
    ) -> bool:
        """Append ``rows`` (journaled since the last call that returned ``True``) to the HDF5
        file if ``consolidate_every`` has passed or ``force``; returns whether it did."""
        now = time.perf_counter()
        if not len(rows) or (not force and now - self._last < self._every):
            return False
        rows = rows.copy()
        rows["start"] += self._t0
        rows["end"] += self._t0
        append_worker_rows(self._h5_path, self._worker, rows, self._space, self._side, rng_states)
        self._side.clear()
        self._last = now
        return True

    def close(self, rows: np.ndarray, rng_states: list[dict[str, Any]]) -> None:
        """Write what is left and close the journal."""
        self.consolidate(rows, rng_states, force=True)
        self._journal.close()


@dataclass
class StoredRun:
    """Everything a run directory holds.

    Attributes:
        meta: ``run.h5`` attributes (config, space, seed, ...).
        events: start/stop/resume events.
        rows: every record (wire rows, times in epoch seconds), ordered by id.
        metrics, errors, reports: side data by id.
        rng_states: each worker's RNG states at its last HDF5 update.
        problems: what was damaged and how it was handled, for the user.
    """

    meta: dict[str, Any]
    events: list[dict[str, Any]]
    rows: np.ndarray
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    reports: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    rng_states: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def space(self) -> Space:
        return Space.from_dict(json.loads(self.meta["space"]))

    @property
    def n_done(self) -> int:
        return len(self.rows)

    @property
    def next_id(self) -> int:
        return int(self.rows["id"].max()) + 1 if len(self.rows) else 0


def read_run(run_dir: Path, dtype: np.dtype, repair: bool = False) -> StoredRun:
    """Read a run directory: every worker's HDF5 file merged with its journal.

    A worker file that cannot be read is reported and its records are taken from the journal
    alone; with ``repair`` it is moved aside and rebuilt from the journal, and records the
    journal has but the HDF5 file lacks (a crash before consolidation) are appended to it.
    """
    run_dir = Path(run_dir)
    meta, events = read_meta(run_dir / META)
    space = Space.from_dict(json.loads(meta["space"]))
    out = StoredRun(meta, events, np.zeros(0, dtype))
    parts: dict[int, tuple[np.ndarray, StoredRun]] = {}
    # A run killed between writing run.h5 and its first worker's file has no workers/ yet.
    files = (run_dir / WORKERS).iterdir() if (run_dir / WORKERS).is_dir() else ()
    names = (re.fullmatch(r"worker-(\d+)\.(h5|journal)", p.name) for p in files)
    for worker in sorted({int(m.group(1)) for m in names if m}):
        part = StoredRun(meta, events, np.zeros(0, dtype))
        parts[worker] = (_read_worker(run_dir, worker, dtype, space, part, repair), part)
        out.problems += part.problems
        out.rng_states.update(part.rng_states)
    out.rows = latest(np.concatenate([r for r, _ in parts.values()] or [out.rows]))
    # The side data of the row kept: a paused training may have been resumed by another
    # worker, in a later session.
    for record_id, worker in zip(out.rows["id"].tolist(), out.rows["worker"].tolist(), strict=True):
        part = parts[worker][1]
        for mine, theirs in ((out.metrics, part.metrics), (out.errors, part.errors)):
            if record_id in theirs:
                mine[record_id] = theirs[record_id]
        if record_id in part.reports:
            out.reports[record_id] = part.reports[record_id]
    return out


def _read_worker(
    run_dir: Path, worker: int, dtype: np.dtype, space: Space, out: StoredRun, repair: bool
) -> np.ndarray:
    journal_path, h5_path = worker_paths(run_dir, worker)
    rows = np.zeros(0, dtype)
    if h5_path.exists():
        try:
            rows, text, states = _read_settled(h5_path, dtype)
            _add_text(out, rows, text)
            if states:
                out.rng_states[worker] = states
        except (OSError, KeyError, ValueError) as exc:
            out.problems.append(f"{h5_path.name} is damaged ({exc}); using its journal")
            rows = np.zeros(0, dtype)
            if repair:
                h5_path.rename(h5_path.with_name(f"{h5_path.name}.damaged-{int(time.time())}"))
    journals = [journal_path] if journal_path.exists() else []
    journals += sorted(journal_path.parent.glob(f"{journal_path.stem}.rank-*.journal"))
    if not journals:
        return rows
    journal = _read_journals(journals, dtype, out)
    missing = journal.rows[~_settled(journal.rows, rows)]
    newer = set(missing["id"].tolist())  # a resumed training's record replaces its paused one's
    for record_id, side in journal.side.items():
        if record_id in newer:
            for store in (out.metrics, out.errors, out.reports):
                store.pop(record_id, None)
        if side.get("m"):
            out.metrics.setdefault(record_id, side["m"])
        if side.get("e"):
            out.errors.setdefault(record_id, side["e"])
        if side.get("r"):
            out.reports.setdefault(record_id, [tuple(p) for p in side["r"]])
    if repair and len(missing):
        states = out.rng_states.get(worker)
        append_worker_rows(h5_path, worker, missing, space, journal.side, states)
    return np.concatenate([rows, missing]) if len(missing) else rows


def _settled(journaled: np.ndarray, settled: np.ndarray) -> np.ndarray:
    """Which journaled rows the HDF5 file holds already: the same id and end (a paused
    training's id comes again with a later end when it is resumed)."""
    held = set(zip(settled["id"].tolist(), settled["end"].tolist(), strict=True))
    ids, ends = journaled["id"].tolist(), journaled["end"].tolist()
    return np.array([(i, e) in held for i, e in zip(ids, ends, strict=True)], dtype=bool)


def _read_journals(paths: list[Path], dtype: np.dtype, out: StoredRun) -> JournalContents:
    """The journals of one worker (its leader's and any follower's), merged."""
    parts = []
    for path in paths:
        journal = read_journal(path, dtype)
        if journal.dropped_bytes:
            out.problems.append(
                f"{path.name}: a damaged or cut-off tail of {journal.dropped_bytes} bytes "
                "was ignored (an evaluation in flight when the job was killed)"
            )
        parts.append(journal)
    merged = JournalContents(np.concatenate([j.rows for j in parts]))
    for journal in parts:
        merged.side.update(journal.side)
    return merged


def _read_settled(path: Path, dtype: np.dtype) -> tuple[np.ndarray, dict[str, list[str]], list]:
    """Read a worker file, retrying briefly: its writer may be in the middle of an update."""
    for delay in (0.05, 0.2, 0.5):
        try:
            return read_worker_file(path, dtype)
        except (OSError, KeyError, ValueError):
            time.sleep(delay)
    return read_worker_file(path, dtype)


def _add_text(out: StoredRun, rows: np.ndarray, text: dict[str, list[str]]) -> None:
    for row, metrics, error, reports in zip(
        rows, text["metrics"], text["errors"], text["reports"], strict=True
    ):
        record_id = int(row["id"])
        # in row order: a resumed training's record replaces its paused one's side data
        for store, value in (
            (out.metrics, json.loads(metrics) if metrics != "{}" else None),
            (out.errors, error or None),
            (out.reports, [tuple(p) for p in json.loads(reports)] if reports != "[]" else None),
        ):
            if value is None:
                store.pop(record_id, None)
            else:
                store[record_id] = value
