"""The engine under real ``mpiexec``: islands, multi-rank workers, termination, failures.

Each test launches ``tests/mpi/scenarios.py`` on several (oversubscribed) ranks with a timeout.
"""

from __future__ import annotations

import pytest
from conftest import run_mpi

pytestmark = pytest.mark.mpi


def _check_complete(ranks: list[dict], budget: int) -> dict:
    """Exactly ``budget`` records, ids 0..budget-1 once each, the same result on every rank."""
    first = ranks[0]
    assert first["n"] == budget
    assert sorted(first["ids"]) == list(range(budget))
    assert len({r["digest"] for r in ranks}) == 1, "ranks disagree on the result"
    return first


@pytest.mark.parametrize("pollination", [True, False], ids=["pollination", "migration"])
def test_islands_exchange_migrants(tmp_path, pollination):
    ranks = run_mpi(8, "islands", tmp_path, "4", str(int(pollination)), "0.9", "400")
    first = _check_complete(ranks, 400)
    assert set(first["islands"]) == {0, 1, 2, 3}
    assert first["info"]["migrants_sent"] > 0
    assert first["info"]["immigrants_received"] > 0
    for rank, data in enumerate(ranks):
        own_island = rank // 2
        assert set(data["pool_islands"]) - {own_island}, f"rank {rank} never bred from an immigrant"


def test_islands_without_migration_stay_apart(tmp_path):
    ranks = run_mpi(8, "islands", tmp_path, "2", "1", "0.0", "200")
    first = _check_complete(ranks, 200)
    assert first["info"]["migrants_sent"] == first["info"]["immigrants_received"] == 0
    for rank, data in enumerate(ranks):
        assert data["pool_islands"] == [rank // 4]
    # every record reached the island peers: 4 workers per island -> 3 peers each
    assert first["info"]["messages"] > 0


@pytest.mark.parametrize("k", [2, 4])
def test_multi_rank_workers(tmp_path, k):
    ranks = run_mpi(8, "multirank", tmp_path, str(k), "60")
    first = _check_complete(ranks, 60)
    assert set(first["workers"]) == set(range(8 // k))
    # the value from the worker's first rank counts (the others returned value + 1000 * rank)
    assert first["values"] == pytest.approx(first["expected"])
    for rank, data in enumerate(ranks):
        assert data["seen"], f"rank {rank} evaluated nothing"
        assert all(s["size"] == k and s["same"] for s in data["seen"])
        assert all(s["rank"] == rank % k for s in data["seen"])
    # every rank of a worker evaluated exactly the worker's candidates
    for w in range(8 // k):
        ids = [sorted(s["id"] for s in ranks[r]["seen"]) for r in range(w * k, (w + 1) * k)]
        assert all(i == ids[0] for i in ids)
        pairs = zip(first["ids"], first["workers"], strict=True)
        assert ids[0] == sorted(i for i, wk in pairs if wk == w)


def test_world_not_divisible_by_ranks_per_worker(tmp_path):
    ranks = run_mpi(8, "badlayout", tmp_path, "3")
    for data in ranks:
        assert data["raised"] == "ConfigError"
        assert "ranks_per_worker=3" in data["message"] and "does not divide" in data["message"]


# three random timings; the second and third only outside CI (its time)
@pytest.mark.parametrize("run", [0, *(pytest.param(r, marks=pytest.mark.slow) for r in (1, 2))])
def test_termination_under_random_evaluation_times(tmp_path, run):
    ranks = run_mpi(8, "termination", tmp_path, "300", "0.02", str(1 + run % 2), timeout=90)
    _check_complete(ranks, 300)


def test_time_budget_stops_starting_evaluations(tmp_path):
    ranks = run_mpi(4, "termination", tmp_path, "none", "0.05", "1", "1.5", timeout=60)
    first = ranks[0]
    assert len({r["digest"] for r in ranks}) == 1
    assert first["n"] > 20
    assert max(first["start"]) <= 1.5 + 0.25  # per-rank deadlines from a shared start
    assert max(first["end"]) <= 1.5 + 0.05 + 0.5  # only evaluations in flight finish
    assert sorted(first["ids"]) == sorted(set(first["ids"]))


def test_failing_objective_is_recorded_and_search_goes_on(tmp_path):
    ranks = run_mpi(4, "failures", tmp_path, "300")
    first = _check_complete(ranks, 300)
    failed = [e for s, e in zip(first["status"], first["errors"], strict=True) if s == "failed"]
    ok = [v for s, v in zip(first["status"], first["values"], strict=True) if s == "ok"]
    assert failed and ok
    assert any("ValueError: x0=" in e and "too large" in e for e in failed)
    assert any("returned nan for 'loss'" in e for e in failed)
    assert any("returned no 'loss'" in e for e in failed)
    pairs = zip(first["status"], first["values"], strict=True)
    assert all(v is None for s, v in pairs if s == "failed")
    assert min(ok) < 1.0  # the search went on and improved


@pytest.mark.parametrize("k", [1, 2])
def test_broken_objective_aborts_on_every_rank(tmp_path, k):
    ranks = run_mpi(4, "broken", tmp_path, "100000", str(k), timeout=60)
    for data in ranks:
        assert data["raised"] == "ObjectiveError"
        assert "the objective is broken" in data["message"]
        assert "none has succeeded" in data["message"]


def test_large_space_does_not_deadlock(tmp_path):
    ranks = run_mpi(4, "bigspace", tmp_path, "10000", "40", timeout=120)
    first = _check_complete(ranks, 40)
    assert first["info"]["message_bytes"] > 40 * 10000 * 8  # records far above the eager limit
