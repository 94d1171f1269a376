"""The layer-parallel chain: placement of stages on ranks, FIFO channels, cutting models into
groups, and the layer-serial evaluation through the chain on one rank and on several."""

from __future__ import annotations

import pytest
import torch
from conftest import run_mpi
from hypothesis import given
from hypothesis import strategies as st
from mpi4py import MPI

import propagator as pg
from trainers.chain import Chain, owners
from trainers.collectives import MPICollectives
from trainers.data import load_data
from trainers.framework import evaluate as evaluate_whole
from trainers.models import build_model
from trainers.partition import boundary_shapes, group_sizes, partition


@given(st.integers(1, 40), st.integers(1, 16))
def test_owners_are_contiguous_balanced_blocks(stages, ranks):
    owner = owners(stages, ranks)
    assert len(owner) == stages
    assert owner == sorted(owner) and owner[0] == 0
    counts = [owner.count(r) for r in range(min(stages, ranks))]
    assert max(counts) - min(counts) <= 1 and min(counts) >= 1
    assert max(owner) == min(stages, ranks) - 1


def test_one_rank_holds_every_stage_and_channels_are_fifo_copies():
    chain = Chain(MPICollectives(MPI.COMM_SELF), 3, ["a", "b"])
    assert chain.mine == [0, 1, 2]
    t = torch.ones(2)
    chain.send("a", 0, 1, t)
    chain.send("a", 0, 1, 2 * t)
    chain.send("b", 0, 1, 3 * t)
    t.add_(10)  # the receiver holds a copy, as it would after an MPI message
    assert chain.recv("b", 0, 1, (2,)).tolist() == [3, 3]
    assert chain.recv("a", 0, 1, (2,)).tolist() == [1, 1]
    assert chain.recv("a", 0, 1, (2,)).tolist() == [2, 2]
    with pytest.raises(RuntimeError, match="never sent"):
        chain.recv("a", 0, 1, (2,))
    assert chain.comm.bytes_sent == 0


@given(st.integers(2, 12), st.data())
def test_group_sizes_cover_the_layers(n_units, data):
    k = data.draw(st.integers(1, n_units))
    sizes = group_sizes({"modules": k}, n_units)
    assert sum(sizes) == n_units and len(sizes) == k and max(sizes) - min(sizes) <= 1
    cuts = sorted(data.draw(st.sets(st.integers(1, n_units - 1), min_size=1)))
    sizes = group_sizes({"split": cuts}, n_units)
    assert sum(sizes) == n_units and len(sizes) == len(cuts) + 1 and min(sizes) >= 1


@pytest.mark.parametrize(
    "bad", [{"split": 0}, {"split": 6}, {"split": [3, 2]}, {"split": [2, 2]}, {"modules": 7}]
)
def test_bad_splits_name_the_field(bad):
    with pytest.raises(pg.ConfigError, match=r"split|modules"):
        group_sizes(bad, 6)


@pytest.mark.parametrize(
    ("params", "shape", "expected"),
    [
        ({"depth": 5, "width": 256, "split": 1}, (64,), [(64,), (256,), (10,)]),
        ({"depth": 5, "width": 32, "split": [3, 5]}, (64,), [(64,), (32,), (32,), (10,)]),
        (
            {"model": "resnet", "blocks": 4, "filters": 4, "modules": 3},
            (1, 8, 8),
            [(1, 8, 8), (4, 8, 8), (8, 4, 4), (10,)],
        ),
    ],
)
def test_groups_compose_to_the_model(params, shape, expected):
    model = build_model(params, shape, 10).eval()
    groups = partition(model, params)
    assert boundary_shapes(groups, shape) == expected
    x = torch.randn(5, *shape)
    h = x
    for g in groups:
        h = g(h)
    assert torch.equal(h, model(x))
    assert sum(p.numel() for g in groups for p in g.parameters()) == sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.mpi
@pytest.mark.parametrize(("ranks", "stages", "backend"), [(2, 4, "mpi"), (3, 2, "torch")])
def test_chain_messages_and_layer_serial_evaluation_across_ranks(tmp_path, ranks, stages, backend):
    out = run_mpi(ranks, "chain", tmp_path, backend, str(stages))
    torch.manual_seed(pg.Trial(0, MPI.COMM_SELF, 0, 0, 7).seed)  # what setup() seeds
    data = load_data({"dataset": "digits"})
    model = build_model({"depth": 3, "width": 8}, data.input_shape, data.n_outputs)
    loss, acc = evaluate_whole(model, data, torch.device("cpu"))
    held = [s for r in out for s in r["mine"]]
    assert held == list(range(stages))  # each stage once, in rank order
    for r in out:
        assert r["loss"] == pytest.approx(loss, rel=1e-6) and r["acc"] == pytest.approx(acc)
        for s in r["mine"]:
            expected = [
                100.0 * d + step for d in (s - 1, s + 1) if 0 <= d < stages for step in (0, 1)
            ]
            assert r["got"][: len(expected)] == expected
            r["got"] = r["got"][len(expected) :]
    # bytes: a ping (4 bytes) per step across a rank boundary, and the evaluation's activations
    # (8 floats per validation sample) at each boundary between ranks, plus the shared result
    n_val = len(data.x_val)
    owner = owners(stages, ranks)
    for rank, r in enumerate(out):
        crossing = [
            s for s in r["mine"] for d in (s - 1, s + 1) if 0 <= d < stages and owner[d] != rank
        ]
        forward = [s for s in r["mine"] if s + 1 < stages and owner[s + 1] != rank]
        shared = 16 if owner[-1] == rank else 0
        assert r["bytes"] == 2 * 4 * len(crossing) + 4 * 8 * n_val * len(forward) + shared
