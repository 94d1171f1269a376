"""The engine's entry point: one session of a search over a communicator (collective)."""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..results.result import Result
from ..settings import Settings
from ..space import Space
from ..store.checkpoints import CHECKPOINTS, Checkpoints
from ..strategies.base import create_breeder
from .comm.claims import ClaimTable, table_slots
from .comm.collect import allgather_bytes, broadcast_ints
from .comm.groups import Comms, split
from .comm.progress import ProgressThread, start_progress
from .comm.tickets import TicketCounter
from .confirm import confirm_winners, reserved
from .context import LeaderOptions, Monitor, RunContext, Session
from .evaluation import Objective, wants_trial
from .follower import follow
from .gather import ended_normally, merge, pack, rows_of
from .island import Island
from .layout import Layout
from .leader import Leader
from .population import Population
from .seen import Seen
from .stopping import Rungs

_log = logging.getLogger("propagate")


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
    monitor: Monitor | None = None
    progress: ProgressThread | None = None
    comms = split(comm, layout)
    try:
        ctx = _context(objective, space, settings, layout, comms, session)
        # Strategies are built and seeded before the collectives below, which every rank
        # leaves together: one whose library takes seconds to import must not leave the other
        # workers to spend the budget alone.
        island, known = _island(ctx, session) if comms.is_leader else (None, None)
        evaluations = settings.budget.evaluations
        if evaluations is not None:  # the confirmations come out of the budget
            stored = [*session.islands.values(), np.zeros(0, ctx.dtype)]
            held = reserved(np.concatenate(stored), settings.confirm, settings.pbt is not None)
            evaluations = max(0, evaluations - held)
        limit = None if evaluations is None else session.next_id + evaluations
        counter = TicketCounter(comms.world, session.next_id, limit, settings.budget.steps)
        claims = _claims(ctx, known) if settings.deduplicate else None
        hosting = comms.world.rank == 0 or (claims is not None and claims.hosting)
        progress = start_progress(comms.world, hosting)
        log, leader = None, None
        if session.monitor is not None and comms.world.rank == 0:
            monitor = session.monitor(settings.budget.evaluations)
        if island is not None:
            island.claims = claims
            leader = Leader(ctx, counter, island, _leader_options(ctx, session, monitor))
            log = leader.run()
        else:
            follow(ctx)
        counter.close()
        if claims is not None:
            claims.close()
        parts = allgather_bytes(comms.world, pack(log, leader))
        if settings.confirm is not None and ended_normally(parts):
            sink = _leader_options(ctx, session, None).sink if leader is not None else None
            parts += confirm_winners(ctx, session, leader, rows_of(parts, ctx.dtype), sink)
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
        if progress is not None:
            progress.stop()
        comms.free()
    try:
        result = merge(space, settings, layout, ctx.dtype, parts, ctx.run_seed, wall)
        if monitor is not None:  # the final counts, now that every worker's are in
            losses = settings.sign * result.values[result.ok]
            monitor.update(len(result), result.n_failed, losses.min() if len(losses) else np.inf)
    finally:
        if monitor is not None:
            monitor.close()
    return result


def _island(ctx: RunContext, session: Session) -> tuple[Island, np.ndarray]:
    """A leader's view of its island: its strategy, its set of seen configurations (unless
    repeats are allowed), both seeded with the island's stored records; and those records'
    configuration keys."""
    settings = ctx.settings
    workers, objectives = ctx.layout.island_sizes[ctx.island], len(settings.objectives)
    breeder = create_breeder(settings.strategy[ctx.island], ctx.space, workers, objectives)
    seen = Seen(ctx.space) if settings.deduplicate else None
    rungs = None if settings.pruner is None else Rungs(settings.pruner, settings.sign, ctx.run_seed)
    pbt = settings.pbt
    population = None if pbt is None else Population(settings.sign, pbt.quantile)
    island = Island(
        ctx.space, breeder, ctx.dtype, settings.signs, seen, rungs=rungs, population=population
    )
    if session.warm is not None:
        island.seed_warm(session.warm)
    history = session.islands.get(ctx.island)
    known = island.seed(history) if history is not None else np.zeros(0, dtype=np.int64)
    return island, known


def _claims(ctx: RunContext, known: np.ndarray | None) -> ClaimTable:
    """Collective: the islands' claim tables, the host of each filled with its stored
    configurations."""
    known = np.zeros(0, dtype=np.int64) if known is None else known
    slots = table_slots(ctx.settings.budget.evaluations, len(known))
    return ClaimTable(ctx.comms.world, ctx.layout, ctx.island, slots, known)


def _initial(ctx: RunContext, session: Session) -> np.ndarray:
    """The ``initial`` configurations not stored yet, in order (the same on every rank)."""
    genes = ctx.settings.initial_genes(ctx.space)
    stored = [r for r in session.islands.values() if len(r)]
    if not len(genes) or not stored:
        return genes
    seen = Seen(ctx.space)
    done = set(seen.add_all(np.concatenate(stored)["genes"]).tolist())
    return genes[[seen.key(g) not in done for g in genes]]


def _leader_options(ctx: RunContext, session: Session, monitor: Monitor | None) -> LeaderOptions:
    sink = None
    if session.run_dir is not None:
        from ..store import WorkerSink  # h5py only when a store is used

        sink = WorkerSink(session.run_dir, ctx.worker, ctx.dtype, ctx.space, ctx.t0)
    return LeaderOptions(
        initial=_initial(ctx, session),
        first_id=session.next_id,
        stored=session.islands.get(ctx.island),
        sink=sink,
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
    session: Session,
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
        dtype=settings.wire_dtype(space),
        worker=worker,
        island=layout.island_of(worker),
        run_seed=run_seed,
        t0=t0,
        deadline=time.perf_counter() + settings.budget.time if settings.budget.time else None,
        session=session.number,
        run_dir=session.run_dir,
        checkpoints=Checkpoints(
            session.run_dir / CHECKPOINTS
            if session.run_dir is not None
            else Path(tempfile.gettempdir()) / f"propagate-{run_seed}-{t0_ns}"
        ),
    )
