"""DDG (Alg. 9/10) and FR (Alg. 11): one module is backpropagation, the weight trajectories
against references written from the algorithms, memory diagnostics, bad params, and the chain
on 2 and 4 ranks (same numbers as one rank, byte counts, learning)."""

from __future__ import annotations

import json
from collections import deque

import pytest
import torch
from conftest import run_mpi
from mpi4py import MPI

import propagator as pg
from propagator.engine.evaluation import Trial
from trainers import baseline, ddg, fr
from trainers.data import load_data
from trainers.framework import batches, loss_function, make_optimizer, make_schedule
from trainers.models import build_model
from trainers.partition import partition

TRAINERS = {"ddg": ddg, "fr": fr}
# 3 modules of Linear + tanh (the last a bare Linear), no shuffling: the references below
TINY = {
    "dataset": "digits",
    "depth": 2,
    "width": 8,
    "activation": "tanh",
    "modules": 3,
    "batch_size": 16,
    "epochs": 1,
    "shuffle": False,
}
SEED = 5
# the references step their schedules also while a module waits for its first gradient
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One torch thread here and in every rank of the mpiexec children (setup() applies
    OMP_NUM_THREADS; 4 ranks share 2 cores); this process's thread count restored afterwards."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _trial(trial_id: int = 0, run_seed: int = SEED) -> Trial:
    return Trial(trial_id, MPI.COMM_SELF, 0, 0, run_seed)


@pytest.mark.parametrize("name", TRAINERS)
@pytest.mark.parametrize(
    "extra",
    [
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3, "dropout": 0.2},
        {"optimizer": "adam", "lr": 1e-3, "schedule": "cosine", "warmup_steps": 5},
        {"model": "resnet", "image": True, "filters": 4, "blocks": 2, "lr": 0.05},
    ],
)
def test_one_module_is_the_baseline_trainer(name, extra):
    params = {"dataset": "digits", "epochs": 2, "batch_size": 64, "modules": 1, **extra}
    expected_trial, trial = _trial(), _trial()
    expected = baseline.train(params, expected_trial)
    got = TRAINERS[name].train(params, trial)
    assert got["train_loss"] == expected["train_loss"]  # the same floats, step by step
    assert got["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)
    assert got["val_acc"] == pytest.approx(expected["val_acc"])
    for (_, a), (_, b) in zip(trial.reports, expected_trial.reports, strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert got["parameters"] == expected["parameters"] and got["bytes_sent"] == 0
    assert got["stored_weights"] == 0


def _start(params: dict) -> tuple:
    """What the trainers start from: the data, the model's groups (seeded as setup() seeds),
    one optimizer and schedule per group."""
    torch.manual_seed(_trial().seed)
    data = load_data(params)
    groups = partition(build_model(params, data.input_shape, data.n_outputs), params)
    optimizers = [make_optimizer(params, g.parameters()) for g in groups]
    total = len(data.x_train) // params["batch_size"]
    schedules = [make_schedule(params, o, total) for o in optimizers]
    samples = batches(data, params["batch_size"], total, 0, _trial().seed, shuffle=False)
    return data, groups, optimizers, schedules, samples


def _ddg_reference(params: dict, n: int) -> list[dict]:
    """§1.5's simulation of Alg. 9: the full BP gradient at w^t on sample t each iteration,
    module k's slice released from a FIFO after D_k = K - 1 - k iterations."""
    data, groups, optimizers, schedules, samples = _start(params)
    model = torch.nn.Sequential(*groups)
    fifos = [deque() for _ in groups]
    for _, (x, y) in zip(range(n), samples, strict=False):
        model.zero_grad()
        loss_function(data.task)(model(x), y).backward()
        for k, group in enumerate(groups):
            fifos[k].append([w.grad.clone() for w in group.parameters()])
            if len(fifos[k]) > len(groups) - 1 - k:
                for w, g in zip(group.parameters(), fifos[k].popleft(), strict=True):
                    w.grad = g
                optimizers[k].step()
        for s in schedules:
            s.step()
    return [g.state_dict() for g in groups]


def _fr_reference(params: dict, n: int) -> list[dict]:
    """Alg. 11 as written: play (store each module's input, forward with w^t), then replay:
    module k recomputes its output from the input of sample t - D_k with the current weights
    and backpropagates the δ module k + 1 computed for that sample at iteration t - 1 (the
    last module: the loss). The replay runs on copies of the BatchNorm buffers, so that only
    the play updates them."""
    data, groups, optimizers, schedules, samples = _start(params)
    K, inputs, deltas = len(groups), [{} for _ in groups], {}
    for t, (x, y) in zip(range(n), samples, strict=False):
        h = x
        with torch.no_grad():
            for k, group in enumerate(groups):
                inputs[k][t] = h
                h = group(h)
        new = {}
        for k, group in enumerate(groups):
            sample = t - (K - 1 - k)
            if sample < 0 or (k < K - 1 and (k, sample) not in deltas):
                continue
            h = inputs[k].pop(sample).clone().requires_grad_(k > 0)
            state = {**dict(group.named_parameters())}
            state |= {name: b.clone() for name, b in group.named_buffers()}
            out = torch.func.functional_call(group, state, (h,))
            group.zero_grad()
            if k == K - 1:
                loss_function(data.task)(out, y).backward()
            else:
                out.backward(deltas.pop((k, sample)))
            if k > 0:
                new[(k - 1, sample)] = h.grad
            optimizers[k].step()
        deltas |= new
        for s in schedules:
            s.step()
    return [g.state_dict() for g in groups]


REFERENCES = {"ddg": _ddg_reference, "fr": _fr_reference}
SETTINGS = [
    {"lr": 0.2},
    {"optimizer": "adam", "lr": 0.01},
    {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3, "norm": "batch", "schedule": "cosine"},
]


@pytest.mark.parametrize("name", TRAINERS)
@pytest.mark.parametrize("extra", SETTINGS)
def test_weight_trajectory_follows_the_algorithm(name, extra):
    params = {**TINY, **extra}
    for n in (1, 2, 3, 4, 7):
        got = TRAINERS[name].fit(params, _trial(), iterations=n).state()
        expected = REFERENCES[name](params, n)
        for k, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert a.keys() == b.keys()
            for key in a:
                assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-5, atol=1e-7), (
                    f"{name} after {n} iterations: module {k} {key}"
                )


def test_the_first_modules_wait_for_their_delay():
    # with 3 modules, module k is untouched for D_k = 2 - k iterations
    start = ddg.fit(TINY, _trial(), iterations=0).state()
    for n, frozen in [(1, [0, 1]), (2, [0]), (3, [])]:
        for name in TRAINERS:
            state = TRAINERS[name].fit({**TINY, "lr": 0.2}, _trial(), iterations=n).state()
            for k in range(3):
                same = all(torch.equal(state[k][key], start[k][key]) for key in state[k])
                assert same == (k in frozen), (name, n, k)


def test_memory_diagnostics_follow_table_6():
    params = {**TINY, "epochs": 1, "lr": 0.1}
    out = {name: TRAINERS[name].train(params, _trial()) for name in TRAINERS}
    # DDG snapshots module k's weights for each of the D_k + 1 samples in flight (not the last)
    weights = [(64 * 8 + 8) * 4, (8 * 8 + 8) * 4]
    assert out["ddg"]["stored_weights"] == 3 * weights[0] + 2 * weights[1]
    assert out["fr"]["stored_weights"] == 0
    # FR keeps module inputs only (plus the last module's graph); DDG whole graphs
    batch = 16 * 4
    fr_inputs = 3 * 64 * batch + 2 * 8 * batch
    assert fr_inputs < out["fr"]["stored_activations"] < out["ddg"]["stored_activations"]


@pytest.mark.parametrize("name", TRAINERS)
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": 10_000}, "batch_size"),
        ({"modules": 4}, "modules"),
        ({"split": [2, 1]}, "split"),
        ({"model": "vit", "image": True, "activation": "gelu"}, r"one of \['mlp', 'resnet'\]"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"schedule": "cyclic"}, "schedule"),
    ],
)
def test_bad_params_name_the_field(name, bad, match):
    with pytest.raises(pg.ConfigError, match=match):
        TRAINERS[name].train({**TINY, **bad}, _trial())


