"""Tests for the early-stopping benchmark (``jobs/bench/early_stopping.py``): the synthetic
learning curves of ``_curves.py`` (deterministic per seed, crossing, the optimum the benchmark
reports) and the arithmetic of ``_es_tables.py`` (epochs, incumbents, the target's verdict).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import BENCH, bench_modules
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

_MODULES = ("_curves", "_es_tables")


@pytest.fixture(scope="module")
def bench():
    """The bench modules (:func:`conftest.bench_modules`)."""
    with bench_modules(*_MODULES) as mods:
        yield SimpleNamespace(**mods)


def configs(bench: SimpleNamespace, n: int, seed: int = 0) -> list[dict]:
    space = bench._curves.SPACE
    rng = np.random.default_rng(seed)
    return [space.decode(space.sample(rng)) for _ in range(n)]


params_st = st.fixed_dictionaries(
    {
        "lr": st.floats(1e-4, 1.0),
        "width": st.integers(8, 512),
        "optimizer": st.sampled_from(["sgd", "momentum", "adam"]),
        "weight_decay": st.floats(1e-6, 1e-1),
    }
)
families = pytest.mark.parametrize("name", ["curves", "curves-slow"])


class FakeTrial:
    """Records reports; tells the objective to stop after ``stop_after`` reports."""

    def __init__(self, seed: int, stop_after: int | None) -> None:
        self.seed, self.stop_after, self.reports = seed, stop_after, []

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.reports) >= self.stop_after


# --- the curves ------------------------------------------------------------------------------
@families
@settings(max_examples=50, deadline=None)
@given(params=params_st, seed=st.integers(0, 2**32 - 1))
def test_a_curve_is_deterministic_per_seed_and_noisy_around_its_shape(bench, name, params, seed):
    c = bench._curves
    curves = c.FAMILIES[name]
    first, again = curves.curve(params, seed), curves.curve(dict(params), seed)
    assert first.shape == (c.EPOCHS,)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, curves.curve(params, seed + 1))
    noiseless = curves.shape(params).at(np.arange(1, c.EPOCHS + 1))
    assert np.max(np.abs(first - noiseless)) < 12 * c.NOISE  # offset + jitter, each N(0, σ)


def test_the_noise_has_the_stated_spread(bench):
    c = bench._curves
    params = c.optimum(c.CURVES)[1]
    epochs = np.arange(1, c.EPOCHS + 1)
    noise = np.array([c.CURVES.curve(params, s) for s in range(2000)])
    noise -= c.CURVES.shape(params).at(epochs)
    offsets = noise.mean(axis=1)  # the per-run offset, plus the mean of 27 jitters
    jitter = noise - offsets[:, None]
    assert abs(np.std(offsets) - c.NOISE * math.sqrt(1 + 1 / c.EPOCHS)) < 0.1 * c.NOISE
    assert abs(np.std(jitter) - c.NOISE * math.sqrt(1 - 1 / c.EPOCHS)) < 0.05 * c.NOISE


@pytest.mark.parametrize(
    ("name", "crossing", "correlation", "fast"),
    [
        ("curves", (0.1, 0.2), (0.85, 0.93), {"lr": 0.04, "width": 512, "optimizer": "adam"}),
        ("curves-slow", (0.2, 0.3), (0.6, 0.75), {"lr": 0.3, "width": 8, "optimizer": "adam"}),
    ],
)
def test_curves_fall_and_cross(bench, name, crossing, correlation, fast):
    c = bench._curves
    curves = c.FAMILIES[name]
    shapes = [curves.shape(p) for p in configs(bench, 1000)]
    start = np.array([s.at(1) for s in shapes])
    end = np.array([s.at(c.EPOCHS) for s in shapes])
    assert np.all(end < start)
    i, j = np.triu_indices(len(shapes), 1)
    # a bad start often, not always, means a bad end
    assert crossing[0] < np.mean((start[i] - start[j]) * (end[i] - end[j]) < 0) < crossing[1]
    assert correlation[0] < spearmanr(start, end)[0] < correlation[1]
    # the optimum starts behind a fast learner that ends far worse
    best = curves.shape(c.optimum(curves)[1])
    fast = curves.shape({**fast, "weight_decay": 1e-3})
    assert fast.at(1) < best.at(1) and fast.at(3) < best.at(3)
    assert fast.at(c.EPOCHS) > best.at(c.EPOCHS) + 0.2


def test_the_slow_family_shows_its_winner_late(bench):
    c = bench._curves

    def behind(curves) -> list[float]:
        """The share of random configurations ahead of the optimum after 1, 3 and 9 epochs."""
        best = curves.shape(c.optimum(curves)[1])
        shapes = [curves.shape(p) for p in configs(bench, 1000)]
        return [np.mean([s.at(t) < best.at(t) for s in shapes]) for t in (1, 3, 9)]

    assert behind(c.CURVES)[2] < 0.05  # converged by epoch 9: ahead of nearly all
    assert min(behind(c.SLOW_CURVES)) > 0.15  # still behind many at epoch 9
    assert c.SLOW_CURVES.shape(c.optimum(c.SLOW_CURVES)[1]).tau > 5


@families
def test_the_optimum_is_reached_at_its_params_and_lies_in_the_space(bench, name):
    c = bench._curves
    curves = c.FAMILIES[name]
    value, params = c.optimum(curves)
    assert curves.final_loss(params) == pytest.approx(value, abs=1e-12)
    genes = c.SPACE.encode(params)
    assert curves.final_loss(c.SPACE.decode(genes)) == pytest.approx(value, abs=1e-9)
    assert params["optimizer"] in c.OPTIMIZERS and 8 <= params["width"] <= 512
    assert 0.05 <= value < min(curves.final_loss(p) for p in configs(bench, 2000))


@families
@settings(max_examples=200, deadline=None)
@given(params=params_st)
def test_no_configuration_beats_the_optimum(bench, name, params):
    curves = bench._curves.FAMILIES[name]
    assert curves.final_loss(params) >= bench._curves.optimum(curves)[0] - 1e-12


@families
def test_no_neighbour_of_the_optimum_beats_it(bench, name):
    c = bench._curves
    curves = c.FAMILIES[name]
    value, best = c.optimum(curves)
    widths = [w for w in (best["width"] - 1, best["width"] + 1) if w <= 512]
    for lr_factor in (0.999, 1.001):
        for width in widths:
            for wd_factor in (0.99, 1.01):
                near = {**best, "lr": best["lr"] * lr_factor, "width": width}
                near["weight_decay"] = best["weight_decay"] * wd_factor
                assert curves.final_loss(near) > value


@pytest.mark.parametrize("stop_after", [1, 5, None])
def test_the_objective_reports_every_epoch_and_stops_when_told(bench, stop_after):
    c = bench._curves
    params = {**c.optimum(c.CURVES)[1], "epochs": 9}
    trial = FakeTrial(seed=7, stop_after=stop_after)
    out = c.CURVES.objective(params, trial)
    losses = c.CURVES.curve(params, 7, 9)
    ran = stop_after or 9
    assert [s for s, _ in trial.reports] == list(range(1, ran + 1))
    assert [v for _, v in trial.reports] == pytest.approx(losses[:ran].tolist(), abs=0)
    assert out == {"val_loss": losses[ran - 1], "epochs_run": float(ran)}


# --- the tables' arithmetic ------------------------------------------------------------------
def search(bench, rows: list[list], seed: int = 0):
    return bench._es_tables.Search.from_json({"seed": seed, "wall": 1.0, "records": rows})


def test_epochs_incumbents_and_reaching(bench):
    # [end, steps, status, value, score]; listed out of order: they are sorted by end
    s = search(
        bench,
        [
            [3.0, 9, "ok", 0.5, 0.55],
            [1.0, 1, "pruned", 0.1, 0.1],  # a pruned evaluation never wins
            [2.0, 9, "ok", 0.7, 0.75],
            [4.0, 3, "failed", math.nan, math.nan],
            [5.0, 9, "ok", 0.6, 0.4],  # worse value: not the incumbent despite its score
        ],
    )
    assert s.epochs == 31 and s.pruned == 2 and s.pruned_at_end(9) == 0
    spent, scores = s.trajectory()
    assert spent.tolist() == [1, 10, 19, 22, 31]
    np.testing.assert_array_equal(scores, [np.nan, 0.75, 0.55, 0.55, 0.55])
    assert s.best == 0.55
    assert math.isnan(s.at(5)) and s.at(10) == 0.75 and s.at(18) == 0.75 and s.at(1e9) == 0.55
    assert s.reaches(0.6) == 19 and s.reaches(0.75) == 10 and s.reaches(0.5) == math.inf


def test_pruned_at_end_counts_full_evaluations_that_were_pruned(bench):
    s = search(bench, [[1.0, 9, "pruned", 0.2, 0.2], [2.0, 3, "pruned", 0.3, 0.3]])
    assert s.pruned_at_end(9) == 1 and math.isnan(s.best)


def test_verdicts(bench):
    t = bench._es_tables
    none = [search(bench, [[1.0, 10, "ok", v, v]] * 10, seed) for seed, v in enumerate([1, 2, 3])]
    # ASHA: 40 epochs per search (2.5x fewer), best 4.0 (target 2 + spread 2 = 4): met
    asha = [search(bench, [[1.0, 4, "ok", v, v]] * 10, s) for s, v in enumerate([3, 4, 9])]
    # same epochs: reaches <= 4 after 30 of 100 epochs in the median seed
    steps = [
        search(bench, [[1.0, 10, "ok", 9.0, 9.0], [2.0, 20, "ok", v, v], [3.0, 70, "ok", 0, 0]])
        for v in (3.5, 5.0, 4.0)
    ]
    same_evals, same_epochs = t.verdicts({"none": none, "asha": asha, "asha-steps": steps})
    assert (same_evals.reference_best, same_evals.target, same_evals.best) == (2, 4, 4)
    assert same_evals.ratio == 2.5 and same_evals.met
    assert same_epochs.ratio == 100 / 30 and same_epochs.met and same_epochs.best == 0
    worse = [search(bench, [[1.0, 4, "ok", 4.5, 4.5]] * 10)] * 3
    assert not t.verdicts({"none": none, "asha": worse})[0].met
    costly = [search(bench, [[1.0, 6, "ok", 1.0, 1.0]] * 10)] * 3  # 100/60 < 2x
    assert not t.verdicts({"none": none, "asha": costly})[0].met


# --- the benchmark end to end ----------------------------------------------------------------
@pytest.mark.mpi
def test_the_benchmark_runs_on_two_ranks(tmp_path):
    cmd = [sys.executable, str(BENCH / "early_stopping.py"), "--problems", "curves"]
    cmd += ["--seeds", "1", "--ranks", "2", "--curve-evaluations", "12", "--curve-epochs", "9"]
    cmd += ["--step-time", "0", "--results", str(tmp_path / "raw.json")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the benchmark hung:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    assert "curves seed 0 none: 12 evaluations, 108 epochs" in output
    assert "optimum (noiseless loss after 9 epochs)" in output
    assert "curves seed 0 asha: 12 evaluations" in output
    for label in ("no early stopping", "ASHA, same evaluations", "ASHA, same epochs"):
        assert output.count(label) >= 2  # the summary and the best-vs-epochs table
    # the verdict on the searches it kept: with one seed, the target is the winner's score
    # without early stopping, to be matched with at most half its epochs
    runs = json.loads((tmp_path / "raw.json").read_text())["curves"]["runs"]
    none, asha = runs["none"][0]["records"], runs["asha"][0]["records"]
    ratio = sum(r[1] for r in none) / sum(r[1] for r in asha)
    met = _winner(asha) <= _winner(none) and ratio >= 2
    verdict = f"  {'curves':<12} {'ASHA, same evaluations':<24} {ratio:5.2f}x  "
    assert verdict + ("met" if met else "NOT met") in output.splitlines(), output[-2000:]


def _winner(records: list[list]) -> float:
    """The score of a search's best completed evaluation (the first to end of equals);
    records are ``[end, epochs, status, value, score]``."""
    done = sorted((r for r in records if r[2] == "ok"), key=lambda r: r[0])
    return min(done, key=lambda r: r[3])[4]
