"""The ``ab`` trainer (AB training): the Eq. 5.8 merge, the decomposition, frozen factors in the
independent phase, the phase plan, byte counts and multi-rank runs under mpiexec.

Run as ``mpiexec -n 4 python tests/test_ab.py OUT`` it is the MPI half of
:func:`test_distributed_merge_is_eq_5_8_on_4_ranks`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import propagator as pg
from propagator.config import load_objective
from trainers.ab import (
    LowRank,
    ab_decomposition,
    ab_merge,
    eligible_layers,
    make_plan,
    make_settings,
    reset_optimizer,
    to_low_rank,
)

M, K, N = 5, 3, 4  # A is M x K, B is K x N


def _factors(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(M, K, generator=g, dtype=torch.float64), torch.randn(
        K, N, generator=g, dtype=torch.float64
    )


def _eq_5_8() -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Workers 1, 2 trained A (B stayed B0), workers 3, 4 trained B (A stayed A0): the factors
    each worker holds, and the thesis's expansion of the merge."""
    (a0, b0), (a1, _), (a2, _), (_, b3), (_, b4) = (_factors(s) for s in range(5))
    expansion = (
        4 * a0 @ b0
        + 2 * a1 @ b0
        + 2 * a2 @ b0
        + 2 * a0 @ b3
        + 2 * a0 @ b4
        + a1 @ b3
        + a1 @ b4
        + a2 @ b3
        + a2 @ b4
    ) / 16
    return [a1, a2, a0, a0], [b0, b0, b3, b4], expansion


def test_merge_is_the_expansion_of_eq_5_8_not_the_mean_of_products():
    a, b, expansion = _eq_5_8()
    merged = ab_merge(a, b)
    torch.testing.assert_close(merged, expansion, rtol=1e-12, atol=1e-12)
    eq_5_7 = sum(x @ y for x, y in zip(a, b, strict=True)) / 4
    assert (merged - eq_5_7).abs().max() > 0.1


def _merge_on_this_rank(out: Path) -> None:
    """The MPI half: rank i holds worker i+1's factors of Eq. 5.8 in a LowRank layer."""
    from mpi4py import MPI

    from trainers.ab import merge_groups, to_full_rank
    from trainers.collectives import MPICollectives

    comm = MPICollectives(MPI.COMM_WORLD)
    a, b, _ = _eq_5_8()
    model = nn.Sequential(nn.Linear(N, M, bias=False).double())
    model[0] = LowRank(model[0], a[comm.rank], b[comm.rank])
    sent = merge_groups(model, comm)
    to_full_rank([(model, "0")])
    if comm.rank == 0:
        out.write_text(json.dumps({"w": model[0].weight.tolist(), "bytes": sent}))


@pytest.mark.mpi
def test_distributed_merge_is_eq_5_8_on_4_ranks(tmp_path):
    out = tmp_path / "merge.json"
    cmd = ["mpiexec", "-n", "4", sys.executable, __file__, str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, timeout=120, env=env, cwd=Path(__file__).parents[1])
    got = json.loads(out.read_text())
    torch.testing.assert_close(torch.tensor(got["w"], dtype=torch.float64), _eq_5_8()[2])
    assert got["bytes"] == 8 * (M * K + K * N)  # float64 A and B, once


def test_decomposition_follows_the_sigma_cutoff():
    u, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    s = torch.tensor([4.0, 2.0, 0.5, 0.1], dtype=torch.float64)
    w = u[:, :4] * s @ v.T  # singular values 4, 2, 0.5, 0.1
    a, b = ab_decomposition(w, 0.1)  # keeps s > 0.4: three
    assert a.shape == (6, 3) and b.shape == (3, 4)
    torch.testing.assert_close(a.T @ a, torch.diag(s[:3]))  # A = U S^1/2
    torch.testing.assert_close(b @ b.T, torch.diag(s[:3]))  # B = S^1/2 V^T
    residual = torch.linalg.matrix_norm(w - a @ b, ord=2)
    assert float(residual) == pytest.approx(0.1)
    assert ab_decomposition(w, 0.0)[0].shape == (6, 4)
    conv = torch.randn(8, 3, 3, 3)  # flattened to 8 x 27
    assert [t.shape for t in ab_decomposition(conv, 0.0)] == [(8, 8), (8, 27)]


@pytest.mark.parametrize("train_a", [True, False])
def test_independent_phase_trains_only_the_groups_factor(train_a):
    from mpi4py import MPI

    torch.manual_seed(0)
    layers = [nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3)]
    model = nn.Sequential(*layers)
    slots = eligible_layers(model, True, True)
    assert slots == [(model, "2")]
    before = model(torch.ones(1, 8))
    assert to_low_rank(slots, 0.0, train_a, MPI.COMM_SELF) == 0  # nothing to agree on alone
    torch.testing.assert_close(model(torch.ones(1, 8)), before)  # full rank: W = A B exactly
    low = model[2]
    a, b = low.a.detach().clone(), low.b.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    reset_optimizer(optimizer, model)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(4, 8)).square().mean().backward()
        optimizer.step()
    trained, frozen = (low.a, low.b) if train_a else (low.b, low.a)
    assert torch.equal(frozen, a if not train_a else b)
    assert (trained - (a if train_a else b)).abs().max() > 1e-3
    assert not frozen.requires_grad
    assert all(p is not frozen for p in optimizer.param_groups[0]["params"])


