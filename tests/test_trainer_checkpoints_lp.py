"""The layer-parallel trainers (mac, auxnet, ddg, fr) paused after an epoch and resumed from
their checkpoints go on exactly as if never paused, on one rank and on a chain of two ranks
(each rank saves and restores its own stages); a training that is not resumed ignores a
checkpoint left by an earlier pause of the same id."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from conftest import mpiexec_json

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
from checkpoint_lp_trainers import pause_and_resume

DRIVER = Path(__file__).parent / "mpi" / "checkpoint_lp_trainers.py"
EPOCHS, PAUSE = 3, 1  # run 3 epochs; the paused runs stop after epoch 1 (and 2)
# tiny models; each exercises the state a resumed run must get back: optimizer moments,
# schedules, dropout's random streams, batch-norm statistics, the method's own state
MLP = {"dataset": "digits", "epochs": EPOCHS, "depth": 2, "width": 16, "batch_size": 128}
AUXNET = {
    **{k: v for k, v in MLP.items() if k not in ("depth", "width")},
    "filters": 4,
    "blocks": 2,
}
# label: (trainer, params)
CASES = {
    # Adam's W-steps, µ growing at every epoch (mu_tol), coordinates and targets, dropout
    "mac": ("mac", {**MLP, "w_iters": 1, "w_batch": 256, "mu_tol": 0.5, "dropout": 0.1}),
    # stored λ and κ (AL), the noise generators, SGD momentum under a cosine schedule
    "auxnet-al": ("auxnet", {**AUXNET, "method": "al", "lambda_noise": 0.05, "momentum": 0.9}),
    # AuxNet-generated λ: their nets, optimizers and schedules; augmentation
    "auxnet-penalty": ("auxnet", {**AUXNET, "augment": True, "lambda_noise": 0.05}),
    # three modules: delayed graphs / replayed inputs kept across the pause
    "ddg": ("ddg", {**MLP, "modules": 3, "dropout": 0.1, "norm": "batch", "momentum": 0.9}),
    "fr": ("fr", {**MLP, "modules": 3, "dropout": 0.1, "norm": "batch", "schedule": "cosine"}),
    # one module: on two ranks the second holds no stage and saves only its counters
    "ddg-one-module": ("ddg", {**MLP, "modules": 1, "optimizer": "adam", "lr": 0.01}),
}
TIMEOUT = 150  # seconds for the 2-rank driver (15 to 20 on a loaded 2-core machine)
# wall-clock seconds, which no two runs share
WALL_CLOCK = {"train_time", "epoch_time"}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _check(out: dict) -> None:
    """The run paused after epoch PAUSE and resumed gives the uninterrupted run's reports and
    metrics exactly, as does one paused again after the next epoch and resumed again, and a
    fresh run beside the stale checkpoint."""
    full, paused = out["full"], out["paused"]
    assert len(full["reports"]) == EPOCHS and full["stopped"] is None
    assert paused["stopped"].startswith("paused")
    assert paused["metrics"]["epochs_run"] == PAUSE
    assert paused["reports"] == full["reports"][:PAUSE]
    assert out["own_file"] and out["all_files"]
    again = out["paused_again"]
    assert again["stopped"].startswith("paused")
    assert again["metrics"]["epochs_run"] == PAUSE + 1
    assert again["reports"] == full["reports"][: PAUSE + 1]
    for key in ("afresh", "resumed", "resumed_again"):
        run = out[key]
        assert run["stopped"] is None
        assert run["reports"] == full["reports"], key
        expected = {k: v for k, v in full["metrics"].items() if k not in WALL_CLOCK}
        got = {k: v for k, v in run["metrics"].items() if k not in WALL_CLOCK}
        assert got.keys() == expected.keys()
        wrong = {k: (got[k], v) for k, v in expected.items() if not _same(got[k], v)}
        assert not wrong, f"{key}: (got, uninterrupted) {wrong}"


@pytest.mark.parametrize("case", CASES)
def test_a_paused_and_resumed_training_is_the_uninterrupted_one(
    case, tmp_path, one_thread, monkeypatch
):
    from mpi4py import MPI

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    name, params = CASES[case]
    _check(pause_and_resume(name, params, PAUSE, MPI.COMM_SELF, tmp_path))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """Every case of :data:`CASES` paused and resumed on a worker of two ranks, in one
    launch of the driver; each rank's results by case. A hang fails the tests (the process
    group is killed) instead of hanging the suite."""
    out = tmp_path_factory.mktemp("two_ranks")
    return mpiexec_json(2, [str(DRIVER), str(out), str(PAUSE), json.dumps(CASES)], out, TIMEOUT)


@pytest.mark.timeout(TIMEOUT + 30)  # the first one launches the driver for all of them
@pytest.mark.parametrize("case", CASES)
def test_a_chain_on_two_ranks_pauses_and_resumes_each_rank_s_stages(case, two_ranks):
    for rank in two_ranks:
        _check(rank[case])
