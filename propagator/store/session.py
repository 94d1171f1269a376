"""A search with a run store: the one path of ``propagate SEARCH.yaml`` and of
``pg.search(..., run_dir=...)``.

A session, collectively over the job's ranks:

1. rank 0 takes the run directory's lock (:mod:`.lock`), creates the run or reads it back and
   makes the plan (:mod:`.resume`): what is left of the budget, where ids continue, what each
   island starts from; every rank learns the plan, or the error that prevents it;
2. every rank logs to ``run_dir/logs/rank-NNNNN.log``; SIGTERM, SIGINT and SIGUSR1 stop the
   search cleanly (:mod:`propagator.engine.signals`);
3. the engine runs with the store;
4. rank 0 records how the session ended and releases the lock; every rank gets the whole run
   (all sessions) as a :class:`Result`.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from ..engine.callbacks import Callback, Following
from ..engine.comm.collect import agree, broadcast_bytes
from ..engine.context import Monitor, Session
from ..engine.evaluation import Objective, error_headline
from ..engine.layout import Layout
from ..engine.records import Kind, Status
from ..engine.run import run
from ..engine.signals import StopOnSignal
from ..errors import ConfigError, ObjectiveError
from ..results.result import Result
from ..settings import Settings
from ..space import Space
from .checkpoints import CHECKPOINTS, Checkpoints
from .hdf5 import add_event, read_meta, update_meta, versions, write_meta
from .load import load, stored_dtype
from .lock import RunLock
from .resume import Plan, config_change, decode_plan, encode_plan, plan
from .run_store import META, WORKERS, read_run
from .warm import shared_warm


@dataclass(frozen=True)
class StoredSearch:
    """What a stored search is besides its objective, space and settings.

    Attributes:
        run_dir: the run directory.
        config: the resolved configuration (JSON-safe). A resumed run must have the same one,
            but for a larger budget.
        text: the configuration as the user wrote it (a search file), kept for reference.
        again: how to run this search again, for messages (e.g. ``propagate jobs/x.yaml``).
        fresh: start over; an existing run is moved aside, never deleted.
        fresh_hint: how the user asks for ``fresh`` (``--fresh``, ``fresh=True``).
        budget_hint: where the user raises the budget (``the search file``, ...).
        monitor: builds rank 0's progress display from the plan (``None``: no display).
        should_stop: polled between evaluations instead of the stop signals' flag, for a
            caller that handles the signals itself (``pg.Study``, whose engine runs off the
            main thread); ``None``: the signals stop the search (from the main thread).
        callbacks: called on rank 0 with each record the session stores, while it runs
            (see :mod:`propagator.engine.callbacks`).
    """

    run_dir: Path
    config: dict[str, Any]
    text: str
    again: str
    fresh: bool = False
    fresh_hint: str = "--fresh"
    budget_hint: str = "the search file"
    monitor: Callable[[Plan], Monitor] | None = None
    should_stop: Callable[[], bool] | None = None
    callbacks: tuple[Callback, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """How a session ended.

    Attributes:
        run: every evaluation of the run, all sessions (the same on every rank).
        session: this session's evaluations (``None`` when nothing was left to do).
        plan: where the session started.
        signal: the name of the signal that stopped it, if one did.
        spent: why nothing was done, when nothing was left (a message for the user).
    """

    run: Result
    session: Result | None
    plan: Plan
    signal: str | None = None
    spent: str | None = None


def run_stored(
    objective: Objective,
    space: Space,
    settings: Settings,
    layout: Layout,
    comm: MPI.Comm,
    stored: StoredSearch,
) -> Outcome:
    """Run (or resume) a search in ``stored.run_dir``: collective over ``comm``.

    Raises:
        ConfigError: on every rank, before any work: the run directory is in use by another
            job, holds something else, or holds a run of a different search.
        ObjectiveError: on every rank: the objective looks broken, or no evaluation of the
            whole run has succeeded (the message quotes the first error).
    """
    warm = None
    if settings.warm_start is not None:  # before the run directory is made or moved aside
        dtype = settings.wire_dtype(space)
        warm = shared_warm(comm, settings.warm_start, space, settings.metric, dtype)
    lock = RunLock(stored.run_dir)
    try:
        data = agree(comm, lambda: encode_plan(_prepare(stored, space, settings, layout, lock)))
        the_plan = decode_plan(data, settings.wire_dtype(space))
        if the_plan.budget is None:
            return Outcome(
                _whole_run(comm, stored.run_dir), None, the_plan, spent=_spent(stored, the_plan)
            )
        return _session(objective, space, settings, layout, comm, stored, the_plan, warm)
    finally:
        lock.release()


def _session(
    objective: Objective,
    space: Space,
    settings: Settings,
    layout: Layout,
    comm: MPI.Comm,
    stored: StoredSearch,
    the_plan: Plan,
    warm: np.ndarray | None,
) -> Outcome:
    log_to(stored.run_dir / "logs" / f"rank-{comm.rank:05d}.log")
    main_thread = threading.current_thread() is threading.main_thread()
    stop = StopOnSignal() if main_thread and stored.should_stop is None else None
    monitor = stored.monitor
    session = Session(
        run_dir=stored.run_dir,
        number=the_plan.session,
        next_id=the_plan.next_id,
        islands=the_plan.islands,
        warm=warm,
        rng_states=the_plan.rng_states,
        should_stop=stop if stored.should_stop is None else stored.should_stop,
        monitor=None if monitor is None else (lambda _budget: monitor(the_plan)),
    )
    resolved = replace(settings, budget=the_plan.budget, seed=the_plan.seed)
    following = None
    if comm.rank == 0 and stored.callbacks:  # before any worker writes: those records are new
        following = Following(stored.run_dir, stored.callbacks)
    try:
        result = run(objective, space, resolved, layout, comm, session)
    except ObjectiveError as exc:
        if comm.rank == 0:
            _event(stored.run_dir, the_plan.session, "failed", str(exc).splitlines()[0])
        raise
    finally:
        if following is not None:  # every worker has written its last record by now
            following.stop()
        if stop is not None:
            stop.restore()
    if comm.rank == 0:
        kind = "interrupted" if result.info.interrupted else "stop"
        _event(stored.run_dir, the_plan.session, kind, json.dumps(result.info.__dict__))
    everything = _whole_run(comm, stored.run_dir)
    # The run's wall time spans its sessions; the rest of the facts are this session's.
    everything.info = replace(result.info, wall_time=everything.info.wall_time)
    if everything.all_failed and not result.info.interrupted:
        if comm.rank == 0:
            _event(stored.run_dir, the_plan.session, "failed", "no evaluation succeeded")
        raise ObjectiveError(_all_failed(everything, stored))
    return Outcome(everything, result, the_plan, None if stop is None else stop.received)


def _prepare(
    stored: StoredSearch, space: Space, settings: Settings, layout: Layout, lock: RunLock
) -> Plan:
    """Rank 0: take the lock, create or reopen the run directory; the plan of this session."""
    run_dir, meta = stored.run_dir, stored.run_dir / META
    run_dir.mkdir(parents=True, exist_ok=True)
    _take(lock)
    if not meta.exists():
        _refuse_foreign(run_dir)
    elif stored.fresh:
        lock.release()
        aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(str(run_dir), aside)
        _say(f"moved the old run to {aside}")
        run_dir.mkdir(parents=True)
        _take(lock)
    layout_json = json.dumps(
        {
            "world_size": layout.world_size,
            "n_workers": layout.n_workers,
            "n_islands": layout.n_islands,
        }
    )
    if not meta.exists():
        return _create(stored, space, settings, layout_json)
    attrs, _ = read_meta(meta)
    change = config_change(json.loads(attrs["config"]), stored.config)
    found = read_run(run_dir, stored_dtype(attrs), repair=True)
    if change is not None and found.n_done == 0:
        # Nothing was evaluated (the first attempt stopped on a mistake): nothing to keep.
        _say(f"{run_dir} holds no evaluation of an earlier version of this search: starting over")
        shutil.rmtree(run_dir / WORKERS, ignore_errors=True)
        return _create(stored, space, settings, layout_json)
    if change is not None:
        raise ConfigError(
            f"this search differs from the run stored in {run_dir}; only a larger budget may "
            f"change when resuming:\n{change}\nStart over with {stored.fresh_hint} (the old run "
            "is kept aside), or give this search another run_dir."
        )
    for problem in found.problems:
        _say(f"warning: {problem}")
    # a paused confirmation is a PBT replay a kill cut: it starts again from scratch
    rows = found.rows
    again = rows["kind"] == int(Kind.CONFIRMATION)
    paused = rows["id"][(rows["status"] == int(Status.PAUSED)) & ~again]
    Checkpoints(run_dir / CHECKPOINTS).keep_only(set(paused.tolist()))
    the_plan = plan(found, settings, layout)
    update_meta(meta, {"config": json.dumps(stored.config), "config_yaml": stored.text})
    if the_plan.budget is not None:
        add_event(meta, the_plan.session, "resume", layout_json)
        failures = ""
        if the_plan.done and the_plan.failed == the_plan.done:
            failures = (
                f" (all {the_plan.done} failed; if you fixed the objective since, start over "
                f"with {stored.fresh_hint})"
            )
        _say(
            f"resuming {run_dir}: {the_plan.done} evaluations done{failures}, ids from "
            f"{the_plan.next_id}"
        )
    return the_plan


def _refuse_foreign(run_dir: Path) -> None:
    """A directory that holds no run must be empty (but for our lock, a lock takeover's
    ``lock.break`` or a torn ``run.h5`` left by a kill while a run was being created), or it
    is someone else's."""
    for torn in run_dir.glob(f".{META}.tmp-*"):
        torn.unlink()
    if any(p.name not in ("lock", "lock.break") for p in run_dir.iterdir()):
        raise ConfigError(
            f"run_dir {str(run_dir)!r} exists but holds no propagate run; "
            "choose another run_dir or empty it"
        )


