"""``propagator.search``: run an asynchronous island search over MPI (SPMD: every rank calls it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mpi4py import MPI

from .engine.callbacks import Callback, Callbacks, check_callbacks
from .engine.context import Session
from .engine.evaluation import Objective, check_objective
from .engine.layout import Layout, make_layout
from .engine.run import run
from .errors import ConfigError, ObjectiveError
from .islands import Migration, migration_from
from .pbt import PBT, make_pbt
from .pruners import PrunerSpec, make_pruner
from .results.result import Result
from .settings import (
    DEFAULT_STRATEGY,
    Budget,
    Confirm,
    Settings,
    budget_from,
    confirm_from,
    strategies_for,
)
from .space import Space
from .store.warm import shared_warm
from .strategies import StrategySpec


def search(
    objective: Objective,
    space: Space | Mapping[str, Any],
    *,
    budget: Budget | Mapping[str, Any] | int,
    metric: str | Sequence[str] | None = None,
    direction: str | Sequence[str] = "minimize",
    islands: int | Sequence[int] = 1,
    ranks_per_worker: int = 1,
    strategy: str | Mapping[str, Any] | StrategySpec | Sequence[Any] = DEFAULT_STRATEGY,
    migration: Migration | Mapping[str, Any] | None = None,
    seed: int | None = None,
    max_initial_failures: int = 5,
    failure_grace: float | str = 10.0,
    deduplicate: bool = True,
    early_stopping: str | Mapping[str, Any] | PrunerSpec | None = None,
    trial_timeout: float | str | None = None,
    checkpoint_disk: float = 10.0,
    repeats: int = 1,
    confirm: Confirm | Mapping[str, int] | None = None,
    initial: Sequence[Mapping[str, Any]] = (),
    warm_start: str | Path | Mapping[str, Any] | None = None,
    pbt: PBT | Mapping[str, Any] | None = None,
    dissemination: str = "all",
    run_dir: str | Path | None = None,
    fresh: bool = False,
    comm: MPI.Comm | None = None,
    callbacks: Sequence[Callback] | None = None,
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
        budget: a :class:`Budget`, ``{"evaluations": n, "time": "2h", "steps": s}``, or an
            evaluation count. Evaluations are counted over all workers and never exceeded; no
            evaluation starts after the time limit; steps are the ``trial.report`` calls of
            all evaluations (e.g. epochs), a report past the limit stops its evaluation.
        metric: the key to optimise when the objective returns a dict; a list of keys
            searches for the Pareto front of several (the objective returns a dict holding
            them or a list of their values in order; see :attr:`Result.pareto_front`).
        direction: ``"minimize"`` (default) or ``"maximize"``; with several metrics one for
            all or a list of one per metric.
        islands: number of equal islands (default 1) or workers per island.
        ranks_per_worker: ranks per worker (default 1); must divide the number of ranks.
        strategy: ``"portfolio"`` (default: GA, CMA-ES and, as the space allows, quadratic
            models or TPE sharing each island, effort shifting to whichever improves),
            ``"ga"``, ``"cmaes"``, ``"tpe"``, ``"random"``, a mapping such as
            ``{"name": "ga", "population": 8}``, a strategy object (:class:`GA`,
            :class:`Portfolio`, ...), or a list of one per island.
        migration: a :class:`Migration` or its settings as a mapping (default: probability
            0.9, fully connected, 1 migrant, pollination).
        seed: run seed; the same seed with one worker gives the same candidates. ``None``
            draws one (reported in ``result.info.seed``).
        max_initial_failures: stop with :class:`ObjectiveError` when a worker's first this
            many evaluations fail and nothing has succeeded anywhere (default 5).
        failure_grace: seconds (or a duration such as ``"1m"``) that the other ranks of a
            multi-rank worker get to finish an evaluation in which one rank failed (default
            10). Ranks that do not finish are waiting for the failed one, typically in a
            collective, which MPI cannot cancel: the failure is recorded and the job stopped
            with a message (resume by running it again).
        deduplicate: never evaluate a configuration (the params after conditions) that the
            island has already evaluated or has in flight (default ``True``): the strategy
            breeds again, and a small discrete space that has been evaluated completely ends
            the search early (``result.info.exhausted``). ``False`` allows repeats, e.g. to
            average a noisy objective over them.
        early_stopping: a pruner that stops or pauses hopeless evaluations early:
            ``"auto"`` (the recommended one: ASHA's rank early, learning-curve extrapolation
            once a curve can be fitted, pausing and promoting; see
            :class:`propagator.pruners.Auto`), ``"asha"``
            (asynchronous successive halving), ``"curve"`` (learning-curve extrapolation),
            ``"median"``, a mapping such as ``{"name": "asha", "min_step": 1, "reduction": 3,
            "promotion": True, "brackets": 2}`` (see :mod:`propagator.pruners`), or ``None``
            (default: none). The objective reports with ``trial.report(step, value)`` and
            asks ``trial.should_stop()``; a stopped evaluation returns what it has and is
            recorded as pruned. A paused one (``trial.paused``) saves its training with
            ``trial.save(state)`` first, is recorded as paused, and is resumed later if it
            comes to rank among the best at its rung (``trial.restore()`` gives the state).
        trial_timeout: seconds (or a duration such as ``"20m"``) one evaluation may run:
            after it ``trial.should_stop()`` is true; a value then returned is kept (pruned,
            "timed out"), no value or no stop is a failure. Default ``None``: no limit.
        checkpoint_disk: GiB the checkpoints of paused trainings may take on disk (default
            10), shared equally by the workers; past it, a worker deletes the checkpoints of
            its longest-paused trainings, which are then recorded as pruned, with a warning.
        repeats: evaluate every candidate this many times, with different ``trial.seed``
            (``trial.repeat`` 0, 1, ...), and optimize the mean (default 1). The record holds
            the means of the numeric metrics and ``<metric>_std``; a budget of evaluations
            counts candidates, each costing ``repeats`` runs of the objective.
        confirm: re-evaluate the best configurations on fresh seeds when the search ends,
            e.g. ``{"top": 5, "seeds": 3}`` (a :class:`Confirm`): ``result.confirmed`` then
            gives each one's mean and spread next to its search value (default ``None``).
            The ``top × seeds`` evaluations come out of ``budget.evaluations``. With
            ``pbt`` the best members' schedules are trained again from scratch instead,
            after the budget (see :class:`Confirm`).
        initial: configurations to evaluate first, each exactly once, before anything is
            bred (as Optuna's ``enqueue_trial``): a list of params, e.g. ``[{"lr": 1e-3,
            "depth": 4}]``, each a full point of the space (inactive params left out); the
            objective gets its floats exactly as given. They take the run's first ids; on
            resume those already stored are not repeated.
        warm_start: seed the islands' pools and strategies with the evaluations of another
            search: a run directory, a ``.csv``/``.jsonl`` export, or an Optuna storage
            (``sqlite:///x.db``, ``x.db``, a journal file; ``STORAGE#STUDY`` to name a
            study). Records outside this space or without its metric are skipped and counted
            (default ``None``). ``{"from": SOURCE, "fill": {"depth": 3}}`` gives records that
            lack a parameter (one added since) a value for it; without one, a warm start whose
            records all lack a parameter is refused, naming it.
        pbt: population-based training, e.g. ``{"mutable": ["lr"], "interval": 2}`` (a
            :class:`propagator.pbt.PBT`; default ``None``): each worker trains a member in
            segments of ``interval`` steps, and between them the worst members continue from
            a copy of the best ones' saved trainings with their ``mutable`` parameters
            perturbed. Each segment is one evaluation (a budget of evaluations counts
            segments). The objective saves and restores its training (``trial.save`` /
            ``trial.restore``), asks ``trial.should_stop()`` after each step, and uses the
            parameters it is given from the restored step on (the trainers do).
        dissemination: how a worker shares its results with its island: ``"all"``
            (default: every record to every other worker of the island, so messages and
            bytes per evaluation grow with the island's size W) or ``"gossip"`` (at most 4
            copies of a record and 4 messages per evaluation on average, at any W: each
            batch to one worker, the records that enter the sender's best few, a pool's
            worth, to more, and on from those that take them; a new island best reaches
            nearly every worker within ``ceil(log2 W) + 3`` rounds). With gossip a worker's
            strategy learns from part of its island's records (see
            :mod:`propagator.engine.comm.gossip` for what that cost the GA). It changes
            nothing on islands of 3 workers or fewer, and does not combine with ``pbt``.
        run_dir: a run directory to store every evaluation in as it finishes (the same run
            store as the command line's; read it with :func:`load`, ``propagate report``...).
            Calling again with the same ``run_dir`` resumes the search: evaluations and time
            already spent count against the budget (which may grow; nothing else may change).
            With a ``run_dir``, SIGTERM, SIGINT and SIGUSR1 stop the search cleanly (when
            called from the main thread), and one job at a time may use the directory.
            Default ``None``: records are kept in memory only.
        fresh: with ``run_dir``, start over; an existing run is moved aside, never deleted.
        comm: the communicator to search on (default ``MPI.COMM_WORLD``).
        callbacks: functions called on rank 0 as ``callback(record)`` with each evaluation's
            :class:`Record` once it is stored, confirmations included (default ``None``:
            none). With a ``run_dir`` they are called while the search runs (rank 0 follows
            the run store from a background thread, about every half second, and once more
            at the end): one callback at a time, in the order the records arrive; a paused
            training is passed again with the same id when it is resumed. Without a
            ``run_dir`` they get the result's records, in id order, when the search ends:
            pass a ``run_dir`` for live calls. A callback that raises is reported as a
            warning (with its traceback in the log) and still called with later records;
            it never loses a record. See :class:`propagator.loggers.TensorBoard`.

    Returns:
        The :class:`Result`, on every rank; with a ``run_dir``, every evaluation of the run,
        earlier sessions included.

    Raises:
        ConfigError: an argument is invalid, or ``run_dir`` is in use or holds another search
            (raised on every rank, before any work).
        SpaceError: the space is invalid.
        ObjectiveError: the objective failed on every early evaluation, or no evaluation
            succeeded; the message quotes the first error.
    """
    if not callable(objective):
        raise ConfigError(f"objective must be callable, got {objective!r}")
    prepared = prepare(
        space,
        budget=budget,
        metric=metric,
        direction=direction,
        islands=islands,
        ranks_per_worker=ranks_per_worker,
        strategy=strategy,
        migration=migration,
        seed=seed,
        max_initial_failures=max_initial_failures,
        failure_grace=failure_grace,
        deduplicate=deduplicate,
        early_stopping=early_stopping,
        trial_timeout=trial_timeout,
        checkpoint_disk=checkpoint_disk,
        repeats=repeats,
        confirm=confirm,
        initial=initial,
        warm_start=warm_start,
        pbt=pbt,
        dissemination=dissemination,
        run_dir=run_dir,
        fresh=fresh,
        comm=comm,
    )
    settings = prepared.settings
    mutable = () if settings.pbt is None else settings.pbt.mutable
    check_objective(objective, prepared.space, settings.metric, mutable)
    return run_prepared(
        objective, prepared, name=_name(objective), callbacks=check_callbacks(callbacks)
    )