def test_plan_phases_and_lr_rebound():
    lengths = {"ab_warmup": 0.2, "ab_steps": 0.1, "ab_rebound": 0.5, "ab_lr_rebound": 0.4}
    plan = make_plan(lengths, 50)
    assert (plan.warmup, plan.ab_steps, plan.rebound, plan.lr_rebound) == (10, 5, 2, 2)
    stages = [plan.phase(t)[0][0] for t in range(50)]
    assert "".join(stages) == "w" * 10 + ("a" * 5 + "r" * 2) * 5 + "a" * 5
    assert [t for t in range(50) if plan.ends_ab(t)] == [14, 21, 28, 35, 42, 49]
    assert [plan.lr_factor(t) for t in (9, 10, 11, 12, 15, 16)] == [1, 0.5, 1, 1, 0.5, 1]
    defaults = make_plan({}, 3000)  # the §5.3.3 guidelines
    assert (defaults.warmup, defaults.ab_steps, defaults.rebound, defaults.lr_rebound) == (
        600,
        100,
        25,
        50,
    )


@pytest.mark.parametrize(
    ("params", "ranks", "message"),
    [
        ({"ab_cutoff": 1.0}, 4, "ab_cutoff"),
        ({"ab_cutoff": -0.1}, 4, "ab_cutoff"),
        ({"ab_group_size": 3}, 4, "ab_group_size"),
        ({"ab_group_size": 0}, 4, "ab_group_size"),
        ({"ab_full_rank_last": "no"}, 4, "ab_full_rank_last"),
        ({"ab_warmup": 1.5}, 4, "ab_warmup"),
        ({"ab_steps": 0}, 4, "ab_steps"),
        ({"ab_rebound": -1}, 4, "ab_rebound"),
        ({"ab_lr_rebound": -0.5}, 4, "ab_lr_rebound"),
    ],
)
def test_bad_params_raise_config_error(params, ranks, message):
    with pytest.raises(pg.ConfigError, match=message):
        make_settings(params, ranks)
        make_plan(params, 100)


def _one(params: dict) -> dict:
    space = pg.Space({"lr": 0.05, **params})
    record = pg.search(load_objective("ab"), space, metric="val_loss", budget=1, seed=0).records[0]
    assert record.ok, record.error
    return record.metrics


SMALL = {"depth": 3, "width": 16, "epochs": 2, "batch_size": 32, "momentum": 0.9}


def test_all_warm_up_is_the_baseline_and_one_rank_runs_without_groups():
    space = pg.Space({"lr": 0.05, **SMALL})
    baseline = pg.search(load_objective("baseline"), space, budget=1, seed=0, metric="val_loss")
    assert _one({**SMALL, "ab_warmup": 1.0})["val_loss"] == baseline.records[0].metrics["val_loss"]
    alone = _one({**SMALL, "ab_steps": 0.2})  # one rank: "AB - No Groups", nothing sent
    assert alone["ab_merges"] == 4 and alone["bytes_sent"] == 0
    assert alone["val_loss"] < 2.0  # it learned: chance is 2.3 (the baseline reaches 1.3 here)


def _expected_bytes(params: dict, k: int, group_size: int) -> tuple[int, int, int]:
    """(bytes rank 0 sends, full-rank steps, merges) for SMALL with ``ab_cutoff`` 0 on a worker
    of ``k`` ranks: the decomposed 16 x 16 layers keep rank 16, so A and B are 16 x 16."""
    from trainers.data import load_data

    n_params = 64 * 16 + 16 + 2 * (16 * 16 + 16) + 16 * 10 + 10
    low_rank = n_params + 2 * 16 * 16  # A and B instead of W in two layers
    train_size = len(load_data({"dataset": "digits"}).x_train)
    steps = (train_size // k) // (SMALL["batch_size"] // k) * SMALL["epochs"]
    plan = make_plan(params, steps)
    phases = [plan.phase(t) for t in range(steps)]
    full = sum(stage != "ab" for stage, _ in phases)
    starts = sum(p == ("ab", 0) for p in phases)
    ab_steps = steps - full
    merges = sum(map(plan.ends_ab, range(steps)))
    sent = 4 * n_params * (full + 1)  # gradient buckets and rank 0's initial broadcast
    sent += 8 * 2 * starts  # agreeing on the two layers' ranks
    if k // group_size > 1:
        sent += 4 * low_rank * merges
    if group_size > 1:  # rank 0 trains A (same size as W here) and the rest, inside its group
        sent += 4 * n_params * ab_steps
    return sent, full, merges


@pytest.mark.mpi
@pytest.mark.parametrize(("k", "group_size"), [(2, 1), (4, 2)])
def test_multi_rank_workers_learn_and_count_bytes(tmp_path, k, group_size):
    from conftest import run_mpi

    lr = {"type": "float", "low": 0.199, "high": 0.201}  # searched: a gene for each worker
    params = {**SMALL, "lr": lr, "ab_cutoff": 0.0, "ab_steps": 0.15, "ab_group_size": group_size}
    ranks = run_mpi(4, "trainer", tmp_path, "ab", "mpi", str(k), json.dumps(params))
    records = ranks[0]["records"]
    assert len(records) == 4 // k and all(r["status"] == "ok" for r in records), records
    sent, full, merges = _expected_bytes(params, k, group_size)
    for r in records:
        m = r["metrics"]
        assert (m["full_rank_steps"], m["ab_merges"]) == (full, merges)
        assert m["bytes_sent"] == sent
        assert m["bytes_sent"] == m["bytes_full_rank"] + m["bytes_merge"] + m["bytes_group"]
        assert m["val_loss"] < 2.0  # chance: 2.3
        # groups of 2 all-reduce A (as large as W at full rank 16) every independent step
        assert m["comm_reduction"] > 0.2 if group_size == 1 else m["comm_reduction"] < 0
        assert [step for step, _ in r["reports"]] == [1, 2]


if __name__ == "__main__":
    _merge_on_this_rank(Path(sys.argv[1]))
