"""Following a running search's store: the records its workers journal from a moment on.

The search's callbacks (:mod:`propagator.engine.callbacks`) see every worker's records this
way, on rank 0, while the search runs: no record travels to rank 0 for them. A
:class:`RunTail` remembers how far it has read each journal, so a read costs what was added
since the last one (plus a small read per journal), not what the run holds; it reads with
plain reads, never a memory map, because a writer closing its journal shortens the file.
A frame being written as it is read fails its length or CRC check and is read next time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.records import Record
from ..results.result import Result, RunInfo
from ..space import Space
from .hdf5 import read_meta
from .journal import frames, session_start
from .load import objectives, stored_dtype
from .run_store import META, WORKERS

_WINDOW = 1 << 16  # bytes read at a time from a journal; its zero padding ends a read
_NO_INFO = RunInfo(0, 0, 0, 0, 0.0, False, 0, 0, 0, 0)  # a one-record Result's (unused)


@dataclass(frozen=True)
class _Place:
    """How far a journal has been read: the offset of its next frame, and the start time (epoch
    seconds) of the session its frames belong to."""

    offset: int = 0
    t0: float = 0.0


class RunTail:
    """The records stored in ``run_dir`` after the tail is made, each once, as they come.

    Args:
        run_dir: a run directory (its ``run.h5`` must exist).
    """

    def __init__(self, run_dir: Path) -> None:
        self._workers = Path(run_dir) / WORKERS
        meta, events = read_meta(Path(run_dir) / META)
        self._dtype = stored_dtype(meta)
        self._space = Space.from_dict(json.loads(meta["space"]))
        self._metric, self._direction = objectives(meta)
        starts = [e for e in events if e["kind"] in ("start", "resume")]
        self._origin = starts[0]["time"] if starts else float(meta.get("created", 0.0))  # load's
        self._places: dict[Path, _Place] = {}
        self._read()  # what is stored already is not new

    def read(self) -> list[Record]:
        """The records journaled since the last read, in the order they ended (times in
        seconds since the run started, as :func:`propagator.store.load` gives them). A paused
        training comes again when its resumption is stored, with the same id."""
        found = [_entry(payload, self._dtype, t0) for payload, t0 in self._read()]
        found.sort(key=lambda entry: (float(entry[0]["end"][0]), int(entry[0]["id"][0])))
        return [self._record(row, side) for row, side in found]

    def _read(self) -> list[tuple[bytes, float]]:
        """Every record frame's payload added since the last call, with its session's t0. A
        journal that cannot be read now is read from the same place next time."""
        found: list[tuple[bytes, float]] = []
        if not self._workers.is_dir():
            return found
        for path in sorted(self._workers.glob("worker-*.journal")):
            try:
                frames_read, self._places[path] = _read_journal(
                    path, self._places.get(path, _Place()), self._dtype.itemsize
                )
            except OSError:
                continue
            found += frames_read
        return found

    def _record(self, row: np.ndarray, side: dict) -> Record:
        """The :class:`Record` of one journaled row, as a loaded run would give it."""
        row = row.copy()
        row["start"] -= self._origin
        row["end"] -= self._origin
        rid = int(row["id"][0])
        metrics = {rid: side["m"]} if side.get("m") else {}
        errors = {rid: side["e"]} if side.get("e") else {}
        reports = {rid: [tuple(p) for p in side["r"]]} if side.get("r") else {}
        one = Result(
            self._space, self._metric, self._direction, row, metrics, errors, reports, _NO_INFO
        )
        return one.records[0]


def _read_journal(path: Path, place: _Place, item: int) -> tuple[list[tuple[bytes, float]], _Place]:
    """The record frames (of ``item`` bytes or more) of ``path`` past ``place``, each with its
    session's t0, and the place after them."""
    found: list[tuple[bytes, float]] = []
    offset, t0, window = place.offset, place.t0, _WINDOW
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            data = os.pread(fd, window, offset)
            pos = 0
            for end, payload in frames(data):
                mark = session_start(payload)
                if mark is not None:
                    t0 = mark
                elif len(payload) >= item:
                    found.append((payload, t0))
                else:
                    break  # zero padding: nothing more yet
                pos = end
            offset += pos
            rest = len(data) - pos
            if len(data) < window or (rest and data.count(0, pos) == rest):
                return found, _Place(offset, t0)  # the end of the file, or of what is written
            # more past the window, or a frame running past it (or being written)
            window = window if pos else 2 * window
    finally:
        os.close(fd)


def _entry(payload: bytes, dtype: np.dtype, t0: float) -> tuple[np.ndarray, dict]:
    """A record frame's row (times made epoch seconds, as the store's reader does) and side
    data."""
    row = np.frombuffer(payload[: dtype.itemsize], dtype=dtype).copy()
    row["start"] += t0
    row["end"] += t0
    side = json.loads(payload[dtype.itemsize :]) if len(payload) > dtype.itemsize else {}
    return row, side
