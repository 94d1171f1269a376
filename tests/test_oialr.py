"""The ``oialr`` trainer: the switch to U Σ Vᵀ, re-decompositions and their cut, optimizer
states, byte counts, multi-rank workers and parameter checks."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import run_mpi
from torch import nn

import propagator as pg
from propagator.config import load_objective
from trainers.data import load_data
from trainers.framework import allreduce_gradients, make_optimizer
from trainers.models import build_model
from trainers.oialr import OIALR, LowRankLayer, Settings, settings


class FakeComm:
    """A worker of ``size`` identical replicas: an average is the tensor itself. Records the
    number of elements of every collective."""

    def __init__(self, size: int = 2) -> None:
        self.rank, self.size, self.bytes_sent = 0, size, 0
        self.reduced: list[int] = []
        self.broadcast: list[int] = []

    def allreduce_(self, tensor: torch.Tensor, average: bool = True) -> torch.Tensor:
        self.reduced.append(tensor.numel())
        self.bytes_sent += tensor.numel() * tensor.element_size()
        return tensor

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        self.broadcast.append(tensor.numel())
        self.bytes_sent += tensor.numel() * tensor.element_size()
        return tensor


DIGITS = load_data({"dataset": "digits"})
X, Y = DIGITS.x_train[:128], DIGITS.y_train[:128]
# MLP 64 -> 32 -> 32 -> 10: two low-rank layers (the 10-class head stays full-rank)
FULL = 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10


def _setup(
    optimizer: str = "adam", **oialr: object
) -> tuple[nn.Module, torch.optim.Optimizer, FakeComm, OIALR]:
    torch.manual_seed(0)
    model = build_model({"depth": 2, "width": 32}, (64,), 10)
    params = {"optimizer": optimizer, "lr": 0.01, "momentum": 0.9, **oialr}
    opt = make_optimizer(params, model.parameters())
    comm = FakeComm()
    return model, opt, comm, OIALR(model, opt, comm, settings(params, 100))


def _step(model: nn.Module, opt: torch.optim.Optimizer, comm: FakeComm) -> float:
    opt.zero_grad()
    loss = F.cross_entropy(model(X), Y)
    loss.backward()
    allreduce_gradients(model, comm)
    opt.step()
    return loss.item()


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_after_the_switch_only_sigma_trains_and_the_bases_change_only_at_updates():
    model, opt, comm, oialr = _setup(delay=2, frequency=4, layer_fraction=0.5)
    for t in range(2):
        oialr.before_step(t)
        _step(model, opt, comm)
    assert not oialr.layers and type(model[1]) is nn.Linear
    oialr.before_step(2)
    assert [type(m) for m in model] == [
        nn.Flatten,
        LowRankLayer,
        nn.ReLU,
        LowRankLayer,
        nn.ReLU,
        nn.Linear,
    ]
    first, second = oialr.layers
    bases = [(layer.u.clone(), layer.v.clone()) for layer in oialr.layers]
    sigmas = [layer.sigma.clone() for layer in oialr.layers]
    for t in range(2, 6):  # the first update is due at delay + frequency = 6
        if t > 2:
            oialr.before_step(t)
        _step(model, opt, comm)
        for layer, (u, v) in zip(oialr.layers, bases, strict=True):
            assert layer.u.grad is None and layer.v.grad is None and layer.sigma.grad is not None
            assert torch.equal(layer.u, u) and torch.equal(layer.v, v)
    assert all(
        not torch.equal(s, layer.sigma) for s, layer in zip(sigmas, oialr.layers, strict=True)
    )
    trained = {id(p) for group in opt.param_groups for p in group["params"]}
    assert trained == {id(p) for p in model.parameters() if p.requires_grad}
    frozen = {id(p) for layer in oialr.layers for p in (layer.u, layer.v)}
    assert not trained & frozen
    # ℓ = ceil(L α u): update 1 re-decomposes the last layer only, update 2 both
    oialr.before_step(6)
    assert torch.equal(first.u, bases[0][0]) and not torch.equal(second.u, bases[1][0])
    u_first = first.u.clone()
    oialr.before_step(10)
    assert not torch.equal(first.u, u_first) and oialr.updates == 2


def _layer_with_sigma(singular: list[float]) -> LowRankLayer:
    """A low-rank 8 x 12 layer whose Σ is dense with exactly these singular values."""
    torch.manual_seed(1)
    layer = LowRankLayer.from_layer(nn.Linear(12, 8), FakeComm())
    r = len(singular)
    left, _ = torch.linalg.qr(torch.randn(r, r, dtype=torch.float64))
    right, _ = torch.linalg.qr(torch.randn(r, r, dtype=torch.float64))
    dense = left @ torch.diag(torch.tensor(singular, dtype=torch.float64)) @ right.T
    layer.sigma.data = dense.float()
    return layer


SINGULAR = [5.0, 2.0, 0.6, 0.45, 0.1, 0.05, 0.02, 0.01]


@pytest.mark.parametrize(
    ("cutoff", "kept"), [(0.0, 8), (0.001, 8), (0.08, 4), (0.1, 3), (0.09 + 1e-3, 3), (0.5, 1)]
)
def test_redecomposition_keeps_the_product_up_to_the_dropped_singular_values(cutoff, kept):
    layer = _layer_with_sigma(SINGULAR)
    before = layer.weight.detach().double()
    layer.redecompose(cutoff, FakeComm())
    after = layer.weight.detach().double()
    assert layer.rank == kept
    assert layer.u.shape == (8, kept) and layer.v.shape == (12, kept)
    assert torch.allclose(layer.sigma.diag(), torch.tensor(SINGULAR[:kept]), atol=1e-5)
    assert torch.count_nonzero(layer.sigma - torch.diag(layer.sigma.diag())) == 0
    dropped = math.sqrt(sum(s * s for s in SINGULAR[kept:]))
    assert float(torch.linalg.norm(before - after)) == pytest.approx(dropped, abs=1e-5)
    # the cut is the best rank-k approximation of the product
    u, s, vh = torch.linalg.svd(before)
    best = u[:, :kept] @ torch.diag(s[:kept]) @ vh[:kept]
    assert torch.allclose(after, best, atol=1e-5)
    # U and V keep orthonormal columns
    assert torch.allclose(layer.u.T @ layer.u, torch.eye(kept), atol=1e-5)
    assert torch.allclose(layer.v.T @ layer.v, torch.eye(kept), atol=1e-5)


@pytest.mark.parametrize(
    ("optimizer", "first", "second"),
    [("adam", "exp_avg", "exp_avg_sq"), ("sgd", "momentum_buffer", None)],
)
def test_optimizer_states_follow_sigma_into_its_new_basis(optimizer, first, second):
    model, opt, comm, oialr = _setup(
        optimizer, delay=0, frequency=5, layer_fraction=1.0, sigma_cutoff=0.0
    )
    for t in range(5):
        oialr.before_step(t)
        _step(model, opt, comm)
    layer = oialr.layers[1]
    state = opt.state[layer.sigma]
    momentum = layer.u @ state[first] @ layer.v.T
    mass = float(state[second].sum()) if second else None
    oialr.before_step(5)  # re-decomposition, nothing dropped
    state = opt.state[layer.sigma]
    assert torch.allclose(layer.u @ state[first] @ layer.v.T, momentum, atol=1e-6)
    if second:
        assert float(state[second].sum()) == pytest.approx(mass, rel=1e-4)
        assert bool((state[second] >= 0).all())


def test_a_cut_reshapes_the_optimizer_states_and_training_goes_on():
    model, opt, comm, oialr = _setup(delay=0, frequency=20, layer_fraction=1.0, sigma_cutoff=0.5)
    for t in range(20):
        oialr.before_step(t)
        _step(model, opt, comm)
    oialr.before_step(20)
    ranks = [layer.rank for layer in oialr.layers]
    assert all(r < 32 for r in ranks)
    for layer in oialr.layers:
        state = opt.state[layer.sigma]
        assert state["exp_avg"].shape == state["exp_avg_sq"].shape == (layer.rank, layer.rank)
    losses = [_step(model, opt, comm) for _ in range(15)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert [layer.rank for layer in oialr.layers] == ranks  # no update due in between


def test_bytes_are_the_trainable_tensors_before_and_after_the_switch():
    model, opt, comm, oialr = _setup(delay=3, frequency=4, layer_fraction=1.0, sigma_cutoff=0.3)
    reduced = []
    for t in range(12):
        oialr.before_step(t)
        expected = _trainable(model)
        _step(model, opt, comm)
        reduced.append(comm.reduced[-1])
        assert reduced[-1] == expected
    assert reduced[:3] == [FULL] * 3
    low_rank = 32 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10  # Σ is r x r, r = min(m, n) = 32
    assert reduced[3:7] == [low_rank] * 4
    assert reduced[7] < low_rank  # after the cut at step 7
    # the switch broadcasts each layer's singular values, U and V (r, m r, n r)
    assert comm.broadcast[:6] == [32, 32 * 32, 64 * 32, 32, 32 * 32, 32 * 32]
    assert comm.bytes_sent == 4 * (sum(comm.reduced) + sum(comm.broadcast))


def test_conv_and_transformer_layers_switch_without_changing_the_function():
    data = load_data({"dataset": "digits", "image": True})
    x = data.x_val[:8]
    for params in (
        {"model": "resnet", "image": True, "filters": 4, "blocks": 2},
        {"model": "vit", "image": True, "dim": 16, "heads": 2, "depth": 1},
    ):
        torch.manual_seed(0)
        model = build_model(params, data.input_shape, 10).eval()
        opt = make_optimizer({}, model.parameters())
        oialr = OIALR(model, opt, FakeComm(), settings({"delay": 0}, 10))
        with torch.no_grad():
            before = model(x)
            oialr.before_step(0)
            after = model(x)
        assert len(oialr.layers) >= 2
        assert torch.allclose(before, after, atol=1e-4)


def test_defaults_follow_the_thesis_and_scale_with_the_run():
    # delay: one third of the steps; β = α = 0.1; last layer full-rank (Tables A.1, A.2)
    assert settings({}, 100) == Settings(33, 5, 0.1, 0.1, False, True)
    assert settings({}, 10).frequency == 1
    assert settings({"delay": 7.0, "full_rank_first": True}, 100).delay == 7


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"delay": -1}, "'delay': must be an integer >= 0"),
        ({"delay": 2.5}, "'delay': must be an integer"),
        ({"frequency": 0}, "'frequency': must be an integer >= 1"),
        ({"sigma_cutoff": 1.0}, r"'sigma_cutoff': must be a number in \[0, 1\)"),
        ({"sigma_cutoff": "big"}, "'sigma_cutoff': must be a number"),
        ({"layer_fraction": 0}, r"'layer_fraction': must be a number in \(0, 1\]"),
        ({"full_rank_last": "yes"}, "'full_rank_last': must be true or false"),
    ],
)
def test_bad_params_raise_config_errors(bad, message):
    with pytest.raises(pg.ConfigError, match=message):
        settings(bad, 100)


def test_a_bad_param_is_refused_before_any_work_with_its_name():
    space = pg.Space({"lr": 0.05, "epochs": 1, "depth": 1, "width": 8, "frequency": -3})
    with pytest.raises(pg.ConfigError, match="parameter 'frequency': must be an integer >= 1"):
        pg.search(load_objective("oialr"), space, metric="val_loss", budget=1)


def _steps(k: int, batch: int, epochs: int) -> int:
    shortest = min(len(load_data({"dataset": "digits"}, r, k).x_train) for r in range(k))
    return shortest // (batch // k) * epochs


@pytest.mark.mpi
def test_two_rank_workers_count_every_byte(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    params = {
        "depth": 2,
        "width": 32,
        "epochs": 2,
        "batch_size": 64,
        "momentum": 0.9,
        "delay": 10,
        "frequency": 8,
        "sigma_cutoff": 0.0,
        "layer_fraction": 0.5,
    }
    ranks = run_mpi(4, "trainer", tmp_path, "oialr", "mpi", "2", json.dumps(params))
    records = ranks[0]["records"]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records), records
    total = _steps(2, 64, 2)
    low_rank = 2 * (32 * 32 + 32) + 32 * 10 + 10
    factors = [32 + 32 * 32 + 64 * 32, 32 + 32 * 32 + 32 * 32]  # s, U, V of each layer
    updates = range(1, (total - 1 - 10) // 8 + 1)
    redecomposed = sum(sum(factors[-min(2, u) :]) for u in updates)  # ℓ = ceil(2 * 0.5 * u)
    expected = FULL * (1 + 10) + sum(factors) + low_rank * (total - 10) + redecomposed
    for record in records:
        m = record["metrics"]
        assert m["bytes_sent"] == 4 * expected
        assert m["trainable_parameters"] == low_rank and m["low_rank_updates"] == len(updates)
        assert m["rank0"] == m["rank1"] == 32 and m["val_acc"] > 0.3  # chance: 0.1


@pytest.mark.mpi
def test_a_four_rank_worker_learns_with_fewer_trainable_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    params = {
        "depth": 2,
        "width": 64,
        "epochs": 4,
        "batch_size": 64,
        "momentum": 0.9,
        "sigma_cutoff": 0.3,
        "layer_fraction": 0.5,
    }
    ranks = run_mpi(4, "trainer", tmp_path, "oialr", "mpi", "4", json.dumps(params))
    (record,) = ranks[0]["records"]
    assert record["status"] == "ok", record["error"]
    m = record["metrics"]
    full = 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert [step for step, _ in record["reports"]] == [1, 2, 3, 4]
    assert m["val_acc"] > 0.8
    assert m["rank0"] < 64 and m["rank1"] < 64 and m["trainable_parameters"] < full / 2
    assert m["trainable_share"] < 1 and m["trainable_vs_full"] == m["trainable_parameters"] / full
