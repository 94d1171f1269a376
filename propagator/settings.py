"""The frozen settings of a search: what ``pg.search`` and the search file resolve to.

Everything is checked here, once, with messages that name the setting; the engine below only
ever sees a valid :class:`Settings`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .engine.records import wire_dtype
from .errors import ConfigError
from .islands import Migration
from .pbt import PBT
from .pruners import RUNGS, PrunerSpec
from .seeding import WarmStart, exact_params, initial_genes, warm_start_from
from .space import Space
from .strategies import STRATEGIES, Portfolio, StrategySpec, deal, make_strategy

DEFAULT_STRATEGY = "portfolio"
MAX_EVALUATIONS = 1 << 40  # ids and budgets fit the ticket counter below its stop flag
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number (seconds) or a string such as ``"90s"``, ``"30m"``, ``"2h"``,
    ``"1.5d"`` or ``"1h30m"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)\s*(min|s|m|h|d)?", value)
        joined = "".join(n + (u or "") for n, u in parts)
        if not parts or joined != re.sub(r"\s+", "", value):
            raise ConfigError(
                f"budget.time must look like 90, '90s', '30m', '2h' or '1h30m', got {value!r}"
            )
        seconds = sum(float(n) * _UNITS[u or "s"] for n, u in parts)
    else:
        raise ConfigError(f"budget.time must be seconds or a duration string, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"budget.time must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Budget:
    """When the search stops: whichever limit is reached first.

    Args:
        evaluations: total evaluations over all workers (exact: no more are started).
        time: wall-time limit in seconds, or a string such as ``"2h"``; no evaluation starts
            after it, evaluations in flight finish.
        steps: total steps the evaluations report (``trial.report``, e.g. epochs) over all
            workers (exact: a report past it makes ``trial.should_stop()`` true, and no
            evaluation starts after it).
    """

    evaluations: int | None = None
    time: float | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("evaluations", "steps"):
            n = getattr(self, name)
            if n is not None and (
                not isinstance(n, (int, np.integer))
                or isinstance(n, bool)
                or not 1 <= n < MAX_EVALUATIONS
            ):
                raise ConfigError(
                    f"budget.{name} must be a positive integer below {MAX_EVALUATIONS}, got {n!r}"
                )
        if self.time is not None:
            object.__setattr__(self, "time", parse_duration(self.time))
        if self.evaluations is None and self.time is None and self.steps is None:
            raise ConfigError(
                "budget needs evaluations, time, steps or several, e.g. Budget(evaluations=500)"
            )


@dataclass(frozen=True)
class Confirm:
    """Re-evaluating the winners on fresh seeds at the end of a search.

    Args:
        top: how many of the best configurations (default 5).
        seeds: extra evaluations of each, each with its own ``trial.seed`` (default 3).

    The ``top × seeds`` evaluations come out of ``budget.evaluations`` (the search itself gets
    the rest) and run on the same workers once the search ends; a search stopped by a signal
    or a broken objective skips them, one ended by ``budget.time`` still runs them.

    With ``pbt`` the winners are the ``top`` best complete members, and each confirmation
    trains a member's schedule again from scratch (its params changing at the same steps,
    nothing copied): ``top × seeds`` trainings after the budget is spent, in addition to it.
    """

    top: int = 5
    seeds: int = 3

    def __post_init__(self) -> None:
        _positive_int(self.top, "confirm.top")
        _positive_int(self.seeds, "confirm.seeds")

    @property
    def evaluations(self) -> int:
        return self.top * self.seeds

    def check_share(self, budget: int | None) -> None:
        """Raise :class:`ConfigError` unless the confirmations leave at least half of an
        evaluation ``budget`` to the search: a search given less has too little to find the
        winners that are worth confirming, and ``confirm: {top: 5}`` taking 15 of 20
        evaluations is a surprise, not a choice."""
        reserve = self.evaluations
        if budget is None or 2 * reserve <= budget:
            return
        why = f"confirm.top × confirm.seeds ({self.top} × {self.seeds} = {reserve})"
        if budget <= reserve:
            raise ConfigError(
                f"budget.evaluations ({budget}) must exceed {why}: the confirmations come out "
                "of the budget"
            )
        raise ConfigError(
            f"{why} would take {reserve} of budget.evaluations ({budget}), leaving the search "
            f"{budget - reserve}; confirmations may take at most half of the budget: raise "
            f"budget.evaluations to {2 * reserve} or more, or lower confirm.top or "
            "confirm.seeds (default 3)"
        )


@dataclass(frozen=True)
class Settings:
    """Everything that defines a search besides the objective and the space (see
    :func:`propagator.search` for each setting)."""

    budget: Budget
    metric: str | tuple[str, ...] | None = None
    direction: str | tuple[str, ...] = "minimize"
    islands: int | tuple[int, ...] = 1
    ranks_per_worker: int = 1
    strategy: tuple[StrategySpec, ...] = field(
        default_factory=lambda: (make_strategy(DEFAULT_STRATEGY),)
    )
    migration: Migration = field(default_factory=Migration)
    seed: int | None = None
    max_initial_failures: int = 5
    failure_grace: float = 10.0
    deduplicate: bool = True
    pruner: PrunerSpec | None = None
    trial_timeout: float | None = None
    checkpoint_disk: float = 10.0
    repeats: int = 1
    confirm: Confirm | None = None
    initial: tuple[Mapping[str, Any], ...] = ()
    warm_start: WarmStart | None = None
    pbt: PBT | None = None
    dissemination: str = "all"

    def __post_init__(self) -> None:
        if not isinstance(self.budget, Budget):
            raise ConfigError(f"budget must be a propagator.Budget, got {self.budget!r}")
        self._check_objectives()
        _positive_int(self.ranks_per_worker, "ranks_per_worker")
        _positive_int(self.max_initial_failures, "max_initial_failures")
        object.__setattr__(self, "failure_grace", _seconds(self.failure_grace, "failure_grace"))
        if not isinstance(self.deduplicate, bool):
            raise ConfigError(f"deduplicate must be true or false, got {self.deduplicate!r}")
        if self.pruner is not None and not isinstance(self.pruner, PrunerSpec):
            raise ConfigError(f"early_stopping must be a pruner, got {self.pruner!r}")
        _positive_int(self.repeats, "repeats")
        self._check_pbt()
        if isinstance(self.initial, Mapping) or not isinstance(self.initial, Sequence):
            raise ConfigError(f"initial must be a list of configurations, got {self.initial!r}")
        for i, config in enumerate(self.initial):
            if not isinstance(config, Mapping):
                raise ConfigError(f"initial[{i}] must be a mapping of params, got {config!r}")
        object.__setattr__(self, "warm_start", warm_start_from(self.warm_start))
        plain = tuple({k: _plain(v) for k, v in c.items()} for c in self.initial)
        object.__setattr__(self, "initial", plain)
        if self.confirm is not None:
            if not isinstance(self.confirm, Confirm):
                raise ConfigError(f"confirm must be a propagator.Confirm, got {self.confirm!r}")
            if self.pbt is None:  # PBT's replays follow the budget
                self.confirm.check_share(self.budget.evaluations)
        if self.trial_timeout is not None:
            object.__setattr__(self, "trial_timeout", _seconds(self.trial_timeout, "trial_timeout"))
        disk = self.checkpoint_disk
        if not isinstance(disk, (int, float)) or isinstance(disk, bool) or not disk > 0:
            raise ConfigError(f"checkpoint_disk must be a positive number of GiB, got {disk!r}")
        if isinstance(self.islands, Sequence):
            if not self.islands:
                raise ConfigError("islands must not be an empty list")
            for i, n in enumerate(self.islands):
                _positive_int(n, f"islands[{i}]")
            object.__setattr__(self, "islands", tuple(int(n) for n in self.islands))
        else:
            _positive_int(self.islands, "islands")
        if self.seed is not None and (
            not isinstance(self.seed, (int, np.integer))
            or isinstance(self.seed, bool)
            or self.seed < 0
        ):
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.migration, Migration):
            raise ConfigError(f"migration must be a propagator.Migration, got {self.migration!r}")
        self._check_dissemination()

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-safe data (stored with a run, compared on resume)."""
        return {
            "metric": list(self.metric) if isinstance(self.metric, tuple) else self.metric,
            "direction": (
                list(self.direction) if isinstance(self.direction, tuple) else self.direction
            ),
            "budget": {
                "evaluations": self.budget.evaluations,
                "time": self.budget.time,
                "steps": self.budget.steps,
            },
            "islands": list(self.islands) if isinstance(self.islands, tuple) else self.islands,
            "ranks_per_worker": self.ranks_per_worker,
            "migration": self.migration.to_dict(),
            "strategy": [spec.to_dict() for spec in self.strategy],
            "seed": self.seed,
            "max_initial_failures": self.max_initial_failures,
            "deduplicate": self.deduplicate,
            "early_stopping": None if self.pruner is None else self.pruner.to_dict(),
            "trial_timeout": self.trial_timeout,
            "checkpoint_disk": self.checkpoint_disk,
            "repeats": self.repeats,
            "confirm": None if self.confirm is None else asdict(self.confirm),
            "initial": [dict(c) for c in self.initial],
            "warm_start": None if self.warm_start is None else self.warm_start.to_dict(),
            "pbt": None if self.pbt is None else self.pbt.to_dict(),
            # only when set: runs stored before the setting existed resume unchanged
            **({} if self.dissemination == "all" else {"dissemination": self.dissemination}),
        }

    def check(self, space: Space) -> None:
        """Raise :class:`ConfigError` if a strategy cannot search ``space`` or an ``initial``
        configuration is not a point of it."""
        for spec in dict.fromkeys(self.strategy):
            if self.multi and not spec.multi_objective:
                raise ConfigError(_one_value(spec))
            spec.check(space)
        if self.pbt is not None:
            self.pbt.check(space)
        if self.warm_start is not None:
            self.warm_start.check(space)
        self.initial_genes(space)

    def initial_genes(self, space: Space) -> np.ndarray:
        """The ``initial`` configurations as genes, one row each, in order (see
        :func:`propagator.seeding.initial_genes`).

        Raises:
            ConfigError: one is not a point of ``space`` or repeats an earlier one.
        """
        return initial_genes(self.initial, space)

    def params_of(self, space: Space, genes: np.ndarray) -> dict[str, Any]:
        """The params the objective gets for ``genes``: ``space.decode(genes)``, but an
        ``initial`` configuration's floats exactly as given."""
        if not self.initial:
            return space.decode(genes)
        memo = self.__dict__.get("_initial_rows")
        if memo is None or memo[0] is not space:
            memo = (space, self.initial_genes(space))
            self.__dict__["_initial_rows"] = memo  # beside the frozen fields, as cached_property
        return exact_params(self.initial, memo[1], space, genes)

    def wire_dtype(self, space: Space) -> np.dtype:
        """The dtype of this search's records on the wire and in the store."""
        return wire_dtype(space.dim, self.n_rungs, len(self.objectives), self.pbt is not None)

    @property
    def n_rungs(self) -> int:
        """Rung values per record: the pruner's rungs, none without a pruner."""
        return 0 if self.pruner is None else RUNGS

    def _check_pbt(self) -> None:
        """PBT trains each member once, in segments, on one metric; what does not combine
        with it says so."""
        if self.pbt is None:
            return
        if not isinstance(self.pbt, PBT):
            raise ConfigError(f"pbt must be a propagator.PBT, got {self.pbt!r}")
        clashes = {
            "early_stopping": self.pruner is not None,
            "repeats": self.repeats > 1,
            "several metrics": self.multi,
        }
        for what, clash in clashes.items():
            if clash:
                raise ConfigError(
                    f"pbt does not combine with {what}: its members are compared, copied and "
                    "changed during one training each (leave one of them out)"
                )

    def _check_dissemination(self) -> None:
        """``all`` or ``gossip``; PBT needs every segment record on every worker."""
        if self.dissemination not in ("all", "gossip"):
            raise ConfigError(
                f"dissemination must be 'all' or 'gossip', got {self.dissemination!r}"
            )
        if self.dissemination == "gossip" and self.pbt is not None:
            raise ConfigError(
                "pbt does not combine with dissemination: gossip: a member copies the latest "
                "segment of another, so every worker needs every segment's record"
            )

    def _check_objectives(self) -> None:
        """``metric`` is a name, or a list of names (several objectives); ``direction`` one
        direction, or one per metric."""
        metric, direction = self.metric, self.direction
        several = isinstance(metric, Sequence) and not isinstance(metric, str)
        if several:
            names = tuple(metric)
            if not names or not all(isinstance(m, str) and m for m in names):
                raise ConfigError(f"metric must be a name or a list of names, got {metric!r}")
            if len(set(names)) != len(names):
                raise ConfigError(f"metric names a value twice: {list(names)}")
            object.__setattr__(self, "metric", names if len(names) > 1 else names[0])
        elif metric is not None and not isinstance(metric, str):
            raise ConfigError(f"metric must be the name of a returned value, got {metric!r}")
        if isinstance(direction, Sequence) and not isinstance(direction, str):
            direction = tuple(direction)
            if len(direction) != len(self.objectives):
                raise ConfigError(
                    f"direction lists {len(direction)} directions for {len(self.objectives)} "
                    f"metric(s) {list(self.objectives)}; give one, or one per metric"
                )
            object.__setattr__(self, "direction", direction if len(direction) > 1 else direction[0])
        for d in self.directions:
            if d not in ("minimize", "maximize"):
                raise ConfigError(f"direction must be 'minimize' or 'maximize', got {d!r}")
        if self.multi and self.pruner is not None:
            raise ConfigError(
                "early_stopping ranks one value per step; a search of several metrics cannot "
                "use it (leave it out, or optimize one metric)"
            )
        if self.multi and self.confirm is not None:
            raise ConfigError(
                "confirm re-evaluates the best configurations; a search of several metrics has "
                "a Pareto front instead (leave confirm out, or optimize one metric)"
            )

    @property
    def objectives(self) -> tuple[str, ...]:
        """The optimized metrics' names (``("value",)`` for an objective returning a float)."""
        if isinstance(self.metric, tuple):
            return self.metric
        return (self.metric or "value",)

    @property
    def directions(self) -> tuple[str, ...]:
        """The direction of each objective."""
        d = self.direction
        return d if isinstance(d, tuple) else (d,) * len(self.objectives)

    @property
    def multi(self) -> bool:
        """Several objectives: a Pareto front, not one best."""
        return len(self.objectives) > 1

    @cached_property  # read on every evaluation
    def signs(self) -> np.ndarray:
        """Per objective, the multiplier that turns it into a loss to minimise."""
        return np.array([1.0 if d == "minimize" else -1.0 for d in self.directions])

    @cached_property
    def sign(self) -> float:
        """Multiplier that turns the (first) metric into a loss to minimise."""
        return float(self.signs[0])

    @property
    def n_islands(self) -> int:
        return len(self.islands) if isinstance(self.islands, tuple) else self.islands


