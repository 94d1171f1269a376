"""EASGD, EAMSGD and DOWNPOUR: the algebra against hand-written recursions of the thesis's
equations, byte counts, and multi-rank runs of both variants."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import run_trainer
from mpi4py import MPI
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import propagator as pg
from propagator.engine.evaluation import Trial
from trainers.data import load_data
from trainers.easgd import rank_batches, settings, train
from trainers.framework import evaluate, loss_function
from trainers.models import build_model

SMALL = {"dataset": "digits", "epochs": 2, "batch_size": 128, "depth": 1, "width": 16}
SEED = 11


def _trial() -> Trial:
    return Trial(0, MPI.COMM_SELF, 0, 0, SEED)


def _n_params() -> int:
    return 64 * 16 + 16 + 16 * 10 + 10


def _reference(params: dict, alpha: float, tau: int) -> tuple[float, float]:
    """Eqs. 2.3-2.4 with p = 1, written out: (val loss of x̃, val loss of x)."""
    trial = _trial()
    torch.manual_seed(trial.seed)
    data = load_data(params)
    model = build_model(params, data.input_shape, data.n_outputs)
    weights = list(model.parameters())
    centre = parameters_to_vector(weights).detach().clone()
    lr, t = params["lr"], 0
    for epoch in range(params["epochs"]):
        for xb, yb in rank_batches(data, params["batch_size"], epoch, trial.seed):
            model.zero_grad()
            loss_function(data.task)(model(xb), yb).backward()
            with torch.no_grad():
                x = parameters_to_vector(weights).clone()
                g = parameters_to_vector([w.grad for w in weights])
                pull = alpha * (x - centre) if t % tau == 0 else torch.zeros_like(x)
                vector_to_parameters(x - lr * g - pull, weights)
                centre += pull  # p = 1: x̃ <- (1 - alpha) x̃ + alpha x_t, an average of iterates
            t += 1
    local = evaluate(model, data, torch.device("cpu"))[0]
    vector_to_parameters(centre, weights)
    return evaluate(model, data, torch.device("cpu"))[0], local


@pytest.mark.parametrize(("alpha", "tau"), [(0.3, 1), (0.9, 3), (0.0, 1)])
def test_one_rank_follows_eqs_2_3_and_2_4(alpha, tau):
    params = {**SMALL, "lr": 0.1, "alpha": alpha, "tau": tau}
    out = train(params, _trial())
    centre, local = _reference(params, alpha, tau)
    assert out["val_loss"] == pytest.approx(centre, rel=1e-5)
    assert out["local_val_loss"] == pytest.approx(local, rel=1e-5)
    assert out["bytes_sent"] == 0


def test_alpha_zero_is_plain_sgd_and_leaves_the_centre_at_the_start():
    params = {**SMALL, "lr": 0.1, "alpha": 0.0}
    out = train(params, _trial())
    torch.manual_seed(_trial().seed)
    data = load_data(params)
    untrained = build_model(params, data.input_shape, data.n_outputs)
    assert out["val_loss"] == pytest.approx(evaluate(untrained, data, torch.device("cpu"))[0])
    assert out["local_val_loss"] < out["val_loss"] - 0.05  # the local model did train


def test_downpour_with_one_rank_is_sgd():
    sgd = train({**SMALL, "lr": 0.1, "alpha": 0.0}, _trial())
    downpour = train({**SMALL, "lr": 0.1, "method": "downpour", "tau": 4}, _trial())
    assert downpour["local_val_loss"] == pytest.approx(sgd["local_val_loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"method": "admm"}, "'method': must be one of"),
        ({"variant": "tree"}, r"'variant': must be one of \['sync', 'async'\]"),
        ({"tau": 0}, "tau"),
        ({"method": "eamsgd", "delta": 1.0}, "delta"),
        ({"method": "easgd", "delta": 0.9}, "belongs to eamsgd"),
    ],
)
def test_bad_settings_are_refused(bad, match):
    with pytest.raises(pg.ConfigError, match=match):
        settings(bad, 4)


def test_alpha_defaults_to_beta_over_p():
    assert settings({}, 4).alpha == pytest.approx(0.9 / 4)
    assert settings({"beta": 0.5}, 2).alpha == pytest.approx(0.25)
    assert settings({"alpha": 0.1, "beta": 0.5}, 2).alpha == 0.1
    assert settings({"method": "downpour"}, 4).tau == 1
    assert settings({"method": "eamsgd"}, 4).delta == 0.99


@pytest.mark.mpi
@pytest.mark.parametrize("variant", ["sync", "async"])
def test_alpha_zero_on_two_ranks_is_independent_sgd_and_bytes_match(tmp_path, variant):
    params = {**SMALL, "alpha": 0.0, "tau": 3, "variant": variant}
    (record,) = run_trainer(tmp_path, 2, 2, "easgd", params)
    # the MPI run's only evaluation had id 0 in a run with seed 0
    alone = train({**params, "lr": record["params"]["lr"]}, Trial(0, MPI.COMM_SELF, 0, 0, 0))
    # rank 0 of the pair trained exactly as it would alone: nothing reached it from rank 1
    assert record["metrics"]["local_val_loss"] == pytest.approx(alone["local_val_loss"], rel=1e-5)
    steps = len(load_data(SMALL).x_train) // SMALL["batch_size"] * SMALL["epochs"]
    exchanges = math.ceil(steps / 3)
    # one model-size vector per exchange, plus rank 0's broadcast of the initial weights
    assert record["metrics"]["bytes_sent"] == 4 * _n_params() * (exchanges + 1)


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("k", "method", "variant"),
    [
        pytest.param(2, "easgd", "sync", marks=pytest.mark.slow),  # 2 ranks: checkpoint tests
        (4, "eamsgd", "async"),
        (4, "downpour", "sync"),
        # async: 4-eamsgd-async; 2 ranks: the checkpoint tests (CI time)
        pytest.param(2, "downpour", "async", marks=pytest.mark.slow),
    ],
)
def test_methods_learn_on_multi_rank_workers(tmp_path, k, method, variant):
    lr = {"easgd": 0.3, "eamsgd": 0.03, "downpour": 0.1}[method]
    params = {**SMALL, "epochs": 4, "batch_size": 32, "method": method, "variant": variant}
    params |= {"lr": {"type": "float", "low": 0.99 * lr, "high": 1.01 * lr}, "tau": 2}  # a gene
    for record in run_trainer(tmp_path, 4, k, "easgd", params):
        metrics = record["metrics"]
        assert metrics["val_acc"] > 0.5, metrics  # chance is 0.1
        assert metrics["bytes_sent"] > 0
        assert [step for step, _ in record["reports"]] == [1, 2, 3, 4]
