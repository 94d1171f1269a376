"""``propagator.search``: run an asynchronous island search over MPI (SPMD: every rank calls it)."""

from __future__ import annotations

import json
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from .engine.comm.collect import allgather_bytes, broadcast_ints
from .engine.comm.groups import Comms, split
from .engine.comm.tickets import TicketCounter
from .engine.context import LeaderOptions, Monitor, RunContext
from .engine.evaluation import Objective, check_objective, wants_trial
from .engine.follower import follow
from .engine.layout import Layout, make_layout
from .engine.leader import Leader
from .engine.records import LocalLog, wire_dtype
from .errors import ConfigError, ObjectiveError
from .results.result import Result, RunInfo
from .settings import Budget, Migration, Settings, budget_from, migration_from, strategies_for
from .space import Space
from .strategies import StrategySpec


def search(
    objective: Objective,
    space: Space | Mapping[str, Any],
    *,
    budget: Budget | Mapping[str, Any] | int,
    metric: str | None = None,
    direction: str = "minimize",
    islands: int | Sequence[int] = 1,
    ranks_per_worker: int = 1,
    strategy: str | Mapping[str, Any] | StrategySpec | Sequence[Any] = "ga",
    migration: Migration | Mapping[str, Any] | None = None,
    seed: int | None = None,
    max_initial_failures: int = 5,
    comm: MPI.Comm | None = None,
) -> Result:
    """Search ``space`` for the params that optimise ``objective``.

    Every rank of ``comm`` must call this with the same arguments (as with any collective).
    The ranks form workers of ``ranks_per_worker`` ranks; workers form islands; each worker
    breeds from what its island has evaluated so far and never waits for another worker.

    Args:
        objective: ``objective(params, trial)`` (or ``objective(params)``) returning a float or
            a dict of floats. ``trial.comm`` is the worker's communicator, ``trial.id`` the
            evaluation id, ``trial.seed`` a per-evaluation seed, ``trial.report(step, value)``
            records intermediate values. Exceptions and NaN/inf are recorded as failures.
        space: a :class:`Space`, or a mapping of name -> parameter (objects or the search-file
            form, e.g. ``{"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}}``).
        budget: a :class:`Budget`, ``{"evaluations": n, "time": "2h"}``, or an evaluation count.
            Evaluations are counted over all workers and never exceeded; no evaluation starts
            after the time limit.
        metric: the key to optimise when the objective returns a dict.
        direction: ``"minimize"`` (default) or ``"maximize"``.
        islands: number of equal islands (default 1) or workers per island.
        ranks_per_worker: ranks per worker (default 1); must divide the number of ranks.
        strategy: ``"ga"`` (default), ``"random"``, a mapping such as ``{"name": "ga",
            "population": 32}``, a strategy object (:class:`GA`), or a list of one per island.
        migration: a :class:`Migration` or its settings as a mapping (default: probability
            0.9, fully connected, 1 migrant, pollination).
        seed: run seed; the same seed with one worker gives the same candidates. ``None``
            draws one (reported in ``result.info.seed``).
        max_initial_failures: stop with :class:`ObjectiveError` when a worker's first this
            many evaluations fail and nothing has succeeded anywhere (default 5).
        comm: the communicator to search on (default ``MPI.COMM_WORLD``).

    Returns:
        The :class:`Result`, on every rank.

    Raises:
        ConfigError: an argument is invalid (raised on every rank, before any work).
        SpaceError: the space is invalid.
        ObjectiveError: the objective failed on every early evaluation.
    """
    if not callable(objective):
        raise ConfigError(f"objective must be callable, got {objective!r}")
    space = space if isinstance(space, Space) else Space.from_dict(space)
    n_islands = len(islands) if isinstance(islands, Sequence) else islands
    settings = Settings(
        budget=budget_from(budget),
        metric=metric,
        direction=direction,
        islands=tuple(islands) if isinstance(islands, Sequence) else islands,
        ranks_per_worker=ranks_per_worker,
        strategy=strategies_for(strategy, n_islands if isinstance(n_islands, int) else 1),
        migration=migration_from(migration),
        seed=seed,
        max_initial_failures=max_initial_failures,
    )
    check_objective(objective, space, settings.metric)
    comm = MPI.COMM_WORLD if comm is None else comm
    layout = make_layout(comm.size, settings.ranks_per_worker, settings.islands)
    settings.migration.matrix(layout.n_islands)  # a wrong-sized topology fails here, everywhere
    return run(objective, space, settings, layout, comm)


@dataclass(frozen=True)
class Session:
    """How this run of the engine fits into a longer search (the command line fills it in).

    Attributes:
        run_dir: run store directory; ``None`` keeps records in memory only.
        number: 0 for a new run, ``n`` for its ``n``-th resumption.
        next_id: first evaluation id (one past the largest stored id).
        pools: island -> stored records to seed that island's pools with.
        rng_states: worker -> stored breeding/migration RNG states to continue.
        should_stop: polled between evaluations on every leader (signals).
        monitor: builds rank 0's progress display from the evaluation budget.
    """

    run_dir: Path | None = None
    number: int = 0
    next_id: int = 0
    pools: Mapping[int, np.ndarray] = field(default_factory=dict)
    rng_states: Mapping[int, list[dict[str, Any]]] = field(default_factory=dict)
    should_stop: Callable[[], bool] | None = None
    monitor: Callable[[int | None], Monitor] | None = None


