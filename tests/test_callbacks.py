"""``pg.search(..., callbacks=[...])``: every stored record passed once on rank 0, live with a
run directory (read from the workers' journals), at the end without one; a callback that
raises; the run-store tail under a frame being written; the TensorBoard logger's files."""

from __future__ import annotations

import json
import logging
import math
import struct
import time
from pathlib import Path

import pytest
from conftest import run_traced

import propagator as pg
from propagator.engine.callbacks import check_callbacks
from propagator.engine.records import Record
from propagator.errors import ConfigError
from propagator.loggers import TensorBoard
from propagator.store import read
from propagator.store.journal import frames
from propagator.store.tail import RunTail

SPACE = {"x": pg.Float(-1.0, 1.0), "y": pg.Float(-1.0, 1.0)}


def _plain(x: object) -> object:
    """``x`` as JSON carries it, NaN as ``None`` (NaN is not equal to itself)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _fields(record: Record) -> object:
    """A record's fields, for comparing records across processes."""
    return _plain(json.loads(json.dumps(record.__dict__)))


# --- under MPI: 4 ranks, 2 islands, a run directory --------------------------------------------
SCRIPT = """
import json, sys, time
from mpi4py import MPI
import propagator as pg

out, run_dir = sys.argv[1], sys.argv[2]


def objective(params, trial):
    time.sleep(0.1)  # the search lasts over a second: the callbacks are called meanwhile
    if params["x"] > 0.6:
        raise RuntimeError("too far")
    return params["x"] ** 2 + params["y"] ** 2


def remember(record):
    with open(out + "/calls.jsonl", "a") as f:
        call = {"rank": MPI.COMM_WORLD.rank, "time": time.time(), **record.__dict__}
        f.write(json.dumps(call) + "\\n")  # NaN as NaN, which json reads back


space = {"x": pg.Float(-1.0, 1.0), "y": pg.Float(-1.0, 1.0)}
pg.search(
    objective, space, budget=44, islands=2, strategy="ga", seed=7, run_dir=run_dir,
    confirm={"top": 2, "seeds": 2}, callbacks=[remember],
)
"""


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("callbacks_mpi")
    rc, out = run_traced(folder, SCRIPT, 4, [str(folder), str(folder / "run")], {})
    assert rc == 0, out
    calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
    return folder / "run", calls


@pytest.mark.mpi
def test_every_stored_record_is_passed_once_on_rank_0(mpi_run):
    run_dir, calls = mpi_run
    stored = pg.load(run_dir)
    assert len(stored) == 44 and stored.info.n_islands == 2
    assert {c["rank"] for c in calls} == {0}
    assert sorted(c["id"] for c in calls) == [r.id for r in stored.records]
    assert {c["island"] for c in calls} == {0, 1}  # the other island's records too
    assert sum(c["confirmation"] for c in calls) == 4  # the confirmations reach them
    assert any(c["status"] == "failed" and c["error"].startswith("Traceback") for c in calls)
    by_id = {
        c["id"]: _plain({k: v for k, v in c.items() if k not in ("rank", "time")}) for c in calls
    }
    assert [by_id[r.id] for r in stored.records] == [_fields(r) for r in stored.records]


@pytest.mark.mpi
def test_callbacks_are_called_while_the_search_runs(mpi_run):
    """The first call comes before the last evaluation ended: the store is followed live."""
    run_dir, calls = mpi_run
    last_end = float(read(run_dir).rows["end"].max())  # epoch seconds, as the call times
    first_call = min(c["time"] for c in calls)
    assert first_call < last_end, (first_call, last_end)


# --- in process ---------------------------------------------------------------------------------
def _objective(params: dict, trial: pg.Trial) -> float:
    trial.report(0, params["x"])
    if params["x"] > 0.7:
        raise RuntimeError("boom")
    return params["x"] ** 2 + params["y"] ** 2


