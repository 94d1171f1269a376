"""Pending points: the candidates an island's other workers are evaluating reach a
model-based strategy, which does not propose them again nor crowd their region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import mpiexec_json

from propagator import Categorical, Float, Space
from propagator.engine.island import Island
from propagator.engine.records import Kind, Status, wire_dtype
from propagator.strategies import TPE, Breeder, Portfolio, make_strategy
from propagator.strategies.pool import Pool

SPACE = Space({"x": Float(0.0, 1.0), "c": Categorical(["a", "b", "c"])})
DTYPE = wire_dtype(SPACE.dim)


def _told_tpe(**settings) -> Breeder:
    """TPE told 30 points of a bowl at x = 0.3 (c = "a" best)."""
    breeder = TPE(startup=5, pending=True, **settings).create(SPACE, 4)
    rng = np.random.default_rng(0)
    genes = rng.random((30, SPACE.dim))
    loss = (genes[:, 0] - 0.3) ** 2 + 0.05 * (genes[:, 1] > 1 / 3)
    breeder.tell(genes, loss, np.ones(30, dtype=bool))
    return breeder


def _distance_to(point: np.ndarray, pending: np.ndarray | None, asks: int = 20) -> float:
    breeder = _told_tpe()
    pool = Pool(16, DTYPE)
    out = []
    for seed in range(asks):
        if pending is not None:
            breeder.pending(pending)
        out.append(breeder.ask(pool, np.random.default_rng(seed))[0])
    return float(np.mean(np.abs(np.array(out) - point[0])))


def test_tpe_proposes_away_from_a_pending_point():
    """A peer evaluating the bowl's bottom: the asks keep farther from it than without."""
    bottom = np.array([0.3, 1 / 6])
    alone = _distance_to(bottom, None)
    beside = _distance_to(bottom, bottom[None, :])
    assert beside > 2 * alone  # measured: 0.126 against 0.012


def test_tpe_with_many_pending_points_stays_within_its_trials():
    """16 pending points at every ask of a study capped at 100 trials: the study is rebuilt
    as needed, never holds more than 100 trials, and every ask is a point of the space."""
    breeder = _told_tpe(max_trials=100)
    pool = Pool(16, DTYPE)
    rng = np.random.default_rng(1)
    for i in range(25):
        breeder.pending(rng.random((16, SPACE.dim)))
        genes = breeder.ask(pool, rng)
        assert genes.shape == (SPACE.dim,) and ((genes >= 0) & (genes <= 1)).all()
        breeder.tell(genes[None, :], np.array([float(i)]), np.array([True]))
        trials = breeder._study.trials
        assert len(trials) <= 100
        assert all(t.state.name != "RUNNING" for t in trials)


class _Recorder(Breeder):
    pool_size = 4
    uses_pending = True

    def __init__(self) -> None:
        self.held: list[np.ndarray] = []
        self.told = 0

    def pending(self, genes: np.ndarray) -> None:
        self.held.append(genes.copy())

    def tell(self, genes, loss, ok) -> None:
        self.told += len(genes)

    def ask(self, pool, rng) -> np.ndarray:
        return rng.random(SPACE.dim)


def _rows(ids, kind: Kind, status: Status = Status.OK) -> np.ndarray:
    rows = np.zeros(len(ids), dtype=DTYPE)
    rows["id"], rows["kind"], rows["status"] = ids, int(kind), int(status)
    rows["genes"] = np.asarray(ids, dtype=float)[:, None] / 100
    rows["values"] = 1.0
    return rows


def test_the_island_holds_peers_candidates_until_their_results_arrive():
    breeder = _Recorder()
    island = Island(SPACE, breeder, DTYPE, np.ones(1), seen=None)
    rng = np.random.default_rng(0)
    island.propose(rng)
    assert breeder.held[-1].shape == (0, SPACE.dim)
    island.absorb(_rows([5, 6], Kind.PENDING, Status.FAILED))
    assert breeder.told == 0 and len(island.pool) == 0  # an announcement is no result
    island.propose(rng)
    assert breeder.held[-1][:, 0].tolist() == [0.05, 0.06]
    # 5's result arrives in one batch with 7's announcement
    island.absorb(np.concatenate([_rows([5], Kind.EVALUATED), _rows([7], Kind.PENDING)]))
    island.propose(rng)
    assert breeder.held[-1][:, 0].tolist() == [0.06, 0.07]
    assert breeder.told == 1 and len(island.pool) == 1
    island.absorb(_rows(list(range(10, 40)), Kind.PENDING))
    island.propose(rng)
    assert breeder.held[-1][:, 0].tolist() == [i / 100 for i in range(24, 40)]  # the latest 16
    assert island.pending_heard == 33


def test_portfolio_passes_pending_points_to_the_members_that_read_them():
    with_tpe = Portfolio(("ga", {"name": "tpe", "pending": True})).create(SPACE, 4)
    assert with_tpe.uses_pending
    assert not Portfolio(("ga", "tpe")).create(SPACE, 4).uses_pending  # off by default
    assert not make_strategy("ga").create(SPACE, 4).uses_pending
    tpe = with_tpe._members[1]
    point = np.array([[0.3, 0.1]])
    with_tpe.pending(point)
    assert np.array_equal(tpe._pending, point)


@pytest.mark.mpi
def test_a_search_announces_candidates_without_extra_messages(tmp_path):
    """TPE on 4 single-rank workers: every leader hears its peers' candidates in flight,
    each announcement rides in the message of the worker's previous result (one message per
    evaluation and peer, plus each worker's first announcement and its last result), every
    evaluation is in the result once, and nothing is left unreceived."""
    script = Path(__file__).parent / "mpi" / "pending.py"
    ranks = mpiexec_json(4, [str(script), str(tmp_path)], tmp_path, timeout=120)
    first = ranks[0]
    budget, itemsize = first["budget"], first["itemsize"]
    assert first["ids"] == list(range(budget))
    workers = len(set(first["workers"]))
    assert first["info"]["messages"] == (budget + workers) * 3
    assert first["info"]["message_bytes"] == 2 * budget * 3 * itemsize
    assert all(r["heard"] > 0 for r in ranks)
    sent, received, left = (sum(r["closed"][i] for r in ranks) for i in range(3))
    assert sent == received == first["info"]["messages"] and left == 0
    json.dumps(first)  # plain data