@dataclass(frozen=True)
class Prepared:
    """A search checked and laid out, not started: what :func:`search` and
    :class:`propagator.study.Study` share."""

    space: Space
    settings: Settings
    layout: Layout
    comm: MPI.Comm
    run_dir: Path | None
    fresh: bool


def prepare(
    space: Space | Mapping[str, Any],
    *,
    budget: Budget | Mapping[str, Any] | int,
    metric: str | Sequence[str] | None = None,
    direction: str | Sequence[str] = "minimize",
    islands: int | Sequence[int] = 1,
    ranks_per_worker: int = 1,
    strategy: str | Mapping[str, Any] | StrategySpec | Sequence[Any] = DEFAULT_STRATEGY,
    migration: Migration | Mapping[str, Any] | None = None,
    seed: int | None = None,
    max_initial_failures: int = 5,
    failure_grace: float | str = 10.0,
    deduplicate: bool = True,
    early_stopping: str | Mapping[str, Any] | PrunerSpec | None = None,
    trial_timeout: float | str | None = None,
    checkpoint_disk: float = 10.0,
    repeats: int = 1,
    confirm: Confirm | Mapping[str, int] | None = None,
    initial: Sequence[Mapping[str, Any]] = (),
    warm_start: str | Path | Mapping[str, Any] | None = None,
    pbt: PBT | Mapping[str, Any] | None = None,
    dissemination: str = "all",
    run_dir: str | Path | None = None,
    fresh: bool = False,
    comm: MPI.Comm | None = None,
) -> Prepared:
    """Check :func:`search`'s arguments but the objective (each is described there) and lay
    the search out on ``comm``. Local: no MPI communication.

    Raises:
        ConfigError: an argument is invalid.
        SpaceError: the space is invalid.
    """
    space = space if isinstance(space, Space) else Space.from_dict(space)
    n_islands = len(islands) if isinstance(islands, Sequence) else islands
    settings = Settings(
        budget=budget_from(budget),
        metric=metric,
        direction=direction,
        islands=tuple(islands) if isinstance(islands, Sequence) else islands,
        ranks_per_worker=ranks_per_worker,
        strategy=strategies_for(strategy, n_islands),
        migration=migration_from(migration),
        seed=seed,
        max_initial_failures=max_initial_failures,
        failure_grace=failure_grace,
        deduplicate=deduplicate,
        pruner=make_pruner(early_stopping),
        trial_timeout=trial_timeout,
        checkpoint_disk=checkpoint_disk,
        repeats=repeats,
        confirm=confirm_from(confirm),
        initial=initial,
        warm_start=warm_start,
        pbt=make_pbt(pbt),
        dissemination=dissemination,
    )
    settings.check(space)
    comm = MPI.COMM_WORLD if comm is None else comm
    layout = make_layout(comm.size, settings.ranks_per_worker, settings.islands)
    settings.migration.matrix(layout.n_islands)  # a wrong-sized topology fails here, everywhere
    run_dir = None if run_dir is None else Path(run_dir)
    return Prepared(space, settings, layout, comm, run_dir, fresh)


