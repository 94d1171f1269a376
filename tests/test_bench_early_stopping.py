"""Tests for the early-stopping benchmark (``jobs/bench/early_stopping.py``): the synthetic
learning curves of ``_curves.py`` (deterministic per seed, crossing, the optimum the benchmark
reports, paused and resumed), the arithmetic of ``_es_tables.py`` (epochs, incumbents, paused
and promoted trainings, the target's verdicts) and the variants the driver runs.
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

_MODULES = ("_curves", "_es_tables", "_launch", "early_stopping")


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
    """Records reports; tells the objective to stop after ``stop_after`` reports (in all, the
    resumed ones included), pausing it with ``pause``; resumes from ``saved``."""

    def __init__(
        self, seed: int, stop_after: int | None, pause: bool = False, saved: dict | None = None
    ) -> None:
        self.seed, self.stop_after, self.pause, self.reports = seed, stop_after, pause, []
        self.saved, self.resumed, self.stopped = saved, saved is not None, False

    def report(self, step: int, value: float) -> None:
        self.reports.append((step, value))

    def should_stop(self) -> bool:
        self.stopped = self.stop_after is not None and len(self.reports) >= self.stop_after
        return self.stopped

    @property
    def paused(self) -> bool:
        return self.stopped and self.pause

    def save(self, state: dict) -> None:
        self.saved = state

    def restore(self) -> dict | None:
        return self.saved if self.resumed else None


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


@pytest.mark.parametrize("pause_after", [1, 4, 8])
def test_the_objective_saves_when_paused_and_resumes_the_same_curve(bench, pause_after):
    c = bench._curves
    params = {**c.optimum(c.SLOW_CURVES)[1], "epochs": 9}
    losses = c.SLOW_CURVES.curve(params, 11, 9)
    first = FakeTrial(seed=11, stop_after=pause_after, pause=True)
    out = c.SLOW_CURVES.objective(params, first)
    assert first.saved == {"t": pause_after}
    assert out == {"val_loss": losses[pause_after - 1], "epochs_run": float(pause_after)}
    stopped = FakeTrial(seed=11, stop_after=pause_after)  # stopped, not paused: nothing saved
    c.SLOW_CURVES.objective(params, stopped)
    assert stopped.saved is None
    # resumed: every later epoch reported once, on the same curve
    resumed = FakeTrial(seed=11, stop_after=None, saved=first.saved)
    out = c.SLOW_CURVES.objective(params, resumed)
    assert [s for s, _ in resumed.reports] == list(range(pause_after + 1, 10))
    assert [v for _, v in resumed.reports] == losses[pause_after:].tolist()
    assert out == {"val_loss": losses[8], "epochs_run": 9.0}


def test_a_training_paused_twice_continues_where_it_left_off(bench):
    c = bench._curves
    params = {**c.optimum(c.CURVES)[1], "epochs": 27}
    losses = c.CURVES.curve(params, 5, 27)
    first = FakeTrial(seed=5, stop_after=3, pause=True)
    c.CURVES.objective(params, first)
    # the second part is told to stop after 6 reports of its own: epochs 4 .. 9
    second = FakeTrial(seed=5, stop_after=6, pause=True, saved=first.saved)
    out = c.CURVES.objective(params, second)
    assert second.saved == {"t": 9} and out["epochs_run"] == 9.0
    third = FakeTrial(seed=5, stop_after=None, saved=second.saved)
    c.CURVES.objective(params, third)
    steps = [s for s, _ in first.reports + second.reports + third.reports]
    assert steps == list(range(1, 28))
    values = [v for _, v in first.reports + second.reports + third.reports]
    assert values == losses.tolist()


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


def test_paused_promoted_and_top_counts(bench):
    # [end, steps, status, value, score, promoted, unsaved]
    ok = [[10.0 + i, 9, "ok", 0.21 + i / 100, 0.21 + i / 100, False, False] for i in range(8)]
    s = search(
        bench,
        [
            [1.0, 1, "paused", 0.9, 0.9, False, False],  # paused, never resumed
            [2.0, 3, "paused", 0.6, 0.6, True, False],  # promoted, paused again
            [3.0, 9, "ok", 0.1, 0.05, True, False],  # promoted, the best
            [4.0, 9, "ok", 0.2, 0.2, False, False],
            [5.0, 1, "pruned", 0.8, 0.8, False, True],  # to be paused, but saved nothing
            [6.0, 2, "failed", math.nan, math.nan, False, False],
            [7.0, 9, "ok", 0.5, 0.5, True, False],  # promoted, 11th best
            [8.0, 9, "ok", 0.95, 0.95, True, False],  # promoted, 12th best
            *ok,  # 0.21 .. 0.28: with 0.1 and 0.2 the 10 best
        ],
    )
    assert s.epochs == 1 + 3 + 9 + 9 + 1 + 2 + 9 + 9 + 8 * 9
    assert s.pruned == 2  # the pruned and the failed one; paused ones are not pruned
    assert s.n_paused == 5 and s.n_promoted == 4
    assert s.promoted_in_top() == 1 and s.promoted_in_top(11) == 2 and s.promoted_in_top(3) == 1
    assert int(s.unsaved.sum()) == 1 and int(s.failed.sum()) == 1
    assert s.best == 0.05  # a paused evaluation never wins, however low its value
    assert s.pruned_at_end(9) == 0


def test_old_rows_without_the_pause_columns(bench):
    s = search(bench, [[1.0, 3, "ok", 0.5, 0.5], [2.0, 1, "pruned", 0.4, 0.4]])
    assert s.n_paused == 0 and s.n_promoted == 0 and s.promoted_in_top() == 0
    assert s.best == 0.5 and s.pruned == 1


def test_verdicts_of_every_kind(bench):
    t = bench._es_tables
    none = [search(bench, [[1.0, 10, "ok", v, v]] * 10, seed) for seed, v in enumerate([1, 2, 3])]
    # reference: median best 2, spread 2 (target 4), 100 epochs
    fewer = [search(bench, [[1.0, 3, "ok", v, v]] * 10, s) for s, v in enumerate([4, 4, 1])]
    rather_fewer = [search(bench, [[1.0, 4, "ok", 3.0, 3.0]] * 10)] * 3
    better = [search(bench, [[1.0, 10, "ok", v, v]] * 10) for v in (1.5, 1.9, 3.0)]
    equal = [search(bench, [[1.0, 10, "ok", v, v]] * 10) for v in (1.0, 2.0, 3.0)]
    runs = {"none": none, "promotion": fewer, "curve": rather_fewer, "auto-steps": better}
    promotion, curve, steps = t.verdicts(runs, factor=3.0)
    assert [v.variant for v in (promotion, curve, steps)] == ["promotion", "curve", "auto-steps"]
    assert promotion.label == "ASHA + promotion" and curve.label == "curve extrapolation"
    assert promotion.ratio == 100 / 30 and promotion.best == 4 and promotion.target == 4
    assert promotion.met  # 3.33x >= 3, best 4 <= 4
    assert curve.ratio == 2.5 and curve.best == 3 and not curve.met  # 2.5x < 3x
    assert t.verdicts(runs, factor=2.0)[1].met
    assert not t.verdicts(runs, factor=3.5)[0].met
    # the same epochs: a better median best (1.9 < 2), not merely within the spread
    assert steps.ratio == 1.0 and steps.best == 1.9 and steps.target == 2 and steps.met
    assert steps.goal == "target < 2" and promotion.goal == "target <= 4"
    assert not t.verdicts({"none": none, "auto-steps": equal})[0].met


def test_print_tables_shows_the_counts(bench, capsys):
    t = bench._es_tables
    none = [search(bench, [[1.0, 9, "ok", v, v]] * 4, seed) for seed, v in enumerate([1, 2, 3])]
    rows = [
        [1.0, 1, "paused", 5.0, 5.0, False, False],
        [2.0, 9, "ok", 1.5, 1.5, True, False],
        [3.0, 9, "ok", 2.5, 2.5, False, False],
        [4.0, 3, "paused", 4.0, 4.0, True, False],
    ]
    paused = [search(bench, rows, seed) for seed in range(3)]
    stopped = [search(bench, [[1.0, 1, "pruned", 9.0, 9.0, False, True]] * 4)] * 3
    runs = {"none": none, "promotion": paused, "asha": stopped}
    verdicts = t.print_tables(runs, "best", 9, factor=2.0, pausing=["promotion"])
    out = capsys.readouterr().out.splitlines()
    # evals, pruned, at end, paused, promoted, top10, epochs, ratio, wall
    assert f"  {'ASHA + promotion':<24}     4      0      0      3     2     1      22  1.64x" in [
        line[:80] for line in out
    ]
    assert f"  {'ASHA, stopping':<24}     4      4      0      -     -     -       4  9.00x" in [
        line[:80] for line in out
    ]
    note = "  note: asha: 12 training(s) to be paused saved no checkpoint (trial.save)"
    assert any(line.startswith(note) for line in out)
    assert [(v.variant, v.met) for v in verdicts] == [("promotion", False), ("asha", False)]
    assert any(line.endswith("1.5 [1.5, 1.5] 0") for line in out)


def test_the_variants_and_their_settings(bench):
    es = bench.early_stopping
    from propagator.pruners import make_pruner

    assert es.variants(None, None) == list(es.DEFAULT_VARIANTS)
    assert es.variants(None, "both") == [*es.DEFAULT_VARIANTS, "asha-steps"]
    assert es.variants(None, "steps") == ["none", "auto-steps", "asha-steps"]
    assert es.variants(None, "evaluations") == list(es.DEFAULT_VARIANTS[:-1])
    assert es.variants(["auto", "asha", "auto"], None) == ["none", "auto", "asha"]
    assert es.variants(["auto-steps", "asha"], "evaluations") == ["none", "asha"]
    specs = {v: make_pruner(es.early_stopping(v, 2, 4)) for v in es.VARIANTS}
    assert specs["none"] is None
    assert specs["asha"].to_dict() == specs["asha-steps"].to_dict()
    assert (specs["asha"].min_step, specs["asha"].reduction) == (2, 4)
    assert not specs["asha"].promotion
    assert specs["promotion"].promotion and specs["promotion"].brackets == 1
    assert specs["brackets"].promotion and specs["brackets"].brackets == 3
    assert specs["curve"].name == "curve" and specs["curve"].probability == 0.2  # its default
    assert not specs["curve"].promotion
    assert specs["asha-curve"].curve == 0.05 and specs["asha-curve"].promotion
    assert specs["auto"].name == "auto" and specs["auto-steps"].name == "auto"
    assert es._budget("auto-steps", 12, 9) == {"evaluations": 108, "steps": 108}
    assert es._budget("auto", 12, 9) == {"evaluations": 12}


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
    assert "curves seed 0 none: 12 evaluations, 108 epochs, 0 paused, 0 promoted" in output
    assert "optimum (noiseless loss after 9 epochs)" in output
    assert "auto = {'name': 'auto'" in output
    for variant in ("asha", "promotion", "brackets", "curve", "asha-curve", "auto"):
        assert f"curves seed 0 {variant}: 12 evaluations" in output
    labels = bench_labels()
    for variant in ("none", "asha", "promotion", "brackets", "curve", "asha-curve", "auto"):
        assert output.count(labels[variant]) >= 2  # the summary and the best-vs-epochs table
    # the verdicts on the searches it kept: with one seed, the target is the winner's score
    # without early stopping, to be matched with at most a third of its epochs
    runs = json.loads((tmp_path / "raw.json").read_text())["curves"]["runs"]
    none = runs["none"][0]["records"]
    lines = output.splitlines()
    for variant in ("asha", "promotion", "auto", "auto-steps"):
        records = runs[variant][0]["records"]
        ratio = sum(r[1] for r in none) / sum(r[1] for r in records)
        if variant == "auto-steps":
            met = _winner(records) < _winner(none)
        else:
            met = _winner(records) <= _winner(none) and ratio >= 3
        verdict = f"  {'curves':<12} {variant:<11} {ratio:5.2f}x  {_winner(records):10.4g}  "
        verdict += f"{_winner(none):10.4g}  {'met' if met else 'NOT met'}"
        assert verdict in lines, output[-3000:]
    # the promoting search's paused trainings, as the table counts them
    records = runs["promotion"][0]["records"]
    assert any(r[2] == "paused" for r in records)  # 12 evaluations: some stay paused
    paused = sum(r[2] == "paused" or r[5] for r in records)
    row = f"  {labels['promotion']:<24}{12:6d}{0:7d}{0:7d}{paused:7d}"
    assert any(line.startswith(row) for line in lines), output[-3000:]


def bench_labels() -> dict[str, str]:
    with bench_modules("_es_tables") as mods:
        return dict(mods["_es_tables"].LABELS)


def _winner(records: list[list]) -> float:
    """The score of a search's best completed evaluation (the first to end of equals);
    records are ``[end, epochs, status, value, score]``."""
    done = sorted((r for r in records if r[2] == "ok"), key=lambda r: r[0])
    return min(done, key=lambda r: r[3])[4]
