"""The trainer framework and the baseline trainer: data, models, collectives, byte counts,
and multi-rank runs under mpiexec."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from conftest import run_mpi

import propagator as pg
from propagator.config import load_objective
from trainers.data import load_data
from trainers.models import ORDERS, build_model

# global batch 64 -> 32 per rank on 2 ranks; no shuffling, plain SGD: k ranks = one rank
EXACT = {
    "dataset": "digits",
    "epochs": 2,
    "batch_size": 64,
    "shuffle": False,
    "depth": 1,
    "width": 16,
}


def _one(params: dict) -> dict:
    train = load_objective("baseline")
    space = pg.Space({"lr": pg.Float(0.049, 0.051), **params})
    # the GA, as the MPI trainer scenario: the same first configuration (lr) for a seed
    result = pg.search(train, space, metric="val_loss", budget=1, seed=0, strategy="ga")
    record = result.records[0]
    assert record.ok, record.error
    return {"metrics": record.metrics, "params": record.params, "reports": record.intermediate}


def test_baseline_learns_digits_and_reports_every_epoch():
    out = _one({"epochs": 4, "momentum": 0.9, "depth": 2, "width": 64})
    m = out["metrics"]
    assert m["val_acc"] > 0.9 and m["val_loss"] < 0.4
    assert [step for step, _ in out["reports"]] == [1, 2, 3, 4]
    assert m["bytes_sent"] == 0  # one rank: nothing to send
    assert m["parameters"] == 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    assert m["trainable_share"] == 1.0


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["mpi", "torch"])
def test_two_ranks_follow_the_one_rank_trajectory_and_count_bytes(tmp_path, backend):
    single = _one(EXACT)
    ranks = run_mpi(2, "trainer", tmp_path, "baseline", backend, "2", json.dumps(EXACT))
    (record,) = ranks[0]["records"]
    assert record["status"] == "ok", record["error"]
    assert record["params"]["lr"] == single["params"]["lr"]
    assert record["metrics"]["val_loss"] == pytest.approx(single["metrics"]["val_loss"], rel=1e-4)
    for (_, a), (_, b) in zip(record["reports"], single["reports"], strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    # bytes: one gradient bucket per step + rank 0's initial broadcast of the weights
    n_params = 64 * 16 + 16 + 16 * 10 + 10
    train_size = len(load_data({"dataset": "digits"}).x_train)
    steps = (train_size // 2) // 32 * EXACT["epochs"]
    assert record["metrics"]["bytes_sent"] == 4 * n_params * (steps + 1)


@pytest.mark.mpi
@pytest.mark.parametrize("k", [4])  # 2-rank workers: tests/test_trainer_checkpoints.py
def test_baseline_on_multi_rank_workers(tmp_path, k):
    params = {
        "epochs": 3,
        "model": "resnet",
        "image": True,
        "filters": 8,
        "blocks": 2,
        "momentum": 0.9,
        "batch_size": 32,
    }
    ranks = run_mpi(4, "trainer", tmp_path, "baseline", "mpi", str(k), json.dumps(params))
    records = ranks[0]["records"]
    assert len(records) == 4 // k
    assert all(r["status"] == "ok" for r in records), records
    # it learned (chance is 0.1 accuracy, loss 2.3)
    assert all(r["metrics"]["train_loss"] < 1.2 and r["metrics"]["val_acc"] > 0.25 for r in records)


@pytest.mark.parametrize("order", ORDERS)
def test_resnet_orders_and_vit_build_and_run_on_images(order):
    data = load_data({"dataset": "digits", "image": True})
    x = data.x_val[:5]
    resnet = build_model({"model": "resnet", "order": order, "blocks": 3}, data.input_shape, 10)
    assert resnet(x).shape == (5, 10)
    vit = build_model({"model": "vit", "patch": 2, "dim": 16, "heads": 2}, data.input_shape, 10)
    assert vit(x).shape == (5, 10)


def test_mlp_widths_per_layer():
    model = build_model({"depth": 3, "width": 8, "width2": 5}, (64,), 10)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [8, 5, 8, 10]


def test_shards_partition_the_training_set_and_synthetic_data_is_deterministic():
    full = load_data({"dataset": "classification", "n_samples": 500})
    shards = [load_data({"dataset": "classification", "n_samples": 500}, r, 3) for r in range(3)]
    together = torch.cat([s.x_train for s in shards])
    assert len(together) == len(full.x_train)
    assert set(map(tuple, together.tolist())) == set(map(tuple, full.x_train.tolist()))
    again = load_data({"dataset": "classification", "n_samples": 500})
    assert torch.equal(again.x_val, full.x_val) and full.n_outputs == 4
    reg = load_data({"dataset": "regression", "n_samples": 300, "n_features": 5})
    assert reg.task == "regression" and reg.n_outputs == 1


def test_user_arrays_from_npz_and_hdf5(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(tmp_path / "d.npz", features=x, labels=y)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
    a = load_data({"dataset": str(tmp_path / "d.npz"), "x_key": "features", "y_key": "labels"})
    b = load_data({"dataset": str(tmp_path / "d.h5")})
    assert torch.equal(a.x_val, b.x_val) and a.task == "classification" and a.n_outputs == 2
    # the HDF5 reader reads only the shard's rows, in the same order as the in-memory split
    shard_npz = load_data(
        {"dataset": str(tmp_path / "d.npz"), "x_key": "features", "y_key": "labels"}, 1, 3
    )
    shard_h5 = load_data({"dataset": str(tmp_path / "d.h5")}, 1, 3)
    assert torch.equal(shard_npz.x_train, shard_h5.x_train) and len(shard_h5.x_train) == len(
        range(1, 160, 3)
    )
    assert torch.equal(shard_npz.y_train, shard_h5.y_train)
    with pytest.raises(pg.ConfigError, match="has no array 'x'"):
        load_data({"dataset": str(tmp_path / "d.npz")})
