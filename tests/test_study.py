"""``pg.Study``: ask/tell over the engine, in one process (a singleton MPI world) and under
mpiexec (tests/mpi/study_scenarios.py)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from conftest import mpiexec_json
from mpi4py import MPI

import propagator as pg

SPACE = pg.Space({"x": pg.Float(0, 1), "n": pg.Int(1, 5)})
SCENARIOS = Path(__file__).parent / "mpi" / "study_scenarios.py"


def loss(params: dict) -> float:
    return (params["x"] - 0.3) ** 2 + params["n"]


def curve(params: dict, trial) -> float:
    """A learning curve falling to a floor set by the params; stops when told to."""
    value = math.inf
    for t in range(1, 28):
        value = loss(params) + math.exp(-t / 3)
        trial.report(t, value)
        if trial.should_stop():
            break
    return value


def ask_all(study: pg.Study, tell=lambda trial: loss(trial.params)) -> list:
    """Ask and tell until the search ends; the trials asked."""
    asked = []
    while (trial := study.ask()) is not None:
        asked.append(trial)
        study.tell(trial, tell(trial))
    return asked


def test_ask_tell_spends_the_budget_and_the_result_is_what_was_told():
    with pg.Study(SPACE, budget=25, seed=3, strategy="ga") as study:
        asked = ask_all(study)
        assert study.ask() is None  # over is over
    result = study.result
    assert [t.id for t in asked] == [r.id for r in result.records] == list(range(25))
    assert [r.value for r in result.records] == [loss(t.params) for t in asked]
    assert all(r.ok and r.params == t.params for r, t in zip(result.records, asked, strict=True))
    assert asked[0].comm.size == 1 and asked[0].repeat == 0 and isinstance(asked[0].seed, int)
    assert not result.info.interrupted and result.info.n_workers == 1


def test_a_study_gets_the_candidates_search_gets_with_the_same_seed():
    searched = pg.search(curve, SPACE, budget=30, seed=0, strategy="ga", early_stopping="asha")
    with pg.Study(SPACE, budget=30, seed=0, strategy="ga", early_stopping="asha") as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, curve(trial.params, trial))
    got, want = study.result.records, searched.records
    assert [r.params for r in got] == [r.params for r in want]
    assert [(r.status, r.value, r.intermediate) for r in got] == [
        (r.status, r.value, r.intermediate) for r in want
    ]
    assert sum(r.pruned for r in got) > 10  # early stopping took part


def test_a_stopped_trial_is_told_its_last_report_by_default():
    with pg.Study(SPACE, budget=20, seed=1, early_stopping="asha", strategy="ga") as study:
        while (trial := study.ask()) is not None:
            curve(trial.params, trial)
            if trial.stopped is None:
                study.tell(trial, trial.reports[-1][1])
            else:
                study.tell(trial)
    pruned = [r for r in study.result.records if r.pruned]
    assert pruned and all(r.value == r.intermediate[-1][1] and r.step < 27 for r in pruned)


def test_dicts_of_metrics_and_repeats():
    with pg.Study(SPACE, budget=4, metric="loss", repeats=2, seed=2, strategy="ga") as study:
        asked = ask_all(study, lambda t: {"loss": loss(t.params) + t.repeat, "acc": 0.5})
    assert [(t.id, t.repeat) for t in asked] == [(i, r) for i in range(4) for r in (0, 1)]
    assert all(a.params == b.params for a, b in zip(asked[::2], asked[1::2], strict=True))
    for r in study.result.records:
        assert r.value == pytest.approx(loss(r.params) + 0.5)
        assert r.metrics["loss_std"] == pytest.approx(0.5) and r.metrics["acc"] == 0.5


def test_initial_configurations_come_first_and_confirmations_are_asked_last():
    first = {"x": 0.25, "n": 2}
    options = {"initial": [first], "confirm": {"top": 2, "seeds": 2}, "strategy": "ga"}
    with pg.Study(SPACE, budget=10, seed=0, **options) as study:
        asked = ask_all(study, lambda t: loss(t.params) + t.seed % 7 / 100)
    assert asked[0].params == first and [t.id for t in asked] == list(range(10))
    result = study.result
    assert len(result.confirmed) == 2
    best = sorted(asked[:6], key=lambda t: loss(t.params) + t.seed % 7 / 100)[:2]
    assert [c.params for c in result.confirmed] == [t.params for t in best]
    assert [t.params for t in asked[6:]] == [best[0].params] * 2 + [best[1].params] * 2


def test_a_small_discrete_space_is_exhausted_without_repeating_a_configuration():
    space = pg.Space({"a": pg.Int(0, 2), "b": pg.Categorical(["u", "v"])})
    with pg.Study(space, budget=20, seed=0, strategy="ga") as study:
        asked = ask_all(study, lambda t: float(t.params["a"]))
    configs = {(t.params["a"], t.params["b"]) for t in asked}
    assert len(asked) == len(configs) == 6
    assert study.result.info.exhausted


def test_asking_twice_or_telling_the_wrong_trial_is_refused():
    with pg.Study(SPACE, budget=3, seed=0, strategy="ga") as study:
        trial = study.ask()
        with pytest.raises(RuntimeError, match=r"trial 0 was asked and not told: call study\.tell"):
            study.ask()
        with pytest.raises(ValueError, match="not the trial asked last"):
            study.tell(object(), 1.0)
        with pytest.raises(ValueError, match="its value"):
            study.tell(trial)
        with pytest.raises(ValueError, match="not both"):
            study.tell(trial, 1.0, error=ValueError())
        study.tell(trial, 1.0)
        with pytest.raises(ValueError, match="told already"):
            study.tell(trial, 2.0)
        with pytest.raises(RuntimeError, match="was told already: call report before tell"):
            trial.report(1, 1.0)
        ask_all(study)
    assert study.result.records[0].value == 1.0
    with pytest.raises(RuntimeError, match="with block"):
        study.ask()
    with pytest.raises(RuntimeError, match="with block"):
        pg.Study(SPACE, budget=3).ask()


def test_tell_with_an_error_records_a_failure_and_the_search_goes_on():
    def tell(trial):
        if trial.id % 3 == 1:
            return None
        return loss(trial.params)

    with pg.Study(SPACE, budget=9, seed=0, strategy="ga") as study:
        while (trial := study.ask()) is not None:
            value = tell(trial)
            if value is None:
                study.tell(trial, error=ValueError(f"diverged at {trial.id}"))
            else:
                study.tell(trial, value)
    records = study.result.records
    assert [r.status for r in records] == ["ok", "failed", "ok"] * 3
    assert [r.error.splitlines()[-1] for r in records if not r.ok] == [
        f"ValueError: diverged at {i}" for i in (1, 4, 7)
    ]


def test_an_exception_in_the_with_block_records_the_trial_failed_and_stops_the_search():
    with pytest.raises(ZeroDivisionError) as raised, pg.Study(SPACE, budget=50, seed=0) as study:
        while (trial := study.ask()) is not None:
            if trial.id == 3:
                1 / 0  # noqa: B018
            study.tell(trial, loss(trial.params))
    records = study.result.records
    assert [r.status for r in records] == ["ok"] * 3 + ["failed"]
    assert records[3].error.splitlines()[-1] == "ZeroDivisionError: division by zero"
    assert study.result.info.interrupted
    # the exception is raised with its own traceback, not the engine's thread's frames
    frames = traceback.extract_tb(raised.value.__traceback__)
    assert Path(frames[0].filename).name == "test_study.py" and len(frames) == 1


def test_leaving_early_keeps_what_was_told_and_drops_a_trial_not_told():
    with pg.Study(SPACE, budget=50, seed=0) as study:
        ask_all_until = 3
        while (trial := study.ask()) is not None:
            study.tell(trial, loss(trial.params))
            if trial.id + 1 == ask_all_until:
                break
    assert len(study.result) == 3 and study.result.info.interrupted
    with pg.Study(SPACE, budget=50, seed=0) as study:
        while (trial := study.ask()) is not None:
            if trial.id == 2:
                break  # asked, never told: not recorded
            study.tell(trial, loss(trial.params))
    assert [r.id for r in study.result.records] == [0, 1]


def test_ctrl_c_in_the_loop_stops_the_search_and_is_raised():
    with pytest.raises(KeyboardInterrupt), pg.Study(SPACE, budget=50, seed=0) as study:
        while (trial := study.ask()) is not None:
            if trial.id == 2:
                raise KeyboardInterrupt
            study.tell(trial, loss(trial.params))
    assert [r.id for r in study.result.records] == [0, 1]


def test_a_stop_signal_ends_the_search_after_the_trial_in_hand(tmp_path):
    before = signal.getsignal(signal.SIGUSR1)
    with pg.Study(SPACE, budget=50, seed=0, run_dir=tmp_path / "run") as study:
        while (trial := study.ask()) is not None:
            if trial.id == 2:
                os.kill(os.getpid(), signal.SIGUSR1)
            study.tell(trial, loss(trial.params))
    assert len(study.result) == 3 and study.result.info.interrupted
    assert signal.getsignal(signal.SIGUSR1) is before
    assert len(pg.load(tmp_path / "run")) == 3


def test_running_again_resumes_the_stored_run(tmp_path, capfd):
    def run(budget: int) -> tuple[list, pg.Result]:
        with pg.Study(SPACE, budget=budget, seed=4, run_dir=tmp_path / "run") as study:
            asked = ask_all(study)
        return asked, study.result

    _, first = run(6)
    second_asked, second = run(10)
    assert [t.id for t in second_asked] == [6, 7, 8, 9]
    assert [r.id for r in second.records] == list(range(10))
    assert [r.params for r in second.records[:6]] == [r.params for r in first.records]
    assert len(pg.load(tmp_path / "run")) == 10
    again, third = run(10)
    assert again == [] and len(third) == 10
    assert "is spent: 10 of budget.evaluations = 10" in capfd.readouterr().err


@pytest.mark.parametrize("stored", [False, True])
def test_callbacks_get_every_told_record_once(tmp_path, stored):
    seen: list[tuple[int, float]] = []
    run_dir = tmp_path / "run" if stored else None
    with pg.Study(
        SPACE, budget=8, seed=5, run_dir=run_dir, callbacks=[lambda r: seen.append((r.id, r.value))]
    ) as study:
        asked = ask_all(study)
    assert sorted(seen) == [(t.id, loss(t.params)) for t in asked]
    with pytest.raises(pg.ConfigError, match="callbacks must be a list of callables"):
        pg.Study(SPACE, budget=8, callbacks=print)


def test_errors_of_the_search_are_raised_from_ask(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    other = pg.Study(SPACE, budget=5, run_dir=tmp_path / "other")
    with pytest.raises(pg.ConfigError, match="holds no propagate run"), other as study:
        study.ask()
    broken = pg.Study(SPACE, budget=20, max_initial_failures=3)
    with pytest.raises(pg.ObjectiveError, match="ValueError: broken"), broken as study:
        while (trial := study.ask()) is not None:
            study.tell(trial, error=ValueError("broken"))


def test_an_mpi_without_serialized_threads_is_refused(monkeypatch):
    monkeypatch.setattr(MPI, "Query_thread", lambda: MPI.THREAD_FUNNELED)
    with pytest.raises(pg.ConfigError, match="MPI_THREAD_SERIALIZED or more; this MPI gives"):
        pg.Study(SPACE, budget=5)


# --- under mpiexec ------------------------------------------------------------------------------
def _loop(tmp: Path, n: int, *args: str) -> list[dict]:
    return mpiexec_json(n, [str(SCENARIOS), "loop", str(tmp), *args], tmp, timeout=120)


@pytest.mark.mpi
def test_four_ranks_on_two_islands_spend_the_budget_exactly_once_each(tmp_path):
    ranks = _loop(tmp_path, 4, "40", "2", "1")
    asked = {a["id"]: a for r in ranks for a in r["asked"]}
    assert sum(len(r["asked"]) for r in ranks) == len(asked) == 40
    assert sorted(ranks[0]["ids"]) == sorted(asked) == list(range(40))
    assert all(r["ids"] == ranks[0]["ids"] for r in ranks)  # every rank gets the result
    columns = (ranks[0][k] for k in ("ids", "values", "workers"))
    for record_id, value, worker in zip(*columns, strict=True):
        assert asked[record_id]["value"] == value and asked[record_id]["worker"] == worker
    assert set(ranks[0]["islands"]) == {0, 1} and all(r["asked"] for r in ranks)


@pytest.mark.mpi
def test_the_ranks_of_a_worker_get_the_same_trials_and_leave_together(tmp_path):
    """Workers of 2 ranks; worker 0 leaves after 2 trials, which stops worker 1 too."""
    ranks = _loop(tmp_path, 4, "400", "1", "2", "2")
    assert ranks[0]["asked"] == ranks[1]["asked"] and ranks[2]["asked"] == ranks[3]["asked"]
    assert len(ranks[0]["asked"]) == 2 and ranks[2]["asked"]
    told = sorted(a["id"] for r in ranks[::2] for a in r["asked"])
    assert sorted(ranks[0]["ids"]) == told and len(told) < 400
    assert all(r["interrupted"] and r["ids"] == ranks[0]["ids"] for r in ranks)


@pytest.mark.mpi
def test_ctrl_c_stops_every_rank_cleanly_and_keeps_every_trial_told(tmp_path):
    run_dir = tmp_path / "run"
    cmd = ["mpiexec", "-n", "4", sys.executable, str(SCENARIOS), "stored", str(tmp_path)]
    proc = subprocess.Popen(
        [*cmd, str(tmp_path), str(run_dir), "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 60
    while len(_told(tmp_path)) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("ranks did not exit after Ctrl-C")
    assert proc.returncode == 0, out
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    stored = pg.load(run_dir)
    assert all(r["interrupted"] and r["n"] == len(stored) for r in ranks)
    assert set(stored.rows["id"].tolist()) == _told(tmp_path)  # nothing told was lost


def _told(folder: Path) -> set[int]:
    lines = (x for f in folder.glob("told-rank*.txt") for x in f.read_text().splitlines())
    return {int(x) for x in lines}
