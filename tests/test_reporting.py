"""The read-side commands: ``propagate report``, ``export``, ``plot`` and ``optuna``.

Run directories are made by real searches, in process (one MPI rank) or, for several islands,
under mpiexec; the commands are called through ``propagator.cli.main`` as a user would.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from propagator.cli import main
from propagator.engine.evaluation import error_headline
from propagator.results.plots import _running_best
from propagator.store import load

OBJECTIVE = """
import math


def train(params, trial):
    if params["opt"] == "sgd" and params["lr"] > 0.03:
        raise RuntimeError(f"loss diverged at lr={params['lr']:.3g}\\nsecond line")
    if params["depth"] > 6 and params["opt"] == "adam":
        raise MemoryError("out of memory")
    loss = (math.log10(params["lr"]) + 2.5) ** 2 + 0.1 * params["depth"]
    loss += params.get("momentum", 0.0)
    for step in range(3):
        trial.report(step, loss * (3 - step))
    return {"val_loss": loss, "accuracy": 1.0 / (1.0 + loss)}
"""
SEARCH = """
objective: {objective}:train
metric: val_loss
space:
  lr: {{type: float, low: 1.0e-5, high: 1.0, log: true}}
  depth: {{type: int, low: 1, high: 10}}
  opt: {{type: categorical, choices: [adam, sgd]}}
  momentum: {{type: float, low: 0.0, high: 0.99, when: "opt == 'sgd'"}}
  batch: 32
budget: {{evaluations: {evaluations}}}
islands: {islands}
seed: 3
run_dir: {run_dir}
"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = (
    "best_over_evaluations.png",
    "best_over_time.png",
    "values.png",
    "best_params.png",
    "curves.png",  # the objective reports
)


def _search_file(root: Path, name: str, evaluations: int, islands: int = 1) -> Path:
    objective = root / "objective.py"
    objective.write_text(OBJECTIVE)
    path = root / f"{name}.yaml"
    run_dir = root / name
    path.write_text(
        SEARCH.format(
            objective=objective, evaluations=evaluations, islands=islands, run_dir=run_dir
        )
    )
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished single-island run of 80 evaluations, some of them failed."""
    root = tmp_path_factory.mktemp("reporting")
    assert main(["run", str(_search_file(root, "flaky", 80))]) == 0
    return root / "flaky"


@pytest.fixture(scope="module")
def result(run_dir: Path):
    return load(run_dir)


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    assert main(["report", *args]) == 0
    return capsys.readouterr().out.splitlines()


def _section(lines: list[str], title: str) -> list[str]:
    """The lines of a report section, from its title line to the next blank line."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def _field(lines: list[str], name: str) -> str:
    return next(line[len(name) :].strip() for line in lines if line.startswith(name + " "))


# --- report --------------------------------------------------------------------------------------
def test_report_summary_matches_the_result(run_dir, result, capsys):
    lines = _report(capsys, str(run_dir))
    n_failed = result.n_failed
    assert 0 < n_failed < len(result) == 80
    assert _field(lines, "status") == "finished"
    assert _field(lines, "evaluations") == f"80 of 80 ({80 - n_failed} ok, {n_failed} failed)"
    assert _field(lines, "metric") == "val_loss (minimize)"
    assert _field(lines, "sessions") == "1"
    with h5py.File(run_dir / "run.h5", "r") as f:
        stop = f["events"][-1]
    assert stop["kind"] == b"stop"
    wall = json.loads(stop["detail"])["wall_time"]  # the session's own measure
    assert float(_field(lines, "wall time").split()[0]) == pytest.approx(wall, abs=0.006)
    rate = float(_field(lines, "throughput").split()[0])
    assert rate == pytest.approx(80 / wall, rel=0.006)  # printed to 3 digits
    best = result.best
    assert _field(lines, "best") == f"val_loss {best.value:.6g} (id {best.id}, island 0)"
    # 3 reports each and no pruner: nothing was stopped, so no savings are claimed
    assert _field(lines, "steps") == f"{3 * 80 - 3 * result.n_failed} reported"