def _one_value(spec: StrategySpec) -> str:
    """Why ``spec`` cannot search several metrics, naming the strategies that can."""
    able = [name for name, cls in STRATEGIES.items() if cls.multi_objective is True]
    if isinstance(spec, Portfolio):
        single = ", ".join(m.name for m in spec.members if not m.multi_objective)
        return (
            f"strategy portfolio: its member(s) {single} optimize one value; with several "
            f"metrics its members can be {', '.join(able)} (or members: auto)"
        )
    return (
        f"strategy {spec.name} optimizes one value; with several metrics use portfolio, "
        f"{', '.join(able)}"
    )


def _seconds(value: Any, name: str) -> float:
    try:
        return parse_duration(value)
    except ConfigError:
        raise ConfigError(
            f"{name} must be a positive number of seconds or a duration such as '30s', "
            f"got {value!r}"
        ) from None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (settings are stored as JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _positive_int(v: Any, name: str) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"{name} must be a positive integer, got {v!r}")


def strategies_for(spec: Any, n_islands: int) -> tuple[StrategySpec, ...]:
    """One strategy spec per island from a single spec or a list of one per island. A
    portfolio of ``members: auto`` runs on every island (each resolves the space's members
    as one island does, for its objectives too); one of explicit members deals them out
    among the islands."""
    if isinstance(spec, Sequence) and not isinstance(spec, (str, Mapping)):
        if len(spec) != n_islands:
            raise ConfigError(
                f"strategy lists {len(spec)} strategies for {n_islands} islands; "
                "give one, or one per island"
            )
        return tuple(_indexed(i, s) for i, s in enumerate(spec))
    resolved = make_strategy(spec)
    if isinstance(resolved, Portfolio) and n_islands > 1:
        return deal(resolved, n_islands)
    return (resolved,) * n_islands


def _indexed(i: int, spec: Any) -> StrategySpec:
    try:
        return make_strategy(spec)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("strategy", f"strategy[{i}]", 1)) from None


def confirm_from(spec: Confirm | Mapping[str, Any] | None) -> Confirm | None:
    if spec is None or isinstance(spec, Confirm):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"confirm must be a mapping such as {{top: 5, seeds: 3}}, got {spec!r}")
    unknown = set(spec) - {"top", "seeds"}
    if unknown:
        raise ConfigError(f"unknown confirm setting(s) {sorted(unknown)}; known: ['seeds', 'top']")
    return Confirm(**spec)


def budget_from(spec: Budget | Mapping[str, Any] | int) -> Budget:
    if isinstance(spec, Budget):
        return spec
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return Budget(evaluations=int(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"budget must be a propagator.Budget, a mapping or an evaluation count, got {spec!r}"
        )
    unknown = set(spec) - {"evaluations", "time", "steps"}
    if unknown:
        raise ConfigError(
            f"unknown budget setting(s) {sorted(unknown)}; known: ['evaluations', 'steps', 'time']"
        )
    return Budget(**spec)
