"""MAC: one group is plain minibatch training, the Z-step objectives against their closed forms
(Eqs. 3.5, 3.9-3.12), where µ acts, the µ schedule, and the chain on several ranks computing the
one-rank numbers with the bytes it should send."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import run_trainer
from mpi4py import MPI

import propagator as pg
from propagator.engine.evaluation import Trial
from trainers.baseline import train as baseline
from trainers.data import load_data
from trainers.framework import setup
from trainers.layer_parallel import split_model
from trainers.mac import CHANNELS, MAC, fit, settings, z_objective

# three 16-wide hidden layers and the output layer, cut into four groups of one layer each
TINY = {"dataset": "digits", "depth": 3, "width": 16, "split": [1, 2, 3], "epochs": 2}
TINY |= {"w_iters": 2, "w_batch": 128, "z_iters": 3, "z_lr": 1e-2}


def _trial(seed: int = 1) -> Trial:
    return Trial(0, MPI.COMM_SELF, 0, 0, seed)


def _reports(params: dict, seed: int = 1) -> list[float]:
    """The training loss after every epoch."""
    trial = _trial(seed)
    fit(params, trial)
    return [value for _, value in trial.reports]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_one_group_is_plain_minibatch_training(optimizer):
    params = {"dataset": "digits", "depth": 2, "width": 32, "modules": 1, "w_optimizer": optimizer}
    mac = fit({**params, "epochs": 2, "w_iters": 3, "w_lr": 0.01, "w_batch": 64}, _trial())
    plain = baseline(
        {**params, "optimizer": optimizer, "lr": 0.01, "epochs": 6, "batch_size": 64}, _trial()
    )
    assert mac["val_loss"] == plain["val_loss"]  # the same updates, bit for bit
    assert mac["bytes_sent"] == 0


def _mac(params: dict) -> MAC:
    ctx = setup(params, _trial())
    data = load_data(params)
    return MAC(ctx, params, split_model(ctx, params, data, CHANNELS), data)


def test_first_epoch_leaves_the_first_group_unchanged():
    """z starts as the forward pass, so group 1 already fits its target exactly (Fig. 4.2)."""
    mac = _mac({**TINY, "split": 1, "variant": "1-term"})
    first, second = (st.group for st in mac.stages)
    before = [p.clone() for p in first.parameters()], [p.clone() for p in second.parameters()]
    mac.epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(before[0], first.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(before[1], second.parameters(), strict=True))
    mac.epoch(1)  # now z_1 has moved and group 1 has a target to fit
    assert not all(torch.equal(a, b) for a, b in zip(before[0], first.parameters(), strict=True))


def test_z_objectives_have_the_closed_form_gradients():
    """Eqs. 3.10-3.11 / App. B.1 for a Linear+ReLU hidden group and a Linear output group."""
    torch.manual_seed(0)
    hidden, output = (
        torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU()),
        torch.nn.Linear(4, 3),
    )
    z, prior, target = torch.randn(6, 5), torch.randn(6, 5), torch.randn(6, 4)
    y, mu = torch.tensor([0, 1, 2, 0, 1, 2]), 3.7

    def grad(group, target, prior, last):
        z_ = z.clone().requires_grad_() if not last else z[:, :4].clone().requires_grad_()
        (g,) = torch.autograd.grad(
            z_objective(group, z_, target, prior, mu, last, "cross_entropy"), z_
        )
        return g

    lin = hidden[0]
    pre = z @ lin.weight.T + lin.bias
    residual = torch.relu(pre) - target
    expected = mu * ((residual * (pre > 0)) @ lin.weight)  # µ J^T (f(z) - z_{l+1})
    assert torch.allclose(grad(hidden, target, None, False), expected, atol=1e-6)  # 1-term
    expected_2 = expected + mu * (z - prior)  # + µ (z_l - f_{l-1}(z_{l-1}))
    assert torch.allclose(grad(hidden, target, prior, False), expected_2, atol=1e-6)  # 2-term

    zl = z[:, :4]
    softmax = torch.softmax(zl @ output.weight.T + output.bias, 1)
    expected = 0.5 * (softmax - F.one_hot(y, 3)) @ output.weight  # (1/2) dCE/dz: µ-free
    assert torch.allclose(grad(output, y, None, True), expected, atol=1e-6)
    expected_2 = expected + mu * (zl - prior[:, :4])  # µ only weighs the penalty (Eq. 3.15)
    assert torch.allclose(grad(output, y, prior[:, :4], True), expected_2, atol=1e-6)


def test_mu_leaves_1_term_with_two_groups_alone_and_moves_2_term():
    two = {**TINY, "split": 1, "epochs": 3}
    one_term = [_reports({**two, "variant": "1-term", "mu": mu}) for mu in (1.0, 1000.0)]
    assert one_term[0] == one_term[1]  # the only Z-step is the output's, which has no µ
    two_term = [_reports({**two, "variant": "2-term", "mu": mu}) for mu in (1.0, 1000.0)]
    assert two_term[0] != two_term[1]
    # in 1-term, µ scales the hidden Z-steps: Adam hardly notices, SGD does (from epoch 3 on:
    # a hidden group's targets start moving one epoch after the next group's, and new z's
    # reach the loss through the next W-step)
    sgd = {**TINY, "variant": "1-term", "z_optimizer": "sgd", "z_lr": 1e-3, "epochs": 4}
    assert _reports({**sgd, "mu": 1.0}) != _reports({**sgd, "mu": 10.0})


def test_coupled_is_2_term_for_one_z_iteration_and_not_after():
    """One iteration of the coupled Z-step is one 2-term iteration (Eq. 3.10-3.11)."""
    one = {**TINY, "z_iters": 1}
    assert _reports({**one, "variant": "coupled"}) == _reports({**one, "variant": "2-term"})
    assert _reports({**TINY, "variant": "coupled"}) != _reports({**TINY, "variant": "2-term"})
    # with two groups the coupled problem has a single z: it is the 2-term problem
    two = {**TINY, "split": 1}
    assert _reports({**two, "variant": "coupled"}) == _reports({**two, "variant": "2-term"})


def test_z_batch_only_bounds_memory():
    small, whole = (_reports({**TINY, "variant": "2-term", "z_batch": b}) for b in (100, 100_000))
    assert small == pytest.approx(whole, rel=1e-5)


def test_mu_grows_when_the_loss_plateaus():
    stalled = fit({**TINY, "variant": "2-term", "epochs": 3, "mu_tol": 0.999}, _trial())
    assert stalled["mu"] == 100.0  # epochs 2 and 3 fell short of a 99.9 % decrease
    steady = fit(
        {**TINY, "variant": "2-term", "epochs": 3, "mu_tol": 0.0, "mu_growth": 3}, _trial()
    )
    assert steady["mu"] in (1.0, 3.0, 9.0)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"variant": "3-term"}, "variant"),
        ({"w_iters2": 0}, "w_iters"),
        ({"z_lr": -1.0}, "z_lr"),
        ({"mu_growth": 0.5}, "mu_growth"),
        ({"z_optimizer": "lbfgs"}, "z_optimizer"),
        ({"loss": "hinge"}, "loss"),
    ],
)
def test_bad_settings_name_the_field(bad, match):
    with pytest.raises(pg.ConfigError, match=match):
        settings(bad, 2)
    with pytest.raises(pg.ConfigError, match="loss"):
        settings({"loss": "cross_entropy"}, 2, "regression")
    with pytest.raises(pg.ConfigError, match="the same for every group with the coupled"):
        settings({"variant": "coupled", "z_iters2": 2, "z_iters3": 3}, 4)
    per_group = settings({"z_lr": 0.1, "z_lr3": 0.5, "w_iters1": 7}, 3)
    assert per_group.z_lr == (0.1, 0.1, 0.5) and per_group.w_iters == (7, 67, 67)


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("ranks", "variant"),
    # every variant's chain on 2 ranks; on 4 the coupled one, whose Z-step reaches across
    # the most stages (the 4-rank 1-term and 2-term runs are marked slow: CI's time)
    [
        (2, "1-term"),
        (2, "2-term"),
        (2, "coupled"),
        pytest.param(4, "1-term", marks=pytest.mark.slow),
        pytest.param(4, "2-term", marks=pytest.mark.slow),
        (4, "coupled"),
    ],
)
def test_the_chain_on_several_ranks_gives_the_one_rank_numbers(
    tmp_path, variant, ranks, one_thread
):
    params = {**TINY, "variant": variant}
    (record,) = run_trainer(tmp_path, ranks, ranks, "mac", params)
    alone = fit(params, Trial(0, MPI.COMM_SELF, 0, 0, 0))  # the MPI run's only trial: id 0, seed 0
    assert record["metrics"]["val_loss"] == alone["val_loss"]
    assert [v for _, v in record["reports"]] == _reports(params, seed=0)
    if ranks == 2:  # rank 0 holds groups 0 and 1; the chain crosses ranks between 1 and 2
        n, width, epochs = 1438, 16, TINY["epochs"]  # digits' training samples, boundary width
        per_epoch = {"1-term": 0, "2-term": 1, "coupled": TINY["z_iters"]}[variant]
        method = 4 * n * width * (1 + epochs * per_epoch)  # z at the start, then f_1(z_1) up
        assert record["metrics"]["bytes_method"] == method  # no weights: z's and outputs only
        evaluation = 4 * width * (epochs * n + 359)  # train loss per epoch, final val loss
        assert record["metrics"]["bytes_sent"] == method + evaluation


@pytest.mark.mpi
@pytest.mark.parametrize("k", [4])  # 2-rank workers: tests/test_trainer_checkpoints_lp.py
def test_mac_learns_on_multi_rank_workers(tmp_path, k):
    params = {"dataset": "digits", "depth": 3, "width": 32, "split": [1, 3], "epochs": 3}
    w_lr = {"type": "float", "low": 0.0099, "high": 0.0101}  # searched: a gene for each worker
    params |= {"w_iters": 5, "w_lr": w_lr, "w_batch": 64, "variant": "1-term", "z_lr": 3e-2}
    for record in run_trainer(tmp_path, 4, k, "mac", params):
        m = record["metrics"]
        assert m["val_acc"] > 0.6, m  # chance is 0.1
        assert m["groups"] == 3 and m["bytes_method"] > 0
        losses = [v for _, v in record["reports"]]
        assert len(losses) == 3 and losses[-1] < losses[0]