# the MPI runs: lr is drawn from [0.049, 0.051] by the trainer scenario (run seed 0)
CHAIN = {"dataset": "digits", "epochs": 3, "batch_size": 32, "depth": 3, "width": 128}
CHAIN |= {"norm": "batch", "momentum": 0.5}


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("name", "ranks", "modules", "extra"),
    [
        # rank 0 holds modules 0 and 1, rank 1 module 2; messages of 128 KiB, far above MPI's
        # eager limit: none may still be in flight when the ranks meet for an evaluation
        ("ddg", 2, 3, {"width": 512, "batch_size": 64}),
        ("fr", 2, 4, {}),  # two modules per rank
        ("ddg", 4, 4, {"dropout": 0.1}),  # one module per rank; dropout streams per stage
        ("fr", 4, 3, {}),  # rank 3 holds nothing
    ],
)
def test_chain_on_several_ranks_is_the_one_rank_run_and_learns(
    tmp_path, name, ranks, modules, extra
):
    params = {**CHAIN, "modules": modules, **extra}
    out = run_mpi(ranks, "trainer", tmp_path, name, "mpi", str(ranks), json.dumps(params))
    (record,) = out[0]["records"]
    assert record["status"] == "ok", record["error"]
    metrics = record["metrics"]
    # the run's only evaluation: id 0 in a run with seed 0
    alone_trial = _trial(0, run_seed=0)
    alone = TRAINERS[name].train({**params, "lr": record["params"]["lr"]}, alone_trial)
    assert metrics["val_loss"] == pytest.approx(alone["val_loss"], rel=1e-6)
    assert metrics["train_loss"] == pytest.approx(alone["train_loss"], rel=1e-6)
    assert [s for s, _ in record["reports"]] == [1, 2, 3]
    for (_, a), (_, b) in zip(record["reports"], alone_trial.reports, strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert metrics["val_acc"] > 0.5  # chance is 0.1
    assert metrics["stored_activations"] > 0 and metrics["epoch_time"] > 0
    if ranks == 2:
        _check_bytes(metrics, params)


def _check_bytes(metrics: dict, params: dict) -> None:
    """Rank 0 sends the activations at the one boundary between the ranks (after module
    ``b``) every iteration and in every evaluation (one per epoch and the final one); the
    error gradients come back from iteration D_b on, except in the last iteration."""
    data, modules = load_data({"dataset": "digits"}), params["modules"]
    b = (modules + 1) // 2 - 1  # the last module of rank 0
    steps = len(data.x_train) // params["batch_size"]
    iterations = steps * params["epochs"]
    activation = params["batch_size"] * params["width"] * 4
    evaluation = len(data.x_val) * params["width"] * 4 * (params["epochs"] + 1)
    assert metrics["bytes_sent"] == iterations * activation + evaluation
    gradients = iterations - (modules - 1 - b)
    assert metrics["pipeline_bytes"] == (iterations + gradients) * activation
