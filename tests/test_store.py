"""The run store without MPI: journal framing, HDF5 consolidation, damage and repair."""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.engine.records import wire_dtype
from propagator.store import WorkerSink, read_run, worker_paths
from propagator.store.hdf5 import add_event, read_worker_file, write_meta
from propagator.store.journal import JournalWriter, read_journal

SPACE = pg.Space({"x": pg.Float(0, 1), "k": pg.Categorical(["a", "b"])})
DTYPE = wire_dtype(SPACE.dim)


def _row(i: int, status: int = 0) -> np.void:
    row = np.zeros(1, DTYPE)
    row["id"], row["worker"], row["status"] = i, 0, status
    row["values"], row["genes"] = float(i), (i % 10 / 10, 0.25)
    row["start"], row["end"] = i, i + 0.5
    return row[0]


def _run_dir(tmp: Path) -> Path:
    write_meta(
        tmp / "run.h5", {"space": json.dumps(SPACE.to_dict()), "seed": 1, "direction": "minimize"}
    )
    add_event(tmp / "run.h5", 0, "start", "")
    return tmp


class _Sink:
    """A WorkerSink with the rows it was given, as the leader's log keeps them."""

    def __init__(self, tmp: Path) -> None:
        self.sink = WorkerSink(tmp, 0, DTYPE, SPACE, t0=1000.0, consolidate_every=1e9)
        self.rows = np.zeros(0, DTYPE)
        self.stored = 0

    def consolidate(self, states: list) -> None:
        assert self.sink.consolidate(self.rows[self.stored :], states, force=True)
        self.stored = len(self.rows)

    def close(self, states: list) -> None:
        self.sink.close(self.rows[self.stored :], states)


def _sink_with(tmp: Path, n: int, consolidate_at: int | None = None) -> _Sink:
    s = _Sink(tmp)
    for i in range(n):
        error = "ValueError: boom" if i % 5 == 4 else None
        metrics = {"loss": float(i), "acc": 0.5} if error is None else None
        row = _row(i, 1 if error else 0)
        s.rows = np.append(s.rows, row[None])
        s.sink.append(row, metrics, error, [(0, 1.0)])
        if consolidate_at is not None and i + 1 == consolidate_at:
            s.consolidate([{"s": i}, {"m": i}])
    return s


def test_sink_round_trip_through_hdf5_and_journal(tmp_path):
    run_dir = _run_dir(tmp_path)
    sink = _sink_with(run_dir, 30, consolidate_at=12)  # 12 in HDF5, 18 in the journal only
    stored = read_run(run_dir, DTYPE)
    assert stored.rows["id"].tolist() == list(range(30))
    assert stored.rows["start"][0] == 1000.0  # times made absolute
    assert stored.errors[4] == "ValueError: boom" and 5 not in stored.errors
    assert stored.metrics[3] == {"loss": 3.0, "acc": 0.5}
    assert stored.reports[7] == [(0, 1.0)]
    assert stored.rng_states[0] == [{"s": 11}, {"m": 11}]  # as of the last HDF5 update
    sink.close([{"s": 29}, {"m": 29}])
    rows, text, states = read_worker_file(worker_paths(run_dir, 0)[1])
    assert len(rows) == 30 and states == [{"s": 29}, {"m": 29}]
    assert text["errors"][4] == "ValueError: boom" and text["errors"][3] == ""
    with h5py.File(worker_paths(run_dir, 0)[1]) as f:
        x, k = f["params"]["x"][...], f["params"]["k"][...]
        choices = json.loads(f["params"]["k"].attrs["choices"])
    for i, genes in enumerate(rows["genes"]):
        assert {"x": x[i], "k": choices[k[i]]} == SPACE.decode(genes)


def test_damaged_hdf5_file_is_reported_rebuilt_from_the_journal_and_set_aside(tmp_path):
    run_dir = _run_dir(tmp_path)
    _sink_with(run_dir, 20).close([])
    h5 = worker_paths(run_dir, 0)[1]
    h5.write_bytes(h5.read_bytes()[:3000])  # a crash in the middle of an HDF5 update
    stored = read_run(run_dir, DTYPE)
    assert any("damaged" in p for p in stored.problems)
    assert stored.rows["id"].tolist() == list(range(20))
    repaired = read_run(run_dir, DTYPE, repair=True)
    assert len(repaired.rows) == 20
    assert len(list(h5.parent.glob("worker-00000.h5.damaged-*"))) == 1
    again = read_run(run_dir, DTYPE)  # the set-aside file is not mistaken for a worker
    assert again.problems == [] and len(again.rows) == 20
    assert len(read_worker_file(h5)[0]) == 20


def test_journal_tail_cut_by_a_crash_is_dropped_and_truncated_before_appending(tmp_path):
    path = tmp_path / "w.journal"
    writer = JournalWriter(path, DTYPE)
    for i in range(5):
        writer.append(_row(i), {"m": {"loss": i}})
    writer.close()
    path.write_bytes(path.read_bytes()[:-7])
    contents = read_journal(path, DTYPE)
    assert contents.rows["id"].tolist() == [0, 1, 2, 3] and contents.dropped_bytes > 0
    writer = JournalWriter(path, DTYPE)
    writer.append(_row(9), None)
    writer.close()
    again = read_journal(path, DTYPE)
    assert again.rows["id"].tolist() == [0, 1, 2, 3, 9] and again.dropped_bytes == 0
    assert len(list(tmp_path.glob("w.journal.damaged-*"))) == 1  # the damaged original is kept


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0, max_value=10_000)
)
def test_any_cut_or_flipped_byte_leaves_an_intact_prefix(tmp_path, cut, flip):
    path = tmp_path / f"j-{time.perf_counter_ns()}.journal"
    writer = JournalWriter(path, DTYPE)
    for i in range(20):
        writer.append(_row(i), {"e": "x" * (i % 7)} if i % 3 else None)
    writer.close()
    data = bytearray(path.read_bytes())
    data = data[: cut % (len(data) + 1)]
    if data:
        data[flip % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))
    ids = read_journal(path, DTYPE).rows["id"].tolist()
    assert ids == list(range(len(ids)))  # always a prefix, never garbage
