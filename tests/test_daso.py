"""The ``daso`` trainer: the stale-state merge (Eq. 3.2), the adaptation of B and S, parameter
checks, B = 1 / S = 0 against the baseline, and byte counts on multi-rank workers."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_mpi

import propagator as pg
from propagator.config import load_objective
from trainers.daso import Settings, SyncSchedule, settings, stale_merge
from trainers.data import load_data

# plain enough that DASO with B = 1, S = 0 is synchronous SGD: no shuffling, float32 transfers
SMALL = {"dataset": "digits", "batch_size": 64, "shuffle": False, "depth": 1, "width": 16}
N_PARAMS = 64 * 16 + 16 + 16 * 10 + 10
TRAIN_SIZE = len(load_data({"dataset": "digits"}).x_train)


def test_stale_merge_is_equation_3_2():
    local = torch.tensor([1.0, -2.0, 4.0])
    senders = [torch.tensor([3.0, 0.0, 2.0]), torch.tensor([5.0, 2.0, 0.0])]
    total = senders[0] + senders[1]
    # S = 1, P = 2: (2 w_l + w_1 + w_2) / 4
    assert torch.equal(stale_merge(local, total, 1, 2), torch.tensor([2.5, -0.5, 2.5]))
    # S = 3, P = 2: (6 w_l + w_1 + w_2) / 8
    assert torch.allclose(stale_merge(local, total, 3, 2), torch.tensor([1.75, -1.25, 3.25]))
    # S = 0: the plain average of the group, whatever the local state
    assert torch.equal(stale_merge(local, total, 0, 2), torch.tensor([4.0, 1.0, 1.0]))


def _schedule(period: int, stale: int, adapt: bool = True) -> SyncSchedule:
    return SyncSchedule(Settings(None, period, stale, 1, 1, adapt, 0.05, 2, 8, True))


def test_plateaus_halve_b_then_reset_it_as_heat_does():
    schedule = _schedule(4, 3)
    assert [schedule.tick() for _ in range(8)] == [False, False, False, True] * 2
    seen = []
    # improving by more than 5% never counts as a plateau
    for loss in [1.0, 0.9, 0.8]:
        schedule.epoch_end(loss)
    assert (schedule.period, schedule.stale) == (4, 3)
    for loss in [0.79, 0.78, 0.78, 0.77, 0.77, 0.77, 0.77, 0.77]:  # a plateau every 2 epochs
        schedule.epoch_end(loss)
        seen.append((schedule.period, schedule.stale))
    assert seen[1::2] == [(2, 2), (1, 1), (8, 2), (4, 1)]
    assert [schedule.tick() for _ in range(4)] == [False, False, False, True]
    zero = _schedule(4, 0)
    for loss in [1.0, 1.0, 1.0]:
        zero.epoch_end(loss)
    assert (zero.period, zero.stale) == (2, 0)  # S = 0 stays blocking
    fixed = _schedule(4, 1, adapt=False)
    for loss in [1.0, 1.0, 1.0, 1.0]:
        fixed.epoch_end(loss)
    assert (fixed.period, fixed.stale) == (4, 1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"stale_steps": 5, "global_sync_period": 4}, "stale_steps must be at most"),
        ({"global_sync_period": 0}, "'global_sync_period': must be an integer >= 1"),
        ({"global_sync_period": "4"}, "'global_sync_period': must be an integer"),
        ({"node_size": 3}, "node_size must divide the worker's 4 ranks"),
        ({"warmup_epochs": 1.5}, "'warmup_epochs': must be an integer"),
        ({"sixteen_bit": "yes"}, "'sixteen_bit': must be true or false"),
        ({"stability_level": 0}, r"'stability_level': must be a number in \(0, 1\)"),
    ],
)
def test_bad_params_raise_config_error(params, message):
    with pytest.raises(pg.ConfigError, match=message):
        settings(params, 4)


def test_config_error_reaches_the_search_and_defaults_are_valid():
    s = settings({}, 4)
    assert (s.period, s.stale, s.sixteen_bit, s.adapt, s.node_size) == (4, 1, True, True, None)
    # a rule between two params holds only at run time: the evaluation fails with it
    space = pg.Space({"lr": 0.05, **SMALL, "stale_steps": 9})
    with pytest.raises(pg.ObjectiveError, match="stale_steps must be at most"):
        pg.search(load_objective("daso"), space, metric="val_loss", budget=1)


def _baseline(params: dict) -> dict:
    space = pg.Space({"lr": pg.Float(0.049, 0.051), **params})
    train = load_objective("baseline")
    # the GA, as the MPI trainer scenario: the same first configuration (lr) for a seed
    result = pg.search(train, space, metric="val_loss", budget=1, seed=0, strategy="ga")
    record = result.records[0]
    assert record.ok, record.error
    return {"metrics": record.metrics, "params": record.params, "reports": record.intermediate}


@pytest.mark.mpi
def test_b1_s0_on_two_nodes_follows_the_baseline_and_counts_bytes(tmp_path):
    common = {**SMALL, "epochs": 2, "momentum": 0.9}
    daso = {**common, "node_size": 2, "global_sync_period": 1, "stale_steps": 0}
    daso |= {"sixteen_bit": False, "adapt_sync": False, "warmup_epochs": 0, "cooldown_epochs": 0}
    ranks = run_mpi(4, "trainer", tmp_path, "daso", "mpi", "4", json.dumps(daso), timeout=300)
    (record,) = ranks[0]["records"]
    assert record["status"] == "ok", record["error"]
    single = _baseline(common)
    assert record["params"]["lr"] == single["params"]["lr"]
    # averaging node-updated parameters over equal nodes is averaging gradients for SGD with
    # momentum (linear in the gradients): the same trajectory up to float sums
    for (_, a), (_, b) in zip(record["reports"], single["reports"], strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    m = record["metrics"]
    assert m["val_loss"] == pytest.approx(single["metrics"]["val_loss"], rel=1e-4)
    steps = (TRAIN_SIZE // 4) // 16 * 2  # 16 per rank; the shortest shard sets the steps
    assert m["global_syncs"] == steps
    # rank 0 sends every gradient to its node; it is the sender of every second global sync
    # (round-robin over the 2 global groups) and then broadcasts the merged float32 weights
    assert m["bytes_local"] == 4 * N_PARAMS * (steps + steps // 2)
    assert m["bytes_global"] == 4 * N_PARAMS * (steps // 2)
    assert m["bytes_sent"] == m["bytes_local"] + m["bytes_global"] + 4 * N_PARAMS


@pytest.mark.mpi
def test_two_rank_workers_with_stale_bf16_syncs_learn_and_count_bytes(tmp_path):
    params = {**SMALL, "shuffle": True, "epochs": 3, "momentum": 0.9, "node_size": 1}
    params |= {"global_sync_period": 4, "stale_steps": 1, "adapt_sync": False}
    ranks = run_mpi(4, "trainer", tmp_path, "daso", "mpi", "2", json.dumps(params), timeout=300)
    records = ranks[0]["records"]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records), records
    steps = (TRAIN_SIZE // 2) // 32
    # warm-up and cool-down epochs sync every step; the one cycling epoch every 4th step
    syncs = 2 * steps + steps // 4
    for r in records:
        m = r["metrics"]
        assert m["val_acc"] > 0.85 and m["val_loss"] < 0.6  # chance: 0.1 and 2.3
        assert m["global_syncs"] == syncs
        assert m["bytes_local"] == 0  # nodes of one rank: nothing to average locally
        assert m["bytes_global"] == 2 * N_PARAMS * syncs  # bfloat16: 2 bytes a parameter
        assert m["bytes_sent"] == m["bytes_global"] + 4 * N_PARAMS
