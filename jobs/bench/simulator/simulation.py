"""The discrete-event loop: workers' control-plane steps and evaluations on a virtual clock.

One event per evaluation: "worker ``w`` is free at ``t``" (its evaluation ended, or the
search starts). The worker settles the evaluation, absorbs what has arrived, takes a ticket,
proposes; the CPU this costs runs on :class:`.virtual.Cores`, the atomics' round trips follow,
and the next evaluation starts. Evaluation times are lognormal (mean, coefficient of
variation; each drawn from the evaluation's ``trial.seed``, as the validation's real
objective draws it), a ``stragglers`` fraction of the workers ``slowdown`` times slower; a ``dead``
fraction of the workers stops at ``dead_at`` s (its evaluation in flight is lost, it receives
and forwards nothing more, its peers keep sending to it: see the package's docstring for what
the real engine does).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import propagator as pg
from propagator.engine.comm.claims import table_slots
from propagator.engine.island import Island
from propagator.engine.layout import make_layout
from propagator.engine.seen import Seen
from propagator.islands import Migration
from propagator.settings import Budget, Settings, strategies_for
from propagator.strategies.base import create_breeder

from .costs import COSTS, Costs
from .metrics import Window, window
from .times import Lognormal, trial_seed
from .virtual import Claims, Cores, Counter, Transport
from .worker import Shared, SimWorker


@dataclass(frozen=True)
class Config:
    """One simulated search (defaults: the bounded design at scale).

    Attributes:
        workers: worker leaders (one rank each).
        island_size: workers per island (the last island takes the remainder).
        strategy: the strategy's name (its costs must be in the cost table).
        dissemination: ``all`` or ``gossip``.
        topology: the migration topology (``ring``: bounded at any island count).
        mean: mean evaluation time, s.
        cv: the evaluation times' coefficient of variation.
        duration: the time budget, s (workers start no evaluation after it).
        evaluations: the evaluation budget (``None``: time only).
        stragglers: fraction of workers ``slowdown`` times slower.
        slowdown: the stragglers' factor.
        dead: fraction of workers that stop at ``dead_at`` s.
        dead_at: when they stop, s.
        cores: CPUs the workers share (``None``: one each, as on a cluster).
        seed: the run seed (breeding, migration, gossip; the times from it too).
        costs: the cost table (``_sim_costs.py``'s output).
        sample_islands: simulate only the first this many islands (``None``: all); the
            other workers' ticket claims still reach the counter (:func:`background`), the
            migration ring closes over the sample, and throughput is scaled to all workers.
        space: the search space (``None``: 2 floats on [-5.12, 5.12]).
        loss: the objective on a candidate's genes (``None``: ``sum((genes - 0.3) ** 2)``,
            a smooth loss); see ``simulate_quality.py`` for a benchmark problem's.
    """

    workers: int
    island_size: int = 64
    strategy: str = "portfolio"
    dissemination: str = "gossip"
    topology: str = "ring"
    mean: float = 60.0
    cv: float = 0.5
    duration: float = 240.0
    evaluations: int | None = None
    stragglers: float = 0.0
    slowdown: float = 4.0
    dead: float = 0.0
    dead_at: float = math.inf
    cores: int | None = None
    seed: int = 0
    costs: Path = COSTS
    sample_islands: int | None = None
    space: pg.Space | None = None
    loss: Callable[[np.ndarray], float] | None = None


@dataclass(frozen=True)
class Outcome:
    """What a simulated search did.

    Attributes:
        window: utilization and throughput in the steady window (:mod:`.metrics`), of the
            simulated workers (throughput: of all, scaled from them).
        simulated: workers simulated (fewer than ``workers`` with ``sample_islands``).
        evaluations: evaluations completed.
        lost: evaluations in flight on workers that died.
        messages: record messages sent (gossip, migrants, departures).
        bytes: their bytes.
        memory: resident bytes per rank: a rank's base plus the simulator's growth per worker
            for building and running the real structures, plus the row of the migration
            matrix that every rank holds (8 bytes x islands).
        host_extra: bytes more on an island's first rank (its claim table window).
        seconds: the simulator's own wall time.
        rows: ``(worker, start, end)`` of each completed evaluation.
        best: the lowest loss found.
    """

    window: Window
    simulated: int
    evaluations: int
    lost: int
    messages: int
    bytes: int
    memory: float
    host_extra: float
    seconds: float
    rows: np.ndarray
    best: float


def _space(config: Config) -> pg.Space:
    if config.space is not None:
        return config.space
    return pg.Space({"x0": pg.Float(-5.12, 5.12), "x1": pg.Float(-5.12, 5.12)})


def _settings(config: Config) -> tuple[Settings, tuple[int, ...]]:
    n, size = config.workers, config.island_size
    sizes = (size,) * (n // size) + ((n % size,) if n % size else ())
    time_limit = None if math.isinf(config.duration) else config.duration  # evaluations only
    budget = Budget(evaluations=config.evaluations, time=time_limit)
    settings = Settings(
        budget=budget,
        islands=len(sizes),
        strategy=strategies_for(config.strategy, len(sizes)),
        migration=Migration(topology=config.topology),
        dissemination=config.dissemination,
        seed=config.seed,
    )
    return settings, sizes


def _workers(config: Config, shared: Shared) -> list[SimWorker]:
    settings, sizes = _settings(config)
    layout = make_layout(config.workers, 1, list(sizes))
    space, comms = _space(config), SimpleNamespace(leader_rank=lambda w: w)
    dtype = settings.wire_dtype(space)
    # Every real rank holds its island's row of the migration matrix (Migration.row): the
    # settings themselves serve every simulated worker.
    shared_settings = SimpleNamespace(
        migration=settings.migration,
        dissemination=settings.dissemination,
        signs=settings.signs,
    )
    workers = []
    for island, size in enumerate(sizes):
        claims = Claims() if size > 1 else None
        for worker in layout.island_workers(island):
            ctx = SimpleNamespace(
                layout=layout, settings=shared_settings, worker=worker, island=island, comms=comms,
                dtype=dtype, run_seed=config.seed, session=0,
            )  # fmt: skip
            breeder = create_breeder(settings.strategy[island], space, size, 1)
            view = Island(space, breeder, dtype, settings.signs, Seen(space))
            workers.append(SimWorker(shared, ctx, view, claims))
    return workers


def _durations(config: Config, rng: np.random.Generator) -> np.ndarray:
    """Each worker's factor on the evaluation times (stragglers: ``slowdown``)."""
    factor = np.ones(config.workers)
    slow = rng.permutation(config.workers)[: round(config.stragglers * config.workers)]
    factor[slow] = config.slowdown
    return factor


