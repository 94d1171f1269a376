"""The result of a search: every evaluation record and the best configurations."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..engine.records import Record, Status, latest
from ..errors import PropagateError
from ..space import Space
from ..strategies.pareto import hypervolume
from .ranking import Confirmed, confirmations, front, ranked
from .row_records import from_wire, record_of, to_wire


@dataclass(frozen=True)
class RunInfo:
    """Facts about how the search ran.

    The counts (messages to duplicates_avoided) are the session's in the result a search
    returns (what the command line reports at its end), and add up the run's sessions in
    the result :func:`propagator.load` reads.

    Attributes:
        seed: the run seed (drawn at random when none was given; pass it to repeat the run).
        world_size: ranks in the job.
        n_workers: workers (groups of ``ranks_per_worker`` ranks).
        n_islands: islands.
        wall_time: seconds this rank spent in the search, from its start to the end of
            result collection.
        messages: record messages sent between worker leaders.
        message_bytes: bytes of those messages.
        migrants_sent: records sent to other islands.
        immigrants_received: records received from other islands and put in a pool.
        interrupted: the search was stopped by a signal before its budget was spent.
        duplicates_avoided: proposals of the strategies that were configurations already
            evaluated (or in flight) on their island, and so were bred again.
        exhausted: an island evaluated every configuration of a (small, discrete) space and
            its workers stopped before the budget was spent.
    """

    seed: int
    world_size: int
    n_workers: int
    n_islands: int
    wall_time: float
    interrupted: bool
    messages: int
    message_bytes: int
    migrants_sent: int
    immigrants_received: int
    duplicates_avoided: int = 0
    exhausted: bool = False


class Result:
    """Every evaluation of a search, ordered by id, and the best ones.

    With several objectives (``metric`` a list) there is no single best: :attr:`pareto_front`
    holds the evaluations no other one beats on every objective, and :attr:`best` raises.
    With confirmations (``confirm=``), :attr:`best` is the confirmed winner and
    :attr:`search_best` the search's own best.

    Attributes:
        space: the search space.
        metric: name of the optimized value (``"value"`` when the objective returns floats;
            the first objective with several).
        direction: ``"minimize"`` or ``"maximize"`` (the first objective's).
        objectives: every optimized metric's name (one, unless a search of several).
        directions: the direction of each objective.
        info: seed, layout, timing and traffic (:class:`RunInfo`).
        rows: the raw records as a numpy structured array (wire format), ordered by id.
        problems: damage found when the result was loaded from a run directory.
    """

    def __init__(
        self,
        space: Space,
        metric: str | Sequence[str] | None,
        direction: str | Sequence[str],
        rows: np.ndarray,
        metrics: Mapping[int, dict[str, Any]],
        errors: Mapping[int, str],
        reports: Mapping[int, list[tuple[int, float]]],
        info: RunInfo,
        problems: list[str] | None = None,
    ) -> None:
        self.space = space
        self.objectives = (metric,) if isinstance(metric, str) or not metric else tuple(metric)
        self.objectives = tuple(m or "value" for m in self.objectives)
        self.directions = (
            (direction,) * len(self.objectives) if isinstance(direction, str) else tuple(direction)
        )
        self.metric, self.direction = self.objectives[0], self.directions[0]
        self.rows = latest(rows)
        self._metrics = metrics
        self._errors = errors
        self._reports = reports
        self.info = info
        self.problems = list(problems or [])

    def __len__(self) -> int:
        return len(self.rows)

    def to_bytes(self) -> bytes:
        """The result as bytes (JSON header, newline, raw rows), for a broadcast; no pickle."""
        return to_wire(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Result:
        """The result :meth:`to_bytes` wrote."""
        return cls(**from_wire(data))

    def __repr__(self) -> str:
        best, winner = self._best_index(), self.winner
        if best is None:
            shown = "none succeeded"
        elif self.multi:
            shown = f"Pareto front of {len(self._front())} over {', '.join(self.objectives)}"
        elif winner is not None:
            n = len(winner.values)
            shown = f"confirmed best {self.metric}={winner.mean:.6g} over {n} seeds"
        else:
            shown = f"best {self.metric}={self.values[best]:.6g}"
        return f"<Result: {len(self)} evaluations, {self.n_failed} failed, {shown}>"

    @property
    def multi(self) -> bool:
        """A search of several objectives."""
        return len(self.objectives) > 1

    @property
    def values(self) -> np.ndarray:
        """The optimized metric per record (NaN where failed), in id order; the first
        objective's with several (see :attr:`objective_values`)."""
        return self.rows["values"][:, 0]

    @property
    def objective_values(self) -> np.ndarray:
        """Every objective's value per record, shape ``(len(result), objectives)``, in id
        order (NaN where failed)."""
        return self.rows["values"]

    @property
    def losses(self) -> np.ndarray:
        """:attr:`objective_values` turned into losses to minimise (maximised ones negated)."""
        signs = np.array([1.0 if d == "minimize" else -1.0 for d in self.directions])
        return self.rows["values"] * signs

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of successful records, in id order."""
        return self.rows["status"] == Status.OK

    @property
    def all_failed(self) -> bool:
        """Every evaluation (there is at least one) failed: none succeeded or was pruned."""
        return len(self) > 0 and bool((self.rows["status"] == Status.FAILED).all())

    @property
    def n_failed(self) -> int:
        return int(np.count_nonzero(self.rows["status"] == Status.FAILED))

    @cached_property
    def records(self) -> list[Record]:
        """Every evaluation as a :class:`Record`, in id order."""
        return [self._record(i) for i in range(len(self.rows))]

    @property
    def best(self) -> Record:
        """The winner: the best successful evaluation of the search (:attr:`search_best`),
        or, when winners were re-evaluated on fresh seeds (``confirm=``), the search
        evaluation of the configuration whose confirmations have the best mean
        (:attr:`winner`, ``result.confirmed[0]``). Its ``value`` stays the one draw of the
        search; the confirmed estimate is ``result.winner.mean``. A search value is the best
        of many noisy draws, so it flatters its configuration (the winner's curse): the
        confirmed mean ranks configurations fairly.

        Raises:
            PropagateError: when no evaluation succeeded (the message quotes the first
                error), or the search had several objectives (see :attr:`pareto_front`).
        """
        winner = None if self.multi else self.winner
        if winner is not None and winner.search is not None:
            return winner.search
        return self.search_best

    @property
    def winner(self) -> Confirmed | None:
        """The confirmed configuration with the best mean (``result.confirmed[0]``);
        ``None`` without confirmations, or when none of them succeeded."""
        confirmed = self.confirmed
        if not confirmed or math.isnan(confirmed[0].mean):
            return None
        return confirmed[0]

    @property
    def search_best(self) -> Record:
        """The best successful evaluation of the search (confirmations left out), as ranked
        by its one value: :attr:`best` without confirmations.

        Raises:
            PropagateError: as :attr:`best`.
        """
        if self.multi:
            raise PropagateError(
                f"a search of several metrics ({', '.join(self.objectives)}) has no single "
                "best; see result.pareto_front (or result.top(n), ranked as NSGA-II does)"
            )
        i = self._best_index()
        if i is None:
            raise PropagateError(
                f"no evaluation succeeded ({len(self)} done); first error:\n{self.first_error}"
            )
        return self._record(i)

    @property
    def first_error(self) -> str | None:
        """The message of the failed evaluation with the smallest id (``None``: none failed).
        A pruned or paused evaluation's note (why it stopped early) is no failure."""
        failed = self.rows["id"][self.rows["status"] == Status.FAILED]
        return self._errors.get(int(failed[0])) if len(failed) else None

    @property
    def best_params(self) -> dict[str, Any]:
        """Params of :attr:`best` (the confirmed winner's, when winners were confirmed)."""
        return self.best.params

    def to_pandas(self) -> Any:
        """Every evaluation as a ``pandas.DataFrame``, one row each in id order: id, status,
        value, error headline, island, worker, generation, start, end, duration (s), step,
        confirmation, promoted, ``params_<name>`` (NaN where inactive), ``metrics_<name>``;
        PBT's parent and member; with several objectives ``values_<objective>`` and ``front``
        (0 = Pareto front). See :func:`propagator.results.frame.to_frame`.

        Raises:
            ConfigError: pandas is missing (``pip install 'propagate[pandas]'``).
        """
        from .frame import to_frame  # pandas only when asked for

        return to_frame(self)

    def top(self, n: int = 5) -> list[Record]:
        """The ``n`` best successful evaluations, best first (with several objectives: by
        Pareto front, then by crowding distance, as NSGA-II ranks them)."""
        return [self._record(int(i)) for i in self._ranked()[:n]]

    @property
    def pareto_front(self) -> list[Record]:
        """The successful search evaluations no other one beats on every objective (with
        one objective: the best ones), in order of the first objective, best first. A
        configuration evaluated again to the same values (``deduplicate=False``) is one
        point: its first evaluation."""
        return [self._record(int(i)) for i in self._front()]

    def hypervolume(self, reference: Sequence[float]) -> float:
        """The volume of objective space the Pareto front dominates up to ``reference`` (a
        point in the objectives' own units and directions, worse than the front on every
        objective): the usual measure of a front's quality, higher is better."""
        signs = np.array([1.0 if d == "minimize" else -1.0 for d in self.directions])
        front = self.losses[self._front()]
        return hypervolume(front, np.asarray(reference, dtype=np.float64) * signs)

    def _front(self) -> np.ndarray:
        return front(self.space, self.rows, self.losses)

    @cached_property
    def confirmed(self) -> list[Confirmed]:
        """The configurations re-evaluated on fresh seeds at the end of the search
        (``confirm=``), best mean first: each with its best search evaluation, the values of
        its confirmations, their mean and standard deviation. Empty without confirmations."""
        return confirmations(self.space, self.rows, self.losses, self.direction, self._record)

    def _ranked(self) -> np.ndarray:
        """Successful search evaluations, best first."""
        return ranked(self.rows, self.losses)

    def _best_index(self) -> int | None:
        ranked = self._ranked()
        return int(ranked[0]) if len(ranked) else None

    def _record(self, i: int) -> Record:
        return record_of(
            self.rows[i], self.space, self.objectives, self._metrics, self._errors, self._reports
        )
