"""Warnings about what the objective reports (issue 21, item 7): steps that repeat or go
backwards are ignored and warned about once per run; reports that run against the optimized
metric, or in other units, are warned about, and real noisy loss curves never are."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import propagator as pg
from propagator.engine.report_watch import ReportWarning, ReportWatch, rank_correlation

SPACE = pg.Space({"x": pg.Float(0, 1)})


def _warned(run) -> list[str]:
    """The ReportWarning messages ``run()`` gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every one shown: the once-per-run rule is ours
        run()
    return [str(w.message) for w in caught if issubclass(w.category, ReportWarning)]


# --- steps that repeat or go backwards --------------------------------------------------------
def _missteps(params, trial):
    trial.report(1, 5.0)
    trial.report(1, 6.0)  # repeated: ignored
    trial.report(2, 4.0)
    trial.report(1, 9.0)  # backwards: ignored
    trial.report(3, 3.0)
    return 3.0 + params["x"]


def test_a_repeated_or_backward_step_is_ignored_and_warned_once_per_run():
    results = []
    for _ in range(2):
        messages = _warned(
            lambda: results.append(pg.search(_missteps, SPACE, budget=5, seed=0, strategy="random"))
        )
        assert len(messages) == 2  # one of each kind, not one per evaluation
        assert messages[0].startswith("trial.report: evaluation 0 reported step 1 again")
        assert messages[1].startswith("trial.report: evaluation 0 reported step 1 after step 2")
        assert all("its value is ignored" in m for m in messages)
    for r in results[0].records:
        assert r.intermediate == ((1, 5.0), (2, 4.0), (3, 3.0)) and r.step == 3


@pytest.mark.filterwarnings("ignore:trial.report")
def test_an_ignored_report_spends_no_step():
    def twice(params, trial):
        for step in range(1, 10):
            trial.report(step, 1.0 / step)
            trial.report(step, 2.0)
            if trial.should_stop():
                break
        return 1.0

    result = pg.search(twice, SPACE, budget={"steps": 12}, seed=0, strategy="random")
    assert sum(len(r.intermediate) for r in result.records) == 12
    assert all(v == 1.0 / s for r in result.records for s, v in r.intermediate)


# --- reports against the metric ---------------------------------------------------------------
def _accuracy(params, trial):
    """Minimizes the loss but reports the accuracy, which rises as the training goes."""
    rng = np.random.default_rng(trial.seed)
    loss = (params["x"] - 0.3) ** 2 + 0.05
    for step in range(1, 8):
        trial.report(step, 1.0 - loss - 0.5 * math.exp(-step / 2) + rng.normal(0, 0.02))
    return loss + rng.normal(0, 0.01)


def test_reports_of_the_accuracy_in_a_search_that_minimizes_the_loss_warn_once():
    messages = _warned(lambda: pg.search(_accuracy, SPACE, budget=40, seed=0, strategy="random"))
    assert len(messages) == 1
    assert messages[0].startswith("trial.report: the reports run against the optimized metric")
    assert "in 10 of 10 completed evaluations" in messages[0]


def _curves(rng, n, steps, noise, against, scale=1.0):
    """``n`` evaluations as (reports, returned value): loss curves falling to a floor, with
    noise; ``against``: the accuracy is reported instead; ``scale``: reports in other units."""
    out = []
    for _ in range(n):
        floor = rng.uniform(0.05, 1.0)
        t = np.arange(1, steps + 1)
        loss = floor + np.exp(-t / 3.0) + rng.normal(0.0, noise, steps)
        reported = (1.0 - loss / 3.0) if against else loss * scale
        returned = floor + rng.normal(0.0, noise)
        out.append((list(zip(t.tolist(), reported.tolist(), strict=True)), returned))
    return out


def _kinds(evaluations, direction="minimize") -> list[str]:
    watch = ReportWatch("loss", direction)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, (reports, value) in enumerate(evaluations):
            watch.finished(i, reports, value)
    said = [str(w.message) for w in caught]
    return ["against" if "run against" in m else "scale" if "differ" in m else m for m in said]


@pytest.mark.parametrize("noise", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("steps", [2, 5, 30])
def test_noisy_loss_curves_never_warn(noise, steps):
    """Real loss curves, however noisy (0.3 is as large as the spread of the floors) and
    however short: not one warning over 50 searches of 320 evaluations."""
    rng = np.random.default_rng(steps)
    for _ in range(50):
        assert _kinds(_curves(rng, 320, steps, noise, against=False)) == []


@pytest.mark.parametrize("noise", [0.01, 0.1])
def test_accuracy_reported_for_a_loss_warns_at_the_first_look(noise):
    rng = np.random.default_rng(1)
    fired = [_kinds(_curves(rng, 10, 7, noise, against=True)) for _ in range(20)]
    assert all(kinds == ["against"] for kinds in fired)


def test_a_loss_reported_while_maximizing_warns_and_an_accuracy_does_not():
    rng = np.random.default_rng(2)
    losses = _curves(rng, 40, 7, 0.05, against=False)
    assert _kinds([(r, -v) for r, v in losses], "maximize") == ["against"]
    accuracies = [([(s, -x) for s, x in r], -v) for r, v in losses]
    assert _kinds(accuracies, "maximize") == []


def test_reports_in_other_units_warn():
    rng = np.random.default_rng(3)
    kinds = _kinds(_curves(rng, 20, 7, 0.01, against=False, scale=100.0))
    assert kinds == ["scale"]
    assert _kinds(_curves(rng, 20, 7, 0.01, against=False, scale=3.0)) == []


def test_rank_correlation_is_spearmans():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert rank_correlation(x, x**3) == pytest.approx(1.0)
    assert rank_correlation(x, -x) == pytest.approx(-1.0)
    # with ties, the Pearson correlation of the mean ranks
    y = np.array([1.0, 1.0, 2.0, 3.0, 3.0])
    assert rank_correlation(x, y) == pytest.approx(
        np.corrcoef([1, 2, 3, 4, 5], [1.5, 1.5, 3, 4.5, 4.5])[0, 1]
    )
    assert math.isnan(rank_correlation(x, np.ones(5)))