def test_report_lists_the_best_configurations_in_order(run_dir, result, capsys):
    lines = _section(_report(capsys, str(run_dir), "--top", "3"), "best 3 ")
    assert lines[0] == f"best 3 of {np.count_nonzero(result.ok)} successful evaluations (minimize)"
    assert lines[1].split() == ["#", "val_loss", "id", "island", "lr", "depth", "opt", "momentum"]
    for rank, (line, record) in enumerate(zip(lines[2:5], result.top(3), strict=True), 1):
        cells = line.split()
        assert cells[:4] == [str(rank), f"{record.value:.6g}", str(record.id), "0"]
        assert float(cells[4]) == pytest.approx(record.params["lr"], rel=1e-5)
        assert cells[5:7] == [str(record.params["depth"]), record.params["opt"]]
        momentum = record.params.get("momentum")
        assert cells[7] == ("-" if momentum is None else f"{momentum:.6g}")
    assert lines[5] == "  constant: batch=32"


def test_report_islands_and_failures(run_dir, result, capsys):
    lines = _report(capsys, str(run_dir))
    islands = _section(lines, "islands")
    best_index = next(i for i, r in enumerate(result.records) if r.id == result.best.id)
    expected = ["0", "80", str(result.n_failed), f"{result.best.value:.6g}", str(result.best.id)]
    # the default strategy: a portfolio, of TPE too in a space with categories
    strategy = ["portfolio", "(ga,", "cmaes,", "tpe)"]
    assert islands[1].split()[-1] == "strategy"
    assert islands[2].split() == [*expected, str(best_index + 1), *strategy]

    failures = _section(lines, "failures")
    failed = [r for r in result.records if r.status == "failed"]
    diverged = [r for r in failed if "diverged" in r.error]
    oom = [r for r in failed if "MemoryError" in r.error]
    assert diverged and oom and len(diverged) + len(oom) == len(failed)
    assert failures[0] == f"failures: {len(failed)} (2 kinds)"
    rows = {line.split()[2].rstrip(":"): line.split() for line in failures[2:4]}
    # messages that differ only in numbers are one kind; the example is its first failure
    assert rows["RuntimeError"][:2] == [str(len(diverged)), str(diverged[0].id)]
    assert rows["MemoryError"][:2] == [str(len(oom)), str(oom[0].id)]
    counts = [int(line.split()[0]) for line in failures[2:4]]
    assert counts == sorted(counts, reverse=True)
    assert "Traceback" not in "\n".join(lines)


def test_report_errors_prints_full_messages(run_dir, result, capsys):
    out = "\n".join(_report(capsys, str(run_dir), "--errors"))
    assert out.count("Traceback (most recent call last):") == 2
    assert "second line" in out and "raise MemoryError" in out


@pytest.mark.parametrize(
    ("last_event", "status"),
    [
        (None, "running, or killed (no stop event after the last start)"),
        ("interrupted", "interrupted (run the search file again to resume)"),
    ],
)
def test_report_on_a_run_that_did_not_finish(run_dir, result, tmp_path, capsys, last_event, status):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with h5py.File(copy / "run.h5", "a") as f:
        events = f["events"]
        assert events[-1]["kind"] == b"stop"
        if last_event is None:  # as if still running: the last event is the start
            events.resize((len(events) - 1,))
        else:
            event = events[-1]
            event["kind"] = last_event
            events[-1] = event
    lines = _report(capsys, str(copy))
    assert _field(lines, "status") == status
    assert _field(lines, "evaluations").startswith("80 of 80")
    if last_event is None:  # the session's time runs to its last stored evaluation
        wall = float(_field(lines, "wall time").split()[0])
        assert wall == pytest.approx(max(r.end for r in result.records), abs=0.01)