def _sampled(config: Config) -> Config:
    """The part of ``config`` that is simulated: its first ``sample_islands`` islands."""
    if config.sample_islands is None:
        return config
    workers = min(config.workers, config.sample_islands * config.island_size)
    return dataclasses.replace(config, workers=workers, sample_islands=None)


def background(config: Config, n: int) -> np.ndarray | None:
    """When ``n`` workers that are not simulated claim tickets: at 0, then after each of
    their evaluations (lognormal times of ``config``, stragglers alike; one claim per
    evaluation, as the ticket stream claims for evaluations of 0.2 s and more) until the
    time budget; ``None`` if ``n`` is 0."""
    if not n:
        return None
    rng = np.random.default_rng([config.seed, 2])
    sigma2 = math.log1p(config.cv**2)
    steps = math.ceil(3 * config.duration / config.mean) + 8  # far past the budget
    z = rng.standard_normal((n, steps))
    times = np.exp(math.log(config.mean) - sigma2 / 2 + math.sqrt(sigma2) * z)
    slow = rng.random(n) < config.stragglers
    times[slow] *= config.slowdown
    claims = np.concatenate([np.zeros((n, 1)), np.cumsum(times, axis=1)], axis=1)
    return claims[claims < config.duration]


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def simulate(config: Config) -> Outcome:
    """Run one simulated search."""
    started, rss = time.perf_counter(), _rss()
    everyone, config = config, _sampled(config)
    costs = Costs.load(config.costs)
    transport = Transport(config.workers, costs)
    extra = everyone.workers - config.workers
    counter = Counter(costs, config.evaluations, background(everyone, extra))
    shared = Shared(transport, counter, costs, config.strategy, everyone.workers, config.seed)
    if config.loss is not None:
        shared.loss = config.loss
    workers = _workers(config, shared)
    rng = np.random.default_rng([config.seed, 1])
    factor = _durations(config, rng)
    dies = np.full(config.workers, np.inf)
    dies[rng.permutation(config.workers)[: round(config.dead * config.workers)]] = config.dead_at
    times = Lognormal(config.mean, config.cv)
    cores = Cores(config.cores)
    pending: list[tuple[int, np.ndarray, float] | None] = [None] * config.workers
    rows: list[tuple[int, float, float]] = []
    events = [(0.0, w) for w in range(config.workers)]
    lost = 0
    while events:
        t, w = heapq.heappop(events)
        if t >= dies[w]:
            lost += pending[w] is not None
            transport.dead[w] = True
            continue
        worker, cpu = workers[w], 0.0
        shared.now = cores.start(t)
        if pending[w] is not None:
            record_id, genes, start = pending[w]
            cpu += worker.settle(record_id, genes, start, t) * costs.send_cpu
            rows.append((w, start, t))
            pending[w] = None
        shared.now += cpu
        step = worker.step(shared.now, config.duration)
        _, end = cores.run(t, cpu + step.cpu)
        if step.genes is None:
            continue
        begin = end + step.wait
        pending[w] = (step.record_id, step.genes, begin)
        seconds = times.draw(trial_seed(config.seed, step.record_id)) * factor[w]
        heapq.heappush(events, (begin + seconds, w))
    done = np.array(rows, dtype=[("worker", np.int64), ("start", float), ("end", float)])
    grown = max(0, _rss() - rss) / config.workers
    settings, sizes = _settings(everyone)
    grown += 8 * len(sizes)  # the rank's row of the migration matrix
    host = 8 * table_slots(settings.budget.evaluations) if config.island_size > 1 else 0
    try:
        steady = window(done, config.workers, dies)
    except ValueError:  # a budget too small for every worker to start: no steady window
        steady = Window(math.nan, math.nan, math.nan, math.nan)
    scaled = steady.throughput * everyone.workers / config.workers
    return Outcome(
        window=dataclasses.replace(steady, throughput=scaled),
        simulated=config.workers,
        evaluations=len(done),
        lost=lost,
        messages=transport.messages,
        bytes=transport.bytes,
        memory=costs.rank_base + grown,
        host_extra=host,
        seconds=time.perf_counter() - started,
        rows=done,
        best=shared.best,
    )
