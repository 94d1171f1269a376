"""Tests for the quality benchmark's problems (``jobs/bench/problems``) and its runners' glue.

The discrete problems' objectives are deterministic and in range, their optimum is the one
the harness reports, the digits table is exactly its grid, and the peers' space conversions
give the objective the same params our space decodes to.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import bench_modules
from hypothesis import given, settings
from hypothesis import strategies as st

_MODULES = ("problems", "_peer_protocol", "_peer_propulate", "_peer_optuna", "_peer_smac")
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
cells = st.tuples(*[st.sampled_from(OPS)] * 6)


@pytest.fixture(scope="module")
def bench():
    """The bench modules (:func:`conftest.bench_modules`)."""
    kinds = ("nas_cell", "tabular", "mixed", "grid", "sklearn_tables", "nas_chain", "finetune")
    kinds = tuple(f"problems.{k}" for k in (*kinds, "resnet_ints"))
    with bench_modules(*_MODULES, *kinds) as mods:
        yield SimpleNamespace(
            problems=mods["problems"],
            nas=mods["problems.nas_cell"],
            tabular=mods["problems.tabular"],
            mixed=mods["problems.mixed"],
            grid=mods["problems.grid"],
            tables=mods["problems.sklearn_tables"],
            chain=mods["problems.nas_chain"],
            finetune=mods["problems.finetune"],
            resnet=mods["problems.resnet_ints"],
            protocol=mods["_peer_protocol"],
            propulate=mods["_peer_propulate"],
            optuna=mods["_peer_optuna"],
            smac=mods["_peer_smac"],
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


def propulate_individual(bench, space, params: dict, filler: float) -> dict:
    """What Propulate would hold for ``params``: every parameter, log floats as logarithms,
    inactive ones at their lower limit plus ``filler`` (a numeric) or first choice."""
    individual = {}
    for name, lim in bench.propulate.propulate_limits(space).items():
        p = space.params[name]
        if name not in params:
            individual[name] = lim[0] if isinstance(lim[0], str) else lim[0] + filler
        elif getattr(p, "log", False) and isinstance(params[name], float):
            individual[name] = math.log(params[name])
        else:
            individual[name] = str(params[name]) if isinstance(lim[0], str) else params[name]
    return individual


@settings(max_examples=200, deadline=None)
@given(g=genes(14), filler=st.floats(0.0, 1.0))
def test_propulate_individuals_map_back_to_the_same_params(bench, g, filler):
    space = bench.problems.get_problem("mixed_hpo").space
    params = space.decode(g)
    individual = propulate_individual(bench, space, params, filler)
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


# --- issue 22's extended discrete set --------------------------------------------------------
NEW = ("nas_chain", "finetune", "resnet_ints", *("cancer_svm", "cancer_hgb", "diabetes_knn"))
NEW += ("wine_mlp", "cancer_cash", "digits_sgd")
TABLE_ROWS = {
    "cancer_svm": 248,
    "cancer_hgb": 576,
    "diabetes_knn": 2400,
    "wine_mlp": 432,
    "cancer_cash": 260,
    "digits_sgd": 975,
}
DISCRETE = ("nas_cell", "digits_mlp", "mixed_hpo", *NEW)


def sample_points(problem, n: int, seed: int = 0) -> list[dict]:
    """``n`` seeded random points of the problem's space, as the space decodes them."""
    rng = np.random.default_rng(seed)
    return [problem.space.decode(rng.random(problem.space.dim)) for _ in range(n)]


def test_discrete_set_has_twelve_problems_and_the_model_based_peers(bench):
    discrete = bench.problems.problem_sets()["discrete"]
    names = [p.name for p in discrete.problems]
    assert sorted(names) == sorted(DISCRETE)
    assert all(len(n) <= 12 for n in names)  # the tables' problem column
    assert {"propulate", "optuna-tpe", "optuna-tpe-mv", "optuna-gp", "smac"} <= set(discrete.peers)
    assert discrete.budgets == (50, 100)


@pytest.mark.parametrize("name", TABLE_ROWS)
def test_table_is_its_grid_and_its_optimum_the_smallest_value(bench, name):
    table = bench.tables.TABLES[name]
    with table.path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == (*table.space.params, *table.columns)
    points = list(bench.grid.grid_points(table.space))
    assert [bench.grid.parse_row(table.space, r) for r in rows] == points
    assert len(points) == len({json_key(p) for p in points}) == TABLE_ROWS[name]
    assert table.path.stat().st_size < 300_000
    values = np.array([float(r[table.columns[0]]) for r in rows])
    assert np.isfinite(values).all() and values.min() >= 0.0
    problem = bench.problems.get_problem(name)
    assert problem.optimum == values.min()
    assert [problem.evaluate(p) for p in points] == values.tolist()
    # structure to learn: a step of one ordered level changes the value much less than
    # going to another random point does
    assert neighbour_change(table.space, points, values) < 0.6 * random_change(values)
    # how likely 50 distinct random points hit the optimum: 0.02-0.22 for most tables, 0.55
    # for digits_sgd, whose best error (64 of 1,797 digits) 15 settings share
    best, n = int((values == values.min()).sum()), len(values)
    assert 1 - math.comb(n - best, 50) / math.comb(n, 50) < (0.6 if name == "digits_sgd" else 0.25)