def test_without_a_run_dir_the_records_come_at_the_end():
    calls: list[tuple[Record, float]] = []
    ended: list[float] = []

    def objective(params: dict, trial: pg.Trial) -> float:
        ended.append(time.time())
        return _objective(params, trial)

    result = pg.search(
        objective,
        SPACE,
        budget=20,
        strategy="ga",
        seed=1,
        callbacks=[lambda r: calls.append((r, time.time()))],
    )
    assert [_fields(r) for r, _ in calls] == [_fields(r) for r in result.records]  # id order
    assert min(t for _, t in calls) >= max(ended)


def test_a_resumed_search_passes_only_its_own_records(tmp_path):
    calls: list[int] = []
    run_dir = tmp_path / "run"
    pg.search(_objective, SPACE, budget=6, strategy="ga", seed=1, run_dir=run_dir)
    pg.search(
        _objective, SPACE, budget=10, strategy="ga", seed=1, run_dir=run_dir,
        callbacks=[lambda r: calls.append(r.id)],
    )  # fmt: skip
    assert sorted(calls) == [6, 7, 8, 9]


def test_a_raising_callback_is_reported_once_and_still_called(tmp_path, caplog, capsys):
    passed: list[int] = []
    after: list[int] = []

    def fragile(record: Record) -> None:
        passed.append(record.id)
        if record.id % 2 == 0:
            raise ValueError(f"cannot take {record.id}")

    with caplog.at_level(logging.WARNING, logger="propagate"):
        result = pg.search(
            _objective,
            SPACE,
            budget=16,
            strategy="ga",
            seed=2,
            run_dir=tmp_path / "run",
            callbacks=[fragile, lambda r: after.append(r.id)],
        )
    ids = [r.id for r in result.records]
    assert len(ids) == 16 and len(pg.load(tmp_path / "run")) == 16
    assert sorted(passed) == ids and sorted(after) == ids  # later records still came
    reports = [r for r in caplog.records if "callback" in r.getMessage()]
    assert len(reports) == 1, [r.getMessage() for r in reports]
    assert "fragile raised ValueError on record 0" in reports[0].getMessage()
    assert reports[0].exc_info is not None and reports[0].exc_info[0] is ValueError
    warned = [x for x in capsys.readouterr().err.splitlines() if "callback" in x]
    assert len(warned) == 1 and "fragile raised ValueError on record 0: cannot take 0" in warned[0]
    assert str(tmp_path / "run" / "logs" / "rank-00000.log") in warned[0]  # the traceback's


def test_a_record_larger_than_a_read_is_passed_whole(tmp_path):
    """A curve of 10,000 reports (some 200 kB): its journal frame spans several of the
    tail's reads."""

    def objective(params: dict, trial: pg.Trial) -> float:
        for step in range(10_000):
            trial.report(step, params["x"] / (step + 1))
        return params["x"] ** 2

    calls: list[Record] = []
    result = pg.search(
        objective, SPACE, budget=3, strategy="ga", seed=4, run_dir=tmp_path / "run",
        callbacks=[calls.append],
    )  # fmt: skip
    assert [r.intermediate for r in calls] == [r.intermediate for r in result.records]
    assert [len(r.intermediate) for r in calls] == [10_000] * 3


def test_the_tail_waits_for_a_frame_being_written(tmp_path):
    """A frame whose bytes are only partly there is read, once, when it is complete."""
    run_dir = tmp_path / "run"
    pg.search(lambda p: p["x"], SPACE, budget=2, strategy="ga", seed=5, run_dir=run_dir)
    tail = RunTail(run_dir)
    assert tail.read() == []  # what was stored before is not new
    journal = next((run_dir / "workers").glob("worker-*.journal"))
    end, payload = list(frames(journal.read_bytes()))[-1]
    frame = journal.read_bytes()[end - 8 - len(payload) : end]  # the last record's, again
    with open(journal, "ab") as f:
        f.write(frame[:20])
        f.flush()
        assert tail.read() == []
        f.write(frame[20:])
    again = tail.read()
    assert [r.id for r in again] == [pg.load(run_dir).records[-1].id]
    assert tail.read() == []


