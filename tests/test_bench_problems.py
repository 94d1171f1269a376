"""Tests for the quality benchmark's problems (``jobs/bench/problems``) and its runners' glue.

The discrete problems' objectives are deterministic and in range, their optimum is the one
the harness reports, the digits table is exactly its grid, and the peers' space conversions
give the objective the same params our space decodes to.
"""

from __future__ import annotations

import csv
import itertools
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import bench_modules
from hypothesis import given, settings
from hypothesis import strategies as st

_MODULES = ("problems", "_peer_protocol", "_peer_propulate", "_peer_optuna")
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
cells = st.tuples(*[st.sampled_from(OPS)] * 6)


@pytest.fixture(scope="module")
def bench():
    """The bench modules (:func:`conftest.bench_modules`)."""
    kinds = ("problems.nas_cell", "problems.tabular", "problems.mixed")
    with bench_modules(*_MODULES, *kinds) as mods:
        yield SimpleNamespace(
            problems=mods["problems"],
            nas=mods["problems.nas_cell"],
            tabular=mods["problems.tabular"],
            mixed=mods["problems.mixed"],
            protocol=mods["_peer_protocol"],
            propulate=mods["_peer_propulate"],
            optuna=mods["_peer_optuna"],
        )


def genes(dim: int) -> st.SearchStrategy[np.ndarray]:
    return st.lists(st.floats(0.0, 1.0), min_size=dim, max_size=dim).map(np.array)


def connected(ops: tuple[str, ...]) -> bool:
    """Whether some path 0 -> 3 has no ``none`` edge (edges in NAS-Bench-201's order)."""
    edge = dict(zip(((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)), ops, strict=True))
    paths = ([0, 3], [0, 1, 3], [0, 2, 3], [0, 1, 2, 3])
    return any(all(edge[b, a] != "none" for a, b in itertools.pairwise(p)) for p in paths)


# --- the architecture cell -------------------------------------------------------------------
def test_cell_optimum_is_the_minimum_over_all_15625_cells(bench):
    problem = bench.problems.get_problem("nas_cell")
    names = bench.nas.NAMES
    values = {
        ops: problem.evaluate(dict(zip(names, ops, strict=True)))
        for ops in itertools.product(OPS, repeat=6)
    }
    assert len(values) == 15_625
    best = min(values, key=values.get)
    assert problem.optimum == values[best] == min(values.values())
    assert bench.nas.nas_cell_optimum() == (problem.optimum, best)
    assert 7.0 < problem.optimum < 9.0  # NAS-Bench-201's best CIFAR-10 cells: about 8.4 %


@settings(max_examples=300, deadline=None)
@given(ops=cells)
def test_cell_error_is_deterministic_and_in_range(bench, ops):
    error = bench.nas.cell_error(ops)
    assert error == bench.nas.cell_error(list(ops))
    assert bench.nas.nas_cell_optimum()[0] <= error <= 90.0
    assert (error == 90.0) == (not connected(ops))


@settings(max_examples=200, deadline=None)
@given(ops=cells, other=st.sampled_from(OPS), again=st.sampled_from(OPS))
def test_edges_out_of_an_unreachable_node_change_nothing(bench, ops, other, again):
    cut = ("none", *ops[1:])  # node 1 unreachable: edges 2<-1 and 3<-1 are dead
    changed = (cut[0], cut[1], other, cut[3], again, cut[5])
    assert bench.nas.cell_error(cut) == bench.nas.cell_error(changed)


def test_cell_structure(bench):
    error = bench.nas.cell_error
    assert error(("nor_conv_3x3",) * 6) < error(("skip_connect",) * 6)
    assert error(("avg_pool_3x3",) * 6) > 40  # no convolution anywhere
    assert error(("none", "none", "nor_conv_3x3", "none") + ("nor_conv_3x3",) * 2) == 90.0
    residual = ("nor_conv_3x3",) * 3 + ("skip_connect",) + ("nor_conv_3x3",) * 2
    assert error(residual) < error(("nor_conv_3x3",) * 6) < error(("nor_conv_1x1",) * 6)


# --- the digits table ------------------------------------------------------------------------
def test_csv_is_exactly_the_grid(bench):
    tab = bench.tabular
    with tab.TABLE.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == tab.COLUMNS
        rows = list(reader)
    grid = [tuple(str(v) for v in p.values()) for p in tab.grid_points()]
    assert len(grid) == math.prod(len(v) for v in tab.GRID.values()) == 432
    assert [tuple(r[k] for k in tab.GRID) for r in rows] == grid
    for r in rows:
        assert 0.0 < float(r["val_loss"]) < 10.0
        assert 0.0 <= float(r["val_error"]) <= 1.0


def test_table_optimum_is_its_smallest_loss_and_a_grid_point(bench):
    problem = bench.problems.get_problem("digits_mlp")
    losses = {tuple(p.values()): bench.tabular.lookup(p) for p in bench.tabular.grid_points()}
    assert problem.optimum == min(losses.values())
    best = dict(zip(bench.tabular.GRID, min(losses, key=losses.get), strict=True))
    assert problem.evaluate(problem.space.decode(problem.space.encode(best))) == problem.optimum


@settings(max_examples=200, deadline=None)
@given(g=genes(6))
def test_every_point_of_the_space_is_in_the_table(bench, g):
    problem = bench.problems.get_problem("digits_mlp")
    params = problem.space.decode(g)
    value = problem.evaluate(params)
    assert value == problem.evaluate(dict(params)) >= problem.optimum
    assert value == bench.tabular.lookup({k: str(v) for k, v in params.items()})  # CSV text