def json_key(point: dict) -> str:
    return repr(sorted(point.items()))


def neighbour_change(space, points: list[dict], values: np.ndarray) -> float:
    """Mean absolute change of the value when one integer parameter goes up by one."""
    at = {json_key(p): v for p, v in zip(points, values, strict=True)}
    steps = [
        abs(at[json_key({**p, name: p[name] + 1})] - v)
        for p, v in zip(points, values, strict=True)
        for name in p
        if type(space.params[name]).__name__ == "Int" and p[name] < space.params[name].high
    ]
    return float(np.mean(steps))


def random_change(values: np.ndarray) -> float:
    """Mean absolute change of the value between two random points."""
    rng = np.random.default_rng(0)
    return float(np.mean(np.abs(values - rng.permutation(values))))


@pytest.mark.parametrize("name", TABLE_ROWS)
def test_table_rows_hold_exactly_their_active_params(bench, name):
    space = bench.tables.TABLES[name].space
    first = {n: bench.grid._levels(n, p)[0] for n, p in space.params.items()}
    for point in bench.grid.grid_points(space):
        assert bench.problems.active_params(space, {**first, **point}) == point


def test_grid_points_follow_conditions(bench):
    space = bench.tables.TABLES["wine_mlp"].space
    points = list(bench.grid.grid_points(space))
    sgd = [p for p in points if p["solver"] == "sgd"]
    assert all("beta_1" not in p and "schedule" in p for p in sgd)
    assert all(("nesterov" in p) == (p["momentum"] > 0) for p in sgd)
    assert all(p.keys() & {"momentum", "schedule"} == set() for p in points if "beta_1" in p)
    # per base setting (lr, width, alpha): sgd 3 + 2 x 2 x 3, adam 3
    assert len(points) == 4 * 3 * 2 * (3 + 12 + 3)
    with pytest.raises(TypeError, match="no floats"):
        list(bench.grid.grid_points(bench.problems.get_problem("mixed_hpo").space))


@pytest.mark.parametrize("name", DISCRETE)
def test_values_are_finite_above_the_optimum_and_keys_stable(bench, name):
    problem = bench.problems.get_problem(name)
    for params in sample_points(problem, 60):
        value = problem.evaluate(params)
        assert math.isfinite(value) and value >= problem.optimum
        assert params == bench.problems.active_params(problem.space, params)
        typed = {k: np.int64(v) if type(v) is int else v for k, v in params.items()}
        assert problem.key(typed) == problem.key(dict(params)) == problem.key(params)
        assert problem.evaluate(typed) == value


def test_chain_optimum_is_the_minimum_over_all_networks(bench):
    chain = bench.chain
    problem = bench.problems.get_problem("nas_chain")
    every = np.array(list(itertools.product(range(5), repeat=4)))  # the last 4 layers
    best_ops = chain.nas_chain_optimum()[1]
    head = np.array([chain.OPS.index(op) for op in best_ops[:4]])
    tails = chain.chain_errors(np.hstack([np.tile(head, (len(every), 1)), every]))
    assert problem.optimum == tails.min() == chain.chain_error(best_ops)
    assert problem.evaluate(dict(zip(chain.NAMES, best_ops, strict=True))) == problem.optimum
    rng = np.random.default_rng(1)
    assert chain.chain_errors(rng.integers(0, 5, (20_000, 8))).min() > problem.optimum
    assert best_ops.count("max_pool") == 2 and best_ops.index("max_pool") >= 2
    one = ["conv3x3"] * 8
    two_pools = ["conv3x3"] * 3 + ["max_pool", "conv3x3", "max_pool", "conv3x3", "conv3x3"]
    assert chain.chain_error(two_pools) < chain.chain_error(one)  # downsampling pays
    assert chain.chain_error(["identity"] * 8) > chain.chain_error(one) + 7.0  # no real layer


