"""Confirmations choose the best distinct configurations as the objective gets them, not as
genes: one found twice (on two islands, or in genes that differ only where they decode alike)
is confirmed once."""

from __future__ import annotations

import json

import numpy as np

import propagator as pg
from propagator.engine.confirm import confirmation_tasks
from propagator.engine.records import Kind, Status, wire_dtype
from propagator.settings import Confirm

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