def _take(lock: RunLock) -> None:
    lock.acquire()
    if lock.took_over is not None:
        _say(
            f"taking over the lock of {lock.path.parent} from a job that ended without "
            f"releasing it ({lock.took_over.describe()})"
        )


def _create(stored: StoredSearch, space: Space, settings: Settings, layout_json: str) -> Plan:
    seed = settings.seed if settings.seed is not None else secrets.randbits(63)
    start = {"time": time.time(), "session": 0, "kind": "start", "detail": layout_json}
    write_meta(
        stored.run_dir / META,
        {
            "config_yaml": stored.text,
            "config": json.dumps(stored.config),
            "space": json.dumps(space.to_dict()),
            "seed": seed,
            "metric": json.dumps(list(settings.objectives) if settings.metric else []),
            "direction": json.dumps(list(settings.directions)),
            "n_genes": space.dim,
            "n_rungs": settings.n_rungs,
            "lineage": settings.pbt is not None,
            "n_objectives": len(settings.objectives),
            "versions": versions(),
            "created": start["time"],
        },
        [start],
    )
    return Plan(0, 0, 0, seed, settings.budget)


def _spent(stored: StoredSearch, p: Plan) -> str:
    """Which budget is spent and how to go on."""
    budget = stored.config["budget"]
    if p.spent == "time":
        what = (
            f"the time budget of {stored.run_dir} is spent: {p.time_spent:.0f} s of "
            f"budget.time = {budget['time']:g} s ({p.done} evaluations)"
        )
        more = f"raise budget.time in {stored.budget_hint} to continue"
    elif p.spent == "steps":
        what = (
            f"the step budget of {stored.run_dir} is spent: {p.steps_spent} of "
            f"budget.steps = {budget['steps']} reported ({p.done} evaluations)"
        )
        more = f"raise budget.steps in {stored.budget_hint} to continue"
    else:
        what = (
            f"the evaluation budget of {stored.run_dir} is spent: {p.done} of "
            f"budget.evaluations = {budget['evaluations']} done"
        )
        more = f"raise budget.evaluations in {stored.budget_hint} to continue"
    if p.done and p.failed == p.done:
        more = (
            f"every evaluation failed (first: {error_headline(p.first_error)}); if you have "
            f"fixed the objective, start over with {stored.fresh_hint} (the old run is moved "
            f"aside), or {more}"
        )
    return f"{what}; {more}"


def _all_failed(everything: Result, stored: StoredSearch) -> str:
    return (
        f"no evaluation of {stored.run_dir} succeeded ({len(everything)} failed); "
        f"first error:\n{everything.first_error or '(no message)'}"
    )


def _whole_run(comm: MPI.Comm, run_dir: Path) -> Result:
    """Every stored evaluation, read once on rank 0 and broadcast."""
    data = load(run_dir).to_bytes() if comm.rank == 0 else None
    return Result.from_bytes(broadcast_bytes(comm, data))


def log_to(path: Path) -> None:
    """Send the ``propagate`` logger's records to ``path`` (one file per rank)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("propagate")
    for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        logger.removeHandler(old)  # an earlier run in this process
        old.close()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _event(run_dir: Path, session: int, kind: str, detail: str = "") -> None:
    add_event(run_dir / META, session, kind, detail)


def _say(message: str) -> None:
    # One write per line: an MPI launcher relaying stdout and stderr may interleave a
    # print's text and its newline with another rank's output.
    sys.stderr.write(f"propagate: {message}\n")
    sys.stderr.flush()