def test_finetune_optimum_at_its_argmin_and_nested_conditions(bench):
    ft, problem = bench.finetune, bench.problems.get_problem("finetune")
    point = problem.space.decode(problem.space.encode(ft.ARGMIN))
    assert point.keys() == ft.ARGMIN.keys()
    assert problem.evaluate(ft.ARGMIN) == problem.optimum == pytest.approx(ft.FLOOR - 0.3)
    assert problem.evaluate(point) == pytest.approx(problem.optimum, abs=1e-9)
    for params in sample_points(problem, 300, seed=2):
        assert ("ema_decay" in params) == (params["optimizer"] == "adamw" and params["ema"])
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert ("warmup_epochs" in params) == params["warmup"]
    # a warmup lets a 1.8 decades too large rate train
    hot = {**ft.ARGMIN, "lr": ft.ARGMIN["lr"] * 10**1.8}
    assert problem.evaluate(hot) < ft.DIVERGED == problem.evaluate({**hot, "warmup": False})


def test_resnet_optimum_is_no_better_than_any_one_change(bench):
    problem = bench.problems.get_problem("resnet_ints")
    optimum, best = bench.resnet.resnet_optimum()
    assert problem.optimum == optimum == problem.evaluate(best) == bench.resnet.FLOOR
    for name in best:
        p = problem.space.params[name]
        for v in range(p.low, p.high + 1):
            moved = bench.problems.active_params(problem.space, {**best, name: v, "blocks5": 1})
            assert problem.evaluate(moved) >= optimum
    # two stages: their offset, and 5 blocks where 6 are preferred in total
    two = {**best, "stages": 2, "blocks1": 2, "blocks2": 3}
    two = bench.problems.active_params(problem.space, two)
    assert problem.evaluate(two) - optimum == pytest.approx(1.2 + 0.03 * 1**2)


@pytest.mark.parametrize("name", DISCRETE)
def test_every_peer_converter_gives_the_active_params(bench, name):
    import optuna

    problem = bench.problems.get_problem(name)
    space = problem.space
    for params in sample_points(problem, 25, seed=3):
        individual = propulate_individual(bench, space, params, 0.5)
        assert problem.key(bench.propulate.params_from(space, individual)) == problem.key(params)
    for ask in (bench.optuna.suggest, bench.optuna.suggest_flat):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(20):
            trial = study.ask()
            params = ask(trial, problem)
            assert params == bench.problems.active_params(space, params)
            assert trial.params.keys() >= params.keys()
            assert space.decode(space.encode(params)).keys() == params.keys()
            study.tell(trial, problem.evaluate(params))
        flat = ask is bench.optuna.suggest_flat
        assert (len(study.trials[0].params) == space.dim) if flat else True


@pytest.mark.parametrize("name", DISCRETE)
def test_smac_space_activates_what_ours_activates(bench, name):
    pytest.importorskip("ConfigSpace")
    problem = bench.problems.get_problem(name)
    cs = bench.smac.config_space(problem.space, seed=0)
    assert len(list(cs.values())) == problem.space.dim
    for config in cs.sample_configuration(40):
        params = bench.smac.params_from(problem.space, config)
        assert params.keys() == dict(config).keys()  # nothing dropped: SMAC's activity is ours
        assert problem.space.decode(problem.space.encode(params)) == pytest.approx(params)
        assert math.isfinite(problem.evaluate(params))


def test_smac_conditions_on_several_params_and_nested(bench):
    pytest.importorskip("ConfigSpace")
    space = bench.problems.get_problem("wine_mlp").space
    conditions = {str(c.child.name): c for c in bench.smac.config_space(space, 0).conditions}
    assert type(conditions["nesterov"]).__name__ == "AndConjunction"
    assert type(conditions["momentum"]).__name__ == "EqualsCondition"
    resnet = bench.smac.config_space(bench.problems.get_problem("resnet_ints").space, 0)
    blocks4 = next(c for c in resnet.conditions if c.child.name == "blocks4")
    assert sorted(blocks4.values) == [4, 5]  # stages >= 4


def test_quality_tables_count_wins_and_significant_differences(capsys):
    """Ten seeds of 0 against ten of 1 on one problem is a win and a significant one; equal
    regrets on the other are a tie and neither."""
    with bench_modules("problems", "_quality_tables") as mods:
        discrete = mods["problems"].problem_sets()["discrete"]
        two = replace(discrete, problems=discrete.problems[:2], budgets=(50,))
        a, b = (p.name for p in two.problems)
        runs = {}
        for s in range(10):
            for label, regret_a in (("ours", 0.0), ("peer", 1.0)):
                runs[f"{label}|{a}|50|{s}"] = {"regret": regret_a, "duplicates": 0}
                runs[f"{label}|{b}|50|{s}"] = {"regret": 0.5, "duplicates": 0}
        mods["_quality_tables"].print_tables(runs, two, ["ours", "peer"], ["ours"], 10, None)
    out = capsys.readouterr().out
    wins, significant = out.split("significantly better / worse")
    assert re.search(r"^ours\s+1-1-0\s*$", wins, re.M)
    assert re.search(r"^ours\s+1 / 0\s*$", significant, re.M)
