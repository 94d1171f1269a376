"""``Result.to_pandas()`` against the records (one and two objectives, conditions, pruned,
failed and confirmation rows, a PBT lineage), its columns against the CSV export's, and
``propagate export RUN -o -`` (CSV or JSON lines on stdout, a reader that goes away)."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import propagator as pg
from propagator.cli import main
from propagator.engine.evaluation import error_headline
from propagator.engine.records import wire_dtype
from propagator.errors import ConfigError
from propagator.results.result import Result, RunInfo
from propagator.strategies.pareto import nondominated

_MAIN = "import sys; from propagator.cli import main; sys.exit(main())"
SPACE = {
    "lr": pg.Float(1e-4, 1.0, log=True),
    "opt": pg.Categorical(["adam", "sgd"]),
    "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": "opt == 'sgd'"},
    "batch": pg.Constant(32),
}


def _objective(params: dict, trial: pg.Trial) -> dict:
    loss = abs(math.log10(params["lr"]) + 2) + params.get("momentum", 0.0)
    trial.report(0, 2 * loss)
    if params["lr"] > 0.3:
        raise RuntimeError(f"diverged at lr={params['lr']:.3g}\nsecond line")
    if params["opt"] == "sgd" and params["momentum"] > 0.6:
        raise pg.Pruned()
    trial.report(1, loss)
    return {"loss": loss, "acc": 1 / (1 + loss)}


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    run_dir = tmp_path_factory.mktemp("frame") / "run"
    result = pg.search(
        _objective,
        SPACE,
        budget=40,
        metric="loss",
        strategy="random",
        seed=11,
        confirm={"top": 1, "seeds": 2},
        run_dir=run_dir,
    )
    return result, run_dir


def _cell(x: object) -> object:
    """A frame cell as a comparable value: NaN and <NA> as None."""
    if x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return None
    return x.item() if isinstance(x, np.generic) else x


def test_one_row_per_evaluation_with_the_records_values(searched):
    result, _ = searched
    frame = result.to_pandas()
    assert list(frame.columns) == [
        *("id", "status", "value", "error", "island", "worker", "generation", "start", "end"),
        *("duration", "step", "confirmation", "promoted"),
        *("params_lr", "params_opt", "params_momentum", "params_batch"),
        *("metrics_loss", "metrics_acc"),
    ]
    assert len(frame) == len(result) == 40
    statuses = frame["status"].value_counts().to_dict()
    assert statuses["ok"] > 0 and statuses["failed"] > 0 and statuses["pruned"] > 0
    assert frame["confirmation"].sum() == 2
    for (_, row), r in zip(frame.iterrows(), result.records, strict=True):
        cells = {k: _cell(v) for k, v in row.items()}
        assert cells["id"] == r.id and cells["status"] == r.status
        assert cells["value"] == (None if math.isnan(r.value) else r.value)
        assert cells["error"] == (error_headline(r.error) if r.error else None)
        assert (cells["island"], cells["worker"], cells["generation"]) == (
            r.island,
            r.worker,
            r.generation,
        )
        assert (cells["start"], cells["end"], cells["duration"]) == (r.start, r.end, r.duration)
        assert cells["step"] == r.step and cells["confirmation"] == r.confirmation
        assert cells["promoted"] is False
        for name in SPACE:
            assert cells[f"params_{name}"] == r.params.get(name)  # None where inactive
        for name in ("loss", "acc"):
            assert cells[f"metrics_{name}"] == r.metrics.get(name)
    failed = frame[frame["status"] == "failed"]
    assert failed["error"].str.startswith("RuntimeError: diverged at lr=").all()
    assert failed["value"].isna().all() and failed["metrics_loss"].isna().all()
    adam = frame[frame["params_opt"] == "adam"]
    assert len(adam) and adam["params_momentum"].isna().all()
    assert frame[frame["status"] == "pruned"]["step"].eq(0).all()
    assert str(frame["step"].dtype) == "Int64"


def test_the_frame_and_the_csv_export_have_the_same_columns(searched, tmp_path):
    result, run_dir = searched
    out = tmp_path / "all.csv"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    with open(out, newline="") as f:
        header = next(csv.reader(f))
    renamed = [
        c.replace("params_", "param.").replace("metrics_", "metric.")
        for c in result.to_pandas().columns
        if c != "promoted"
    ]
    assert renamed == header


def test_several_objectives_get_a_column_each_and_their_front():
    def two(params: dict) -> dict:
        if params["x"] > 0.9:
            raise RuntimeError("no")
        return {"f1": params["x"], "f2": (1 - params["x"]) ** 2 + params["y"]}

    result = pg.search(
        two,
        {"x": pg.Float(0.0, 1.0), "y": pg.Float(0.0, 1.0)},
        budget=30,
        metric=["f1", "f2"],
        strategy="random",
        seed=2,
    )
    frame = result.to_pandas()
    columns = list(frame.columns)
    assert columns[:5] == ["id", "status", "value", "values_f1", "values_f2"]
    assert columns[-1] == "front" and str(frame["front"].dtype) == "Int64"
    np.testing.assert_array_equal(frame[["values_f1", "values_f2"]], result.objective_values)
    assert set(frame.loc[frame["front"] == 0, "id"]) == {r.id for r in result.pareto_front}
    assert frame.loc[frame["status"] == "failed", "front"].isna().all()
    ok = frame[frame["status"] == "ok"]
    rest = ok[ok["front"] > 0]  # the front of what is left is front 1
    second = rest[nondominated(rest[["values_f1", "values_f2"]].to_numpy())]
    assert set(second["id"]) == set(rest.loc[rest["front"] == 1, "id"]) and len(second)


def test_a_pbt_lineage_gives_parent_and_member_columns():
    space = pg.Space({"lr": pg.Float(0.0, 1.0)})
    rows = np.zeros(3, dtype=wire_dtype(1, n_values=1, lineage=True))
    rows["id"] = [0, 1, 2]
    rows["values"][:, 0] = [0.5, 0.4, 0.3]
    rows["genes"][:, 0] = [0.1, 0.2, 0.3]
    rows["parent"] = [-1, 0, 1]
    rows["member"] = [0, 0, 0]
    rows["step"] = [-1, 4, 8]
    info = RunInfo(0, 1, 1, 1, 0.0, False, 0, 0, 0, 0)
    frame = Result(space, None, "minimize", rows, {}, {}, {}, info).to_pandas()
    assert list(frame.columns[11:15]) == ["confirmation", "promoted", "parent", "member"]
    assert [_cell(x) for x in frame["parent"]] == [None, 0, 1]
    assert [_cell(x) for x in frame["member"]] == [0, 0, 0]
    assert [_cell(x) for x in frame["step"]] == [None, 4, 8]
    assert list(frame["metrics_value"]) == [0.5, 0.4, 0.3]


def test_without_pandas_the_error_says_what_to_install(searched, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(ConfigError, match=r"pip install 'propagate\[pandas\]'"):
        searched[0].to_pandas()


# --- export -o - ---------------------------------------------------------------------------------
def test_export_to_stdout_writes_only_the_rows(searched, tmp_path, capsys):
    _, run_dir = searched
    assert main(["export", str(run_dir), "-o", str(tmp_path / "all.csv")]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "-o", "-"]) == 0
    out = capsys.readouterr().out
    with open(tmp_path / "all.csv", newline="") as f:
        assert out == f.read()
    assert len(list(csv.DictReader(io.StringIO(out)))) == 40


def test_export_to_stdout_as_json_lines(searched, capsys):
    result, run_dir = searched
    assert main(["export", str(run_dir), "-o", "-", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [r.id for r in result.records]
    assert [r["params"] for r in rows] == [r.params for r in result.records]


def test_export_into_a_closed_pipe_ends_quietly(searched):
    _, run_dir = searched
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN, "export", str(run_dir), "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone, as with `| head` once it has its lines
    try:
        err = proc.stderr.read()
        rc = proc.wait(timeout=120)
    finally:
        proc.kill()
    assert rc == 0 and err == "", err
