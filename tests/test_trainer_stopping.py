"""Every trainer stops early when the search tells it to (issue 11, trainer side): after the
epoch at which ``trial.should_stop()`` said so, on every rank of its worker, layer-parallel
chains included, with its metrics for the model as it is then."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_mpi
from hypothesis import given
from hypothesis import strategies as st

import propagator as pg
from trainers.checkpointing import Epochs
from trainers.framework import Context

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
from scenarios import FirstOnly, trainer_stopping

LR = {"type": "float", "low": 0.049, "high": 0.051}  # a searched param: two evaluations differ
MLP = {"dataset": "digits", "epochs": 3, "depth": 2, "width": 16, "batch_size": 128, "lr": LR}
RESNET = {"dataset": "digits", "epochs": 3, "filters": 4, "blocks": 2, "batch_size": 128}
PARAMS = {
    "baseline": MLP,
    "easgd": MLP,
    "daso": MLP,
    "oialr": MLP,
    "ab": {**MLP, "ab_warmup": 0.5},  # the first epoch ends in the warm-up
    "mac": {**MLP, "w_iters": 1, "w_batch": 256, "lr": None, "w_lr": LR},
    "auxnet": {**RESNET, "lr": LR},
    "ddg": MLP,
    "fr": MLP,
}
REPORTED = {"mac": "train_loss"}  # what each trainer reports after an epoch; else val_loss


def _params(name: str, **extra: object) -> str:
    params = {k: v for k, v in {**PARAMS[name], **extra}.items() if v is not None}
    return json.dumps(params)


class _Trial:
    """Notes the calls a loop makes; says stop when asked after reporting step ``stop``."""

    def __init__(self, stop: int | None) -> None:
        self.stop, self.calls = stop, []

    def report(self, step: int, value: float) -> None:
        self.calls.append(("report", step, value))

    def should_stop(self) -> bool:
        self.calls.append(("ask",))
        return self.calls[-2][1] == self.stop


@given(count=st.integers(1, 30), stop=st.one_of(st.none(), st.integers(1, 40)))
def test_epochs_ask_after_every_report_but_the_last_and_end_after_the_stopping_one(count, stop):
    trial = _Trial(stop)
    ctx = Context({}, trial, torch.device("cpu"), None, 0)
    loop = Epochs(ctx, count)
    ran = []
    for epoch in loop:
        ran.append(epoch)
        loop.end(epoch, 0.5 * epoch)
    # a stop asked for at the last epoch or later changes nothing: the training is complete
    stops = stop is not None and stop < count
    last = stop if stops else count
    assert ran == list(range(last))
    expected = [[("report", e + 1, 0.5 * e), ("ask",)] for e in range(last)]
    calls = [call for pair in expected for call in pair]
    assert trial.calls == (calls if stops else calls[:-1])
    assert ctx.epochs_run == last
    assert loop.stopped == stops


def _check_stopped(out: dict, name: str, step: int, why: str) -> None:
    """Two evaluations: the first ran its 3 epochs, the second stopped after epoch ``step``."""
    first, stopped = out["records"]
    assert first["status"] == "ok", first["error"]
    assert [s for s, _ in first["reports"]] == [1, 2, 3] and first["metrics"]["epochs_run"] == 3
    assert stopped["status"] == "pruned", stopped["error"]
    assert why in stopped["error"]
    assert stopped["step"] == step
    assert [s for s, _ in stopped["reports"]] == list(range(1, step + 1))
    metrics = stopped["metrics"]
    assert metrics["epochs_run"] == step
    # the metrics are those of the model after that epoch: what it reported then
    assert metrics[REPORTED.get(name, "val_loss")] == stopped["reports"][-1][1]
    assert stopped["value"] == metrics["val_loss"]
    assert [s["steps"] for s in out["seen"]] == [[1, 2, 3], list(range(1, step + 1))]


@pytest.mark.parametrize("name", PARAMS)
def test_every_trainer_stops_after_the_epoch_a_pruner_stops_it_at(name):
    out = trainer_stopping([name, "first_only", _params(name)])
    _check_stopped(out, name, 1, "pruned by first_only at step 1")


@pytest.mark.parametrize("name", ["baseline", "mac"])
def test_a_step_budget_stops_a_trainer_before_a_step_past_it(name):
    # 3 steps for the first evaluation, the 4th for the second's first epoch; no 5th can be
    # reserved after it, so the second stops there and the run has spent exactly 4
    out = trainer_stopping([name, "steps:4", _params(name)])
    _check_stopped(out, name, 1, "step budget is spent")


def test_ab_stopped_inside_an_independent_phase_merges_as_at_its_end():
    # the whole run is one independent phase: the first evaluation merges at its last step,
    # the second, stopped after epoch 1 of 3, merges then
    out = trainer_stopping(["ab", "first_only", _params("ab", ab_warmup=0.0, ab_steps=1.0)])
    first, stopped = (r["metrics"] for r in out["records"])
    assert out["records"][1]["status"] == "pruned"
    assert first["ab_merges"] == stopped["ab_merges"] == 1
    full_rank = 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    assert stopped["parameters"] == first["parameters"] == full_rank


def _reports_and_never_asks(params: dict, trial: pg.Trial) -> float:
    for step in (1, 2, 3):
        trial.report(step, params["x"] + 1.0 / step)
    return params["x"]


def _takes_no_trial(params: dict) -> float:
    return params["x"] ** 2


@pytest.mark.parametrize("objective", [_reports_and_never_asks, _takes_no_trial])
def test_an_objective_that_never_asks_runs_to_its_end_under_a_pruner(objective):
    # FirstOnly would stop every evaluation but the first at step 1, had they asked
    space = pg.Space({"x": pg.Float(0, 1)})
    result = pg.search(objective, space, budget=4, early_stopping=FirstOnly(), seed=0)
    assert [r.status for r in result.records] == ["ok"] * 4
    reports = [[s for s, _ in r.intermediate] for r in result.records]
    assert reports == [[1, 2, 3] if objective is _reports_and_never_asks else []] * 4


CHAIN = {"depth": 3, "split": [1, 2, 3]}  # 4 groups of one layer
DASO = {"node_size": 2, "warmup_epochs": 0, "global_sync_period": 5, "stale_steps": 2}
MPI_CASES = [
    # data-parallel: gradient all-reduces, the async EASGD window, AB's merge collective, and
    # DASO's global sync still in flight at the stop (2 simulated nodes; 11 steps per epoch, a
    # sync sent at step 10 is due at step 12), merged after the loop
    # the 2-rank cases also run in tests/test_trainer_checkpoints*.py, where every rank of a
    # 2-rank worker pauses (stops) after the same epoch: here on demand (-m slow)
    pytest.param("baseline", 2, "first_only", {}, marks=pytest.mark.slow),
    ("easgd", 4, "steps:4", {"variant": "async", "tau": 2}),
    ("daso", 4, "first_only", DASO),
    pytest.param(
        "ab", 2, "first_only", {"ab_warmup": 0.0, "ab_steps": 1.0}, marks=pytest.mark.slow
    ),
    # layer-parallel chains: every stage stops after the same epoch
    pytest.param("mac", 2, "steps:4", {"modules": 2}, marks=pytest.mark.slow),
    ("mac", 4, "first_only", CHAIN),
    pytest.param("auxnet", 2, "first_only", {"modules": 2}, marks=pytest.mark.slow),
    # auxnet's 4-rank chain stops as mac's does (above); its 4 stages learn in test_auxnet.py
    pytest.param("auxnet", 4, "steps:4", {"blocks": 4, "modules": 4}, marks=pytest.mark.slow),
    # rank 0 holds 2 of 3 stages; error gradients of 128 KiB (beyond MPI's eager limit) are in
    # flight at an epoch's end
    ("ddg", 2, "first_only", {"modules": 3, "width": 512, "batch_size": 64}),
    # ranks 2 and 3 hold no stage; an idle rank's chain runs in test_ddg_fr.py (fr on 4 ranks)
    pytest.param("fr", 4, "steps:4", {"modules": 2}, marks=pytest.mark.slow),
]


@pytest.mark.mpi
@pytest.mark.parametrize(("name", "ranks", "rule", "extra"), MPI_CASES)
def test_every_rank_of_a_worker_stops_after_the_same_epoch(tmp_path, name, ranks, rule, extra):
    params = _params(name, **extra)
    out = run_mpi(ranks, "trainer_stopping", tmp_path, name, rule, params, timeout=300)
    first, stopped = out[0]["records"]
    assert first["status"] == "ok", first["error"]
    assert stopped["status"] == "pruned" and stopped["step"] == 1, stopped["error"]
    assert [s for s, _ in stopped["reports"]] == [1]
    for rank in out:
        seen = rank["seen"]
        assert [s["id"] for s in seen] == [s["id"] for s in out[0]["seen"]]
        assert [s["steps"] for s in seen] == [[1, 2, 3], [1]]
        assert [s["stopped"] for s in seen] == [s["stopped"] for s in out[0]["seen"]]
        assert seen[0]["stopped"] is None and seen[1]["stopped"] is not None
        assert [s["metrics"]["epochs_run"] for s in seen] == [3, 1]