# --- the mixed conditional space -------------------------------------------------------------
def test_mixed_optimum_is_reached_at_its_argmin(bench):
    problem = bench.problems.get_problem("mixed_hpo")
    point = problem.space.decode(problem.space.encode(bench.mixed.ARGMIN))
    assert point == pytest.approx(bench.mixed.ARGMIN)  # a valid point of the space
    assert problem.evaluate(bench.mixed.ARGMIN) == problem.optimum
    assert problem.evaluate(point) == pytest.approx(problem.optimum, abs=1e-12)
    assert problem.optimum == bench.mixed.FLOOR


@settings(max_examples=300, deadline=None)
@given(g=genes(14))
def test_mixed_loss_is_deterministic_and_above_its_optimum(bench, g):
    problem = bench.problems.get_problem("mixed_hpo")
    params = problem.space.decode(g)
    value = problem.evaluate(params)
    assert value == problem.evaluate(dict(params))
    assert problem.optimum <= value <= bench.mixed.DIVERGED
    widths = {k for k in params if k.startswith("width")}
    assert widths == {f"width{i}" for i in range(1, params["depth"] + 1)}
    assert ("momentum" in params) == (params["optimizer"] == "sgd")


def test_mixed_interactions(bench):
    loss, best = bench.mixed.mixed_loss, dict(bench.mixed.ARGMIN)
    sgd = {k: v for k, v in best.items() if not k.startswith("beta")}
    sgd.update(optimizer="sgd", momentum=0.9, lr=10**-1.5)
    # the effective rate lr / (1 - momentum) is what counts: along the ridge only the
    # momentum term changes
    ridge = {**sgd, "momentum": 0.99, "lr": 10**-1.5 / 10}
    assert loss(ridge) - loss(sgd) == pytest.approx(0.2 * 0.09**2)
    # the best rate grows with the square root of the batch size
    assert loss({**best, "batch_size": 512, "lr": 2e-3}) < loss({**best, "batch_size": 512})
    assert loss({**best, "lr": 1.0}) == bench.mixed.DIVERGED


# --- keys, outcomes and the peers' conversions -----------------------------------------------
def test_keys_drop_inactive_params_and_ignore_number_types(bench):
    problem = bench.problems.get_problem("mixed_hpo")
    point = {**bench.mixed.ARGMIN, "momentum": 0.5, "width4": 64}  # both inactive
    assert problem.key(point) == problem.key(bench.mixed.ARGMIN)
    assert problem.key({**point, "depth": np.int64(3)}) == problem.key(bench.mixed.ARGMIN)
    assert problem.key({**point, "lr": 1e-3 * (1 + 1e-15)}) != problem.key(point)


def test_outcome_counts_repeats_of_earlier_points_and_skips_failures(bench):
    out = bench.protocol.outcome(["a", "b", "a", "c", "a", "b"], [3.0, 2.0, 3.0, np.nan, 3.0, 1.0])
    assert out == {"best": 1.0, "evaluations": 6, "duplicates": 3, "failed": 1}
    assert bench.protocol.outcome(["a"], [math.inf])["best"] is None


@settings(max_examples=200, deadline=None)
@given(g=genes(14), filler=st.floats(0.0, 1.0))
def test_propulate_individuals_map_back_to_the_same_params(bench, g, filler):
    space = bench.problems.get_problem("mixed_hpo").space
    params = space.decode(g)
    limits = bench.propulate.propulate_limits(space)
    individual = {}  # what Propulate would hold: every parameter, log floats as logarithms
    for name, lim in limits.items():
        p = space.params[name]
        if name not in params:
            individual[name] = lim[0] if isinstance(lim[0], str) else lim[0] + filler
        elif getattr(p, "log", False) and isinstance(params[name], float):
            individual[name] = math.log(params[name])
        else:
            individual[name] = str(params[name]) if isinstance(lim[0], str) else params[name]
    back = bench.propulate.params_from(space, individual)
    assert back.keys() == params.keys()
    for name, value in params.items():
        # approx only for floats (a log float comes back through exp(log)); pytest 9.2
        # refuses approx of a string, and a choice or an int must come back exactly
        if isinstance(value, float):
            assert back[name] == pytest.approx(value, rel=1e-12)
        else:
            assert back[name] == value
        assert type(back[name]) is type(value)


def test_optuna_suggests_exactly_the_active_params(bench):
    import optuna

    problem = bench.problems.get_problem("mixed_hpo")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        params = bench.optuna.suggest(trial, problem)
        assert params == bench.problems.active_params(problem.space, params)
        assert trial.params == params
        assert problem.space.decode(problem.space.encode(params)) == pytest.approx(params)
        study.tell(trial, problem.evaluate(params))
    assert isinstance(study.trials[0].distributions["lr"], optuna.distributions.FloatDistribution)
    assert study.trials[0].distributions["lr"].log


_FAKE_RUNNER = """
import json, sys
from pathlib import Path
def arg(name):
    return Path(sys.argv[sys.argv.index(name) + 1])
jobs, out = arg("--jobs"), arg("--out")
for job in json.loads(jobs.read_text()):
    with out.open("a") as f:
        f.write(json.dumps({"job": job, "best": job["seed"]}) + "\\n")
sys.exit(3)
"""


def test_stream_yields_each_finished_run_then_reports_a_failed_runner(bench):
    jobs = [bench.protocol.Job("t", "p", 10, seed) for seed in range(3)]
    got = []
    with pytest.raises(subprocess.CalledProcessError) as failure:
        for line in bench.protocol.stream([sys.executable, "-c", _FAKE_RUNNER], jobs, {}):
            got.append(line)
    assert [bench.protocol.Job(**g["job"]) for g in got] == jobs
    assert [g["best"] for g in got] == [0, 1, 2]
    assert failure.value.returncode == 3
