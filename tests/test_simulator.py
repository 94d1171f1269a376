"""The discrete-event simulator of the search (``jobs/bench/simulator``): deterministic for a
seed, the real mailbox's message rule, dead ranks, the window metrics, the shared seeds."""

from __future__ import annotations

from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from conftest import bench_modules

from propagator.engine.evaluation import Trial

_MODULES = (
    "simulator.simulation",
    "simulator.metrics",
    "simulator.times",
    "simulator.virtual",
    "simulate_quality",
    "problems",
)


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    with bench_modules(*_MODULES) as mods:
        yield SimpleNamespace(**{name.split(".")[-1]: mod for name, mod in mods.items()})


def test_deterministic_for_a_seed(sim: SimpleNamespace) -> None:
    config = sim.simulation.Config(workers=64, mean=1.0, duration=3.0, stragglers=0.1)
    a, b = sim.simulation.simulate(config), sim.simulation.simulate(config)
    assert a.evaluations > 64 * 2
    assert np.array_equal(a.rows, b.rows)
    assert (a.messages, a.bytes) == (b.messages, b.bytes)
    assert a.window == b.window
    other = sim.simulation.simulate(sim.simulation.Config(workers=64, mean=1.0, duration=3.0))
    assert not np.array_equal(other.rows, a.rows)  # the stragglers change the run


def test_all_sends_every_record_to_every_island_peer(sim: SimpleNamespace) -> None:
    """``dissemination: all``, one island of 5: each record is one message to each of the 4
    peers (the real mailbox flushes after each evaluation of seconds)."""
    config = sim.simulation.Config(workers=5, dissemination="all", mean=0.5, duration=3.0)
    out = sim.simulation.simulate(config)
    assert out.messages == 4 * out.evaluations
    assert out.bytes == out.messages * 74  # one 74-byte record per message (2 genes)


def test_gossip_bounds_copies(sim: SimpleNamespace) -> None:
    """``dissemination: gossip``, one island of 32: at most 4 copies per evaluation, the ring
    peer's one at least (the real :class:`Gossip` routes)."""
    config = sim.simulation.Config(workers=32, mean=0.5, duration=3.0)
    out = sim.simulation.simulate(config)
    copies = out.bytes / 74
    assert out.evaluations <= out.messages <= copies <= 4 * out.evaluations


def test_a_dead_rank_does_not_stop_the_search(sim: SimpleNamespace) -> None:
    config = sim.simulation.Config(workers=64, mean=0.5, duration=4.0, dead=0.25, dead_at=1.0)
    out = sim.simulation.simulate(config)
    rows = out.rows
    late = np.unique(rows["worker"][rows["start"] > 2.0])
    assert out.lost > 0  # their evaluations in flight at 1 s
    assert len(late) == 48  # every survivor, and no dead worker, goes on
    dead = np.setdiff1d(np.arange(64), late)
    assert rows["end"][np.isin(rows["worker"], dead)].max() <= 1.0
    assert out.window.utilization > 0.9  # over the workers' time alive


def test_window_metrics(sim: SimpleNamespace) -> None:
    rows = np.zeros(4, dtype=[("worker", np.int64), ("start", float), ("end", float)])
    rows["worker"] = [0, 0, 1, 1]
    rows["start"] = [0.0, 2.0, 1.0, 3.5]
    rows["end"] = [1.5, 5.0, 3.0, 6.0]
    w = sim.metrics.window(rows, 2)
    # window [1, 5]: worker 0 busy 0.5 + 3, worker 1 busy 2 + 1.5; of 8 worker-seconds
    assert (w.start, w.end) == (1.0, 5.0)
    assert w.utilization == pytest.approx(7.0 / 8.0)
    assert w.throughput == pytest.approx((0.5 / 1.5 + 1.0 + 1.0 + 1.5 / 2.5) / 4.0)


def test_times_follow_the_trial_seed(sim: SimpleNamespace) -> None:
    """The simulator draws an evaluation's time from the seed the real objective gets."""
    trial = Trial(17, SimpleNamespace(rank=0), 0, 0, run_seed=5)
    assert sim.times.trial_seed(5, 17) == trial.seed
    draws = [sim.times.Lognormal(2.0, 0.5).draw(s) for s in range(4000)]
    assert np.mean(draws) == pytest.approx(2.0, rel=0.05)
    assert np.std(draws) / np.mean(draws) == pytest.approx(0.5, rel=0.1)


def test_workers_not_simulated_still_claim_tickets(sim: SimpleNamespace) -> None:
    """With a sample of the islands, the others' claims reach the counter: they queue there
    and take ids, at 0 and after each of their evaluations until the budget."""
    config = sim.simulation.Config(workers=256, mean=1.0, duration=3.0)
    claims = sim.simulation.background(config, 100)
    assert np.count_nonzero(claims == 0.0) == 100
    assert claims.max() < 3.0 and 250 < len(claims) < 450  # about 3 more each
    costs = sim.simulation.Costs.load()
    counter = sim.virtual.Counter(costs, None, np.zeros(1000))
    claim = counter.claim(1)
    assert claim.first == 1000  # after the 1,000 claims that came first
    assert counter.now >= 1001 * costs.atomic  # and waited for them


def test_a_sample_of_islands(sim: SimpleNamespace) -> None:
    config = sim.simulation.Config(workers=1024, mean=1.0, duration=2.0, sample_islands=1)
    out = sim.simulation.simulate(config)
    assert out.simulated == 64
    assert set(np.unique(out.rows["worker"]).tolist()) == set(range(64))
    assert out.window.throughput == pytest.approx(1024 / 1.0, rel=0.1)  # scaled to all


def test_quality_on_a_benchmark_problem(sim: SimpleNamespace) -> None:
    """``simulate_quality.py``: the simulated search evaluates the problem on the decoded
    genes, stops at the evaluation budget, and finds better values with more of it."""
    sphere = sim.problems.get_problem("sphere")
    config = sim.simulation.Config(
        workers=8, island_size=8, strategy="ga", mean=1.0, duration=float("inf"),
        evaluations=60, space=sphere.space, loss=sim.simulate_quality.Objective(sphere),
    )  # fmt: skip
    out = sim.simulation.simulate(config)
    assert out.evaluations == 60
    assert np.isfinite(out.best) and out.best >= sphere.optimum
    regret = sim.simulate_quality.regret
    short = [regret(sphere, 8, "ga", "gossip", seed, budget=40) for seed in range(3)]
    long = [regret(sphere, 8, "ga", "gossip", seed, budget=400) for seed in range(3)]
    assert np.median(long) < np.median(short) / 10