def test_report_of_a_resumed_run_shows_its_sessions(tmp_path, capsys):
    search = _search_file(tmp_path, "resumed", 30)
    assert main(["run", str(search)]) == 0
    search.write_text(search.read_text().replace("evaluations: 30", "evaluations: 50"))
    assert main(["run", str(search)]) == 0
    lines = _report(capsys, str(tmp_path / "resumed"))
    assert _field(lines, "evaluations").startswith("50 of 50")
    assert _field(lines, "sessions") == "2"
    table = _section(lines, "  session ")
    assert table[0].split() == ["session", "began", "evaluations", "wall", "time", "ended"]
    assert [row.split()[0] for row in table[1:]] == ["0", "1"]
    assert [row.split()[3] for row in table[1:]] == ["30", "20"]
    assert [row.split()[-1] for row in table[1:]] == ["finished", "finished"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no run directory"),
        (lambda p: p, "is not a propagate run directory"),
    ],
)
def test_report_on_a_missing_or_foreign_directory_is_a_usage_error(tmp_path, capsys, make, message):
    assert main(["report", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_rejects_top_zero(run_dir, capsys):
    assert main(["report", str(run_dir), "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err


def test_error_headline_is_the_exception_line():
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "    raise ValueError('bad')\n"
        "ValueError: bad\n"
        "more detail"
    )
    assert error_headline(traceback) == "ValueError: bad"
    chained = traceback + (
        "\n\nDuring handling of the above exception, another exception occurred:\n\n"
        'Traceback (most recent call last):\n  File "y.py", line 2, in g\n    g()\nKeyError: 1'
    )
    assert error_headline(chained) == "KeyError: 1"
    assert error_headline("\nthe objective returned nan\nmore") == "the objective returned nan"
    assert error_headline(None) == ""


# --- export --------------------------------------------------------------------------------------
def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


def test_export_csv_has_one_row_per_evaluation(run_dir, result, tmp_path, capsys):
    out = tmp_path / "evaluations.csv"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 80 evaluations to {out}"
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [
        *("id", "status", "value", "error", "island", "worker", "generation"),
        *("start", "end", "duration", "step", "confirmation"),
        *("param.lr", "param.depth", "param.opt", "param.momentum", "param.batch"),
        *("metric.val_loss", "metric.accuracy"),
    ]
    assert len(rows) == len(result) == 80
    for row, record in zip(rows, result.records, strict=True):
        assert int(row["id"]) == record.id and row["status"] == record.status
        assert _none_if_nan(record.value) == (float(row["value"]) if row["value"] else None)
        assert row["error"] == error_headline(record.error)
        assert float(row["end"]) == record.end and float(row["duration"]) == record.duration
        assert int(row["island"]) == record.island and int(row["worker"]) == record.worker
        assert float(row["param.lr"]) == record.params["lr"]
        assert int(row["param.depth"]) == record.params["depth"]
        assert row["param.opt"] == record.params["opt"] and row["param.batch"] == "32"
        assert row["param.momentum"] == str(record.params.get("momentum", ""))
        assert row["metric.accuracy"] == str(record.metrics.get("accuracy", ""))
    assert any(r["status"] == "failed" and r["error"].startswith("RuntimeError") for r in rows)


def test_export_jsonl_round_trips(run_dir, result, tmp_path):
    out = tmp_path / "evaluations.jsonl"
    assert main(["export", str(run_dir), "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80
    for row, record in zip(rows, result.records, strict=True):
        assert row["id"] == record.id and row["status"] == record.status
        assert row["value"] == _none_if_nan(record.value)
        assert row["params"] == record.params and row["metrics"] == record.metrics
        assert row["error"] == record.error  # the full message, traceback included
        assert [tuple(p) for p in row["intermediate"]] == list(record.intermediate)
        assert (row["start"], row["end"], row["generation"]) == (
            record.start,
            record.end,
            record.generation,
        )
    assert any(len(r["intermediate"]) == 3 for r in rows)


def test_export_format_option_overrides_the_extension(run_dir, tmp_path):
    out = tmp_path / "evaluations.txt"
    assert main(["export", str(run_dir), "-o", str(out), "--format", "jsonl"]) == 0
    assert len(out.read_text().splitlines()) == 80


def test_export_with_an_unknown_extension_is_a_usage_error(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "-o", str(tmp_path / "out.xlsx")]) == 2
    err = capsys.readouterr().err
    assert ".csv" in err and ".jsonl" in err and "--format" in err
    assert not (tmp_path / "out.xlsx").exists()


# --- plot ----------------------------------------------------------------------------------------
def test_plot_writes_valid_pngs(run_dir, tmp_path, capsys):
    out = tmp_path / "figures"
    assert main(["plot", str(run_dir), "-o", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / name) for name in PLOTS]
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 20_000  # axes, lines and labels, not a blank canvas


def test_plot_defaults_to_the_run_directory(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert main(["plot", str(copy)]) == 0
    assert sorted(p.name for p in (copy / "plots").iterdir()) == sorted(PLOTS)


def test_plot_of_a_run_without_successes_fails_cleanly(tmp_path, capsys):
    objective = tmp_path / "broken.py"
    objective.write_text("def f(params):\n    raise RuntimeError('always broken')\n")
    search = tmp_path / "broken.yaml"
    search.write_text(
        textwrap.dedent(f"""
        objective: {objective}:f
        space: {{x: {{type: float, low: 0, high: 1}}}}
        budget: {{evaluations: 20}}
        max_initial_failures: 3
        run_dir: {tmp_path / "broken"}
        """)
    )
    assert main(["run", str(search)]) == 1
    lines = _report(capsys, str(tmp_path / "broken"))
    assert _field(lines, "status").startswith("failed: the first 3 evaluations")
    assert "best: no evaluation succeeded" in lines
    assert main(["plot", str(tmp_path / "broken")]) == 1
    assert "nothing to plot" in capsys.readouterr().err


def test_running_best_follows_the_direction():
    v = np.array([math.nan, 3.0, 5.0, math.nan, 1.0, 4.0])
    assert np.array_equal(_running_best(v, "minimize"), [math.nan, 3, 3, 3, 1, 1], equal_nan=True)
    assert np.array_equal(_running_best(v, "maximize"), [math.nan, 3, 5, 5, 5, 5], equal_nan=True)


# --- optuna --------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*is experimental")
def test_optuna_study_holds_the_run(run_dir, result, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["optuna", str(run_dir), "-o", url]) == 0
    assert f"optuna-dashboard {url}" in capsys.readouterr().out
    study = optuna.load_study(study_name="flaky", storage=url)
    assert len(study.trials) == len(result) == 80
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.metric_names == ["val_loss"]
    assert study.best_value == result.best.value
    assert study.best_trial.user_attrs["id"] == result.best.id
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == result.n_failed
    for trial, record in zip(study.trials, result.records, strict=True):
        assert trial.user_attrs["id"] == record.id
        assert trial.user_attrs["island"] == record.island
        assert trial.user_attrs["constants"] == {"batch": 32}
        params = {k: v for k, v in record.params.items() if k != "batch"}
        assert trial.params == params  # momentum only where it was active
        assert trial.intermediate_values == dict(record.intermediate)
        assert trial.user_attrs.get("error", "") == error_headline(record.error)
        assert trial.duration.total_seconds() == pytest.approx(record.duration, abs=1e-3)
    lr = study.best_trial.distributions["lr"]
    assert (lr.low, lr.high, lr.log) == (1e-5, 1.0, True)
    # Optuna's own analysis runs on it (plotly is optional; its matplotlib backend is used)
    ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    assert len(ax.lines) + len(ax.collections) > 0


def test_optuna_refuses_an_existing_study_unless_overwrite(run_dir, result, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    journal = tmp_path / "study.log"
    args = ["optuna", str(run_dir), "-o", str(journal), "--study", "mine"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a study named 'mine'" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    assert optuna.get_all_study_names(storage) == ["mine"]
    study = optuna.load_study(study_name="mine", storage=storage)
    assert len(study.trials) == len(result)


def test_optuna_with_an_unknown_storage_is_a_usage_error(run_dir, tmp_path, capsys):
    pytest.importorskip("optuna")
    assert main(["optuna", str(run_dir), "-o", str(tmp_path / "study.txt")]) == 2
    assert "sqlite:///" in capsys.readouterr().err


# --- several islands -----------------------------------------------------------------------------
@pytest.mark.mpi
def test_report_per_island_under_mpi(tmp_path, capsys):
    search = _search_file(tmp_path, "islands", 60, islands=2)
    code = f"from propagator.cli import main; raise SystemExit(main(['run', {str(search)!r}]))"
    subprocess.run(
        ["mpiexec", "-n", "3", sys.executable, "-c", code],
        check=True,
        timeout=120,
        capture_output=True,
    )
    result = load(tmp_path / "islands")
    rows = _section(_report(capsys, str(tmp_path / "islands")), "islands")[2:]
    assert len(rows) == 2
    for island, row in enumerate(rows):
        mine = [r for r in result.records if r.island == island]
        ok = [r for r in mine if r.ok]
        best = min(ok, key=lambda r: r.value)
        reached = next(i for i, r in enumerate(mine, 1) if r.id == best.id)
        expected = [str(island), str(len(mine)), str(sum(r.status == "failed" for r in mine))]
        # the default portfolio on every island, with the members of this mixed space
        strategy = "portfolio (ga, cmaes, tpe)"
        cells = [*expected, f"{best.value:.6g}", str(best.id), str(reached), strategy]
        assert row.split(maxsplit=6) == cells
    assert sum(int(row.split()[1]) for row in rows) == 60