def run_prepared(
    objective: Objective,
    prepared: Prepared,
    *,
    name: str,
    caller: str = "pg.search",
    should_stop: Callable[[], bool] | None = None,
    callbacks: Sequence[Callback] = (),
) -> Result:
    """Run a prepared search (collective over ``prepared.comm``); see :func:`search`.

    Args:
        objective: called as ``objective(params, trial)`` (or ``objective(params)``).
        prepared: what :func:`prepare` made of the arguments.
        name: what the objective is called in the run store's configuration (a resumed
            search must have the same).
        caller: what the user called, for messages (``pg.search``, ``pg.Study``).
        should_stop: polled between evaluations on every worker leader; ``True`` stops the
            whole search. With a ``run_dir`` it replaces the stop signals' flag, which then
            are the caller's to handle (default ``None``: the signals alone, when called from
            the main thread).
        callbacks: called on rank 0 with each stored record (see :func:`search`).
    """
    space, settings, layout = prepared.space, prepared.settings, prepared.layout
    comm = prepared.comm
    if prepared.run_dir is None:
        warm = None
        if settings.warm_start is not None:
            dtype = settings.wire_dtype(space)
            warm = shared_warm(comm, settings.warm_start, space, settings.metric, dtype)
        session = Session(warm=warm, should_stop=should_stop)
        result = run(objective, space, settings, layout, comm, session)
        if callbacks and comm.rank == 0:  # nothing to follow: the records, at the end
            Callbacks(callbacks)(result.records)
        if result.all_failed and not result.info.interrupted:
            raise ObjectiveError(
                f"no evaluation succeeded ({len(result)} failed); first error:\n"
                f"{result.first_error or '(no message)'}"
            )
        return result
    from .store.session import StoredSearch, run_stored  # h5py only when a store is used

    config = {"objective": name, "space": space.to_dict(), **settings.to_dict()}
    stored = StoredSearch(
        run_dir=prepared.run_dir,
        config=config,
        text=yaml.safe_dump(config, sort_keys=False),
        again=f"the same {caller} call",
        fresh=prepared.fresh,
        fresh_hint=f"{caller}(..., fresh=True)",
        budget_hint=f"{caller}'s budget",
        should_stop=should_stop,
        callbacks=tuple(callbacks),
    )
    outcome = run_stored(objective, space, settings, layout, comm, stored)
    if outcome.spent is not None and comm.rank == 0:
        sys.stderr.write(f"propagate: {outcome.spent}\n")
        sys.stderr.flush()
    return outcome.run


def _name(objective: Objective) -> str:
    """``module:qualname`` of a function (what a resumed search must still optimise)."""
    module = getattr(objective, "__module__", None) or "?"
    return f"{module}:{getattr(objective, '__qualname__', type(objective).__qualname__)}"