def run(
    objective: Objective,
    space: Space,
    settings: Settings,
    layout: Layout,
    comm: MPI.Comm,
    session: Session | None = None,
) -> Result:
    """Run a validated search (collective over ``comm``): the engine entry point under
    :func:`search` and the command line. ``settings.budget.evaluations`` counts this session's
    evaluations only."""
    session = session or Session()
    started = time.perf_counter()
    comms = split(comm, layout)
    try:
        ctx = _context(objective, space, settings, layout, comms, session.number)
        evaluations = settings.budget.evaluations
        limit = None if evaluations is None else session.next_id + evaluations
        counter = TicketCounter(comms.world, session.next_id, limit)
        log, leader = None, None
        if comms.is_leader:
            leader = Leader(ctx, counter, _leader_options(ctx, session))
            log = leader.run()
        else:
            follow(ctx)
        counter.close()
        parts = allgather_bytes(comms.world, _pack(log, leader))
        wall = time.perf_counter() - started
    except Exception:
        if comm.size > 1:
            sys.stderr.write(
                f"propagate: internal error on rank {comm.rank}:\n{traceback.format_exc()}"
            )
            sys.stderr.flush()
            comm.Abort(1)
        raise
    finally:
        comms.free()
    return _result(space, settings, layout, ctx.dtype, parts, ctx.run_seed, wall)


def _leader_options(ctx: RunContext, session: Session) -> LeaderOptions:
    sink = None
    if session.run_dir is not None:
        from .store import WorkerSink  # h5py only when a store is used

        sink = WorkerSink(session.run_dir, ctx.worker, ctx.dtype, ctx.space, ctx.t0)
    monitor = None
    if session.monitor is not None and ctx.comms.world.rank == 0:
        monitor = session.monitor(ctx.settings.budget.evaluations)
    return LeaderOptions(
        sink=sink,
        pool_rows=session.pools.get(ctx.island),
        rng_states=session.rng_states.get(ctx.worker),
        should_stop=session.should_stop,
        monitor=monitor,
    )


def _context(
    objective: Objective,
    space: Space,
    settings: Settings,
    layout: Layout,
    comms: Comms,
    session: int,
) -> RunContext:
    """Collective: agree on the run seed and the start time, and place this rank."""
    world = comms.world
    seed = settings.seed if settings.seed is not None else secrets.randbits(63)
    run_seed, t0_ns = broadcast_ints(world, [seed, time.time_ns()])
    t0 = t0_ns / 1e9
    worker = world.rank // layout.ranks_per_worker
    return RunContext(
        objective=objective,
        pass_trial=wants_trial(objective),
        space=space,
        settings=settings,
        layout=layout,
        comms=comms,
        dtype=wire_dtype(space.dim),
        worker=worker,
        island=layout.island_of(worker),
        run_seed=run_seed,
        t0=t0,
        deadline=time.perf_counter() + settings.budget.time if settings.budget.time else None,
        session=session,
    )


def _pack(log: LocalLog | None, leader: Leader | None) -> bytes:
    """A leader's records as ``json side data, newline, raw rows``; nothing for followers."""
    if log is None or leader is None:
        return b""
    side = {
        "metrics": log.metrics,
        "errors": log.errors,
        "reports": log.reports,
        "abort": leader.abort_error,
        "interrupted": leader.interrupted,
        "traffic": leader.traffic,
    }
    return json.dumps(side).encode() + b"\n" + log.view().tobytes()


def _result(
    space: Space,
    settings: Settings,
    layout: Layout,
    dtype: np.dtype,
    parts: list[bytes],
    run_seed: int,
    wall: float,
) -> Result:
    metrics: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    reports: dict[int, list[tuple[int, float]]] = {}
    rows, aborts, interrupted = [], [], False
    traffic: dict[str, int] = {}
    for part in parts:
        if not part:
            continue
        head, _, raw = part.partition(b"\n")
        side = json.loads(head)
        metrics.update((int(k), v) for k, v in side["metrics"].items())
        errors.update((int(k), v) for k, v in side["errors"].items())
        reports.update((int(k), [tuple(p) for p in v]) for k, v in side["reports"].items())
        if side["abort"]:
            aborts.append(side["abort"])
        interrupted = interrupted or side["interrupted"]
        for key, n in side["traffic"].items():
            traffic[key] = traffic.get(key, 0) + n
        rows.append(np.frombuffer(raw, dtype=dtype))
    if aborts:
        raise ObjectiveError(aborts[0])
    info = RunInfo(
        seed=run_seed,
        world_size=layout.world_size,
        n_workers=layout.n_workers,
        n_islands=layout.n_islands,
        wall_time=wall,
        interrupted=interrupted,
        **traffic,
    )
    return Result(
        space,
        settings.metric,
        settings.direction,
        np.concatenate(rows),
        metrics,
        errors,
        reports,
        info,
    )