def test_callbacks_must_be_a_list_of_callables():
    assert check_callbacks(None) == ()
    with pytest.raises(ConfigError, match=r"a list of callables, e.g. \[print\]"):
        check_callbacks(print)
    with pytest.raises(ConfigError, match="3 is not"):
        check_callbacks([print, 3])


# --- the TensorBoard logger ---------------------------------------------------------------------
def _events(folder: Path) -> list:
    """Every event of the event files in ``folder`` (TFRecord framing: length, its CRC,
    the serialized Event, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (n,) = struct.unpack_from("<Q", data, pos)
            events.append(Event.FromString(data[pos + 12 : pos + 12 + n]))
            pos += 12 + n + 4
    return events


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for event in _events(folder):
        for value in event.summary.value:
            if not value.metadata.plugin_data.plugin_name:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def _record(rid: int, value: float, **kw) -> Record:
    fields = dict(
        id=rid, params={"lr": 0.01 * (rid + 1), "opt": "adam"}, value=value,
        metrics={"loss": value, "acc": 0.5} if math.isfinite(value) else {},
        status="ok" if math.isfinite(value) else "failed", error=None, island=0, worker=0,
        generation=rid, start=0.0, end=1.0,
    )  # fmt: skip
    return Record(**{**fields, **kw})


def test_tensorboard_writes_values_metrics_curves_and_params(tmp_path):
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    records = [
        _record(0, 0.5, intermediate=((1, 0.9), (2, 0.7), (3, 0.5))),
        _record(1, math.nan, error="Traceback ...\nRuntimeError: boom"),
        _record(2, 0.25, params={"lr": 0.03, "opt": "sgd", "layers": [2, 3]}),
    ]
    with TensorBoard(tmp_path / "tb") as tb:
        for record in records:
            tb(record)
    main = _scalars(tmp_path / "tb")
    assert main["value"] == [(0, 0.5), (2, 0.25)]  # the failed one left out
    assert main["metrics/loss"] == [(0, 0.5), (2, 0.25)]
    assert main["metrics/acc"] == [(0, 0.5), (2, 0.5)]
    assert sorted(p.name for p in (tmp_path / "tb").iterdir() if p.is_dir()) == [
        "eval-000000",
        "eval-000001",
        "eval-000002",
    ]
    first = _scalars(tmp_path / "tb" / "eval-000000")
    assert first["curve"] == [(1, pytest.approx(0.9)), (2, pytest.approx(0.7)), (3, 0.5)]
    assert first["hparams/value"] == [(0, 0.5)]
    sessions = [
        HParamsPluginData.FromString(v.metadata.plugin_data.content).session_start_info
        for e in _events(tmp_path / "tb" / "eval-000002")
        for v in e.summary.value
        if v.tag == "_hparams_/session_start_info"
    ]
    assert len(sessions) == 1
    hparams = sessions[0].hparams
    assert hparams["lr"].number_value == pytest.approx(0.03)
    assert hparams["opt"].string_value == "sgd" and hparams["layers"].string_value == "[2, 3]"


def test_tensorboard_as_a_search_callback(tmp_path):
    tb = TensorBoard(tmp_path / "tb")
    result = pg.search(_objective, SPACE, budget=8, strategy="ga", seed=3, callbacks=[tb])
    tb.close()
    ok = [r for r in result.records if r.ok]
    assert _scalars(tmp_path / "tb")["value"] == [(r.id, pytest.approx(r.value)) for r in ok]
    assert len(list((tmp_path / "tb").glob("eval-*"))) == 8


def test_tensorboard_without_tensorboardx_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'propagate\[tensorboard\]'"):
        TensorBoard(tmp_path)
