"""Confirmations choose the best distinct configurations as the objective gets them, not as
genes: one found twice (on two islands, or in genes that differ only where they decode alike)
is confirmed once."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import propagator as pg
from propagator.engine.confirm import confirmation_tasks
from propagator.engine.records import Kind, Status, wire_dtype
from propagator.settings import Confirm, Settings, budget_from, confirm_from

# genes: n (three bins), act (two), slope (only when act is relu)
SPACE = pg.Space(
    {
        "n": pg.Int(1, 3),
        "act": pg.Categorical(["relu", "tanh"]),
        "slope": pg.Float(0.0, 1.0, when="act == 'relu'"),
    }
)


def _rows(genes: list[list[float]], values: list[float], kinds: list[Kind]) -> np.ndarray:
    rows = np.zeros(len(genes), wire_dtype(SPACE.dim))
    rows["id"] = np.arange(len(genes))
    rows["genes"] = genes
    rows["values"][:, 0] = values
    rows["status"] = Status.OK
    rows["kind"] = kinds
    return rows


def test_genes_that_decode_alike_are_one_configuration():
    genes = [
        [0.1, 0.9, 0.2],  # n 1, tanh (slope inactive)
        [0.2, 0.8, 0.7],  # the same configuration: other genes in the same bins
        [0.5, 0.1, 0.5],  # n 2, relu, slope 0.5
        [0.55, 0.2, 0.5],  # the same again
        [0.9, 0.9, 0.0],  # n 3, tanh
    ]
    rows = _rows(genes, [1.0, 2.0, 3.0, 4.0, 5.0], [Kind.EVALUATED] * 5)
    tasks = confirmation_tasks(rows, Confirm(top=3, seeds=2), sign=1.0, space=SPACE)
    # the best genes of each of the three configurations, twice each, best first
    assert tasks.tolist() == [genes[0]] * 2 + [genes[2]] * 2 + [genes[4]] * 2


def test_a_configuration_confirmed_before_is_confirmed_again_in_the_same_genes():
    genes = [[0.1, 0.9, 0.2], [0.5, 0.1, 0.5], [0.2, 0.8, 0.7]]
    # a search record, another, and a confirmation of the first configuration in other genes
    rows = _rows(genes, [1.0, 3.0, 1.5], [Kind.EVALUATED, Kind.EVALUATED, Kind.CONFIRMATION])
    tasks = confirmation_tasks(rows, Confirm(top=2, seeds=3), sign=1.0, space=SPACE)
    assert tasks.tolist() == [genes[2]] * 2 + [genes[1]] * 3


def test_a_search_with_repeats_confirms_distinct_configurations():
    """Without deduplication one island evaluates configurations of a small space again, in
    other genes: the winners confirmed are still distinct."""

    def loss(params, trial):
        noise = np.random.default_rng(trial.seed).normal(0.0, 0.01)
        return params["n"] + (params["act"] == "relu") + noise  # best: n 1, tanh (no slope)

    result = pg.search(
        loss,
        SPACE,
        budget=40,
        seed=1,
        strategy="ga",
        deduplicate=False,
        confirm={"top": 3, "seeds": 2},
    )
    searched = [json.dumps(r.params, sort_keys=True) for r in result.records if not r.confirmation]
    assert len(searched) > len(set(searched))  # configurations were evaluated again
    confirmed = [json.dumps(c.params, sort_keys=True) for c in result.confirmed]
    assert len(confirmed) == len(set(confirmed)) == 3
    assert all(len(c.values) == 2 for c in result.confirmed)


NOISY = """
import numpy as np


def f(params, trial):
    return (params["x"] - 0.3) ** 2 + np.random.default_rng(trial.seed).normal(0, 0.05)
"""


def test_the_confirmed_winner_is_result_best_in_the_report_and_at_the_end_of_the_run(
    tmp_path, capsys
):
    """With confirmations, result.best is the configuration with the best confirmed mean,
    not the luckiest draw of the search (still result.search_best); the report's summary
    and the command line's last lines name the same one."""
    from propagator.cli import main
    from propagator.results.report import open_run, summary

    (tmp_path / "noisy.py").write_text(NOISY)
    (tmp_path / "search.yaml").write_text(
        "objective: noisy.py:f\n"
        "space: {x: {type: float, low: 0, high: 1}}\n"
        "budget: {evaluations: 30}\n"
        "strategy: random\n"
        "confirm: {top: 3, seeds: 4}\n"
        "seed: 0\n"
        "run_dir: run\n"
    )
    assert main(["run", str(tmp_path / "search.yaml")]) == 0
    printed = capsys.readouterr().out.splitlines()
    result = pg.load(tmp_path / "run")
    winner = result.confirmed[0]
    assert result.winner is winner and result.best is winner.search
    assert result.best_params == winner.params
    assert result.search_best.id == result.top(1)[0].id != result.best.id  # seed 0 differs
    assert winner.mean < min(c.mean for c in result.confirmed[1:])
    assert printed[0].startswith(f"  best: confirmed value {winner.mean:.6g} ± ")
    assert f"  id {result.best.id}  " in printed[0]
    assert not any(line.startswith("  best") for line in printed[1:])
    best = next(line for line in summary(open_run(tmp_path / "run")) if line.startswith("best"))
    assert best.startswith(f"best         value {winner.mean:.6g} ± ")
    assert f"(id {result.best.id}, island 0; its search value " in best
    assert repr(result).endswith(f"confirmed best value={winner.mean:.6g} over 4 seeds>")


def test_without_confirmations_best_is_the_search_best():
    result = pg.search(lambda p: p["n"] + 0.1 * (p["act"] == "relu"), SPACE, budget=6, seed=0)
    assert result.winner is None and result.confirmed == []
    assert result.best == result.search_best == result.top(1)[0]


@pytest.mark.parametrize(
    ("budget", "confirm", "refused"),
    [
        (20, {"top": 5}, "would take 15 of budget.evaluations (20), leaving the search 5"),
        (29, {"top": 5}, "would take 15 of budget.evaluations (29), leaving the search 14"),
        (30, {"top": 5}, None),  # exactly half: the search keeps the other half
        (10, {"top": 2, "seeds": 2}, None),
        (12, {"top": 3, "seeds": 4}, "budget.evaluations (12) must exceed confirm.top"),
        ({"time": 60}, {"top": 5}, None),  # no evaluation budget to share
    ],
)
def test_confirmations_may_take_at_most_half_of_the_budget(budget, confirm, refused):
    """``confirm: {top: 5}`` is 15 evaluations (seeds default to 3): silently taking 15 of a
    budget of 20 would leave the search too little to find winners worth confirming."""
    if refused is None:
        Settings(budget=budget_from(budget), confirm=confirm_from(confirm))
        return
    with pytest.raises(pg.ConfigError, match=re.escape(refused)):
        pg.search(lambda p: 0.0, SPACE, budget=budget, confirm=confirm)
