"""The pruner interface: when an evaluation is hopeless, from the values its island has seen.

A pruner watches a few *rungs*: geometric steps ``min_step · reduction^k``. Every record of an
evaluation carries the value it reported at each rung it reached (``Record.rungs``; at the
first report at or after the rung's step), so a worker learns every rung value of its island
from the records it receives anyway: its island peers' (finished, pruned or paused),
immigrants and, on resume, the stored ones. No message is sent for pruning. The decision for a
running evaluation is taken when it reports the value of a rung, against the values of that
rung the worker knows of then (:class:`RungView`).

This costs freshness: a rung value is known once its evaluation has finished (or was
pruned or paused), not when it was reported. Early in a search, when few evaluations have
finished, pruning is therefore gentle; the decisions sharpen as the island's records come in.

A pruner that judges by learning curves may also be asked *between* rungs, at every report
(:attr:`PrunerSpec.between_rungs`, :meth:`PrunerSpec.goes_on`): a curve can tell that a
training is hopeless as soon as it can be extrapolated, long before the next rung when rungs
are far apart.

*Brackets* (Hyperband; Li et al., 2018) judge some configurations late: with ``brackets`` B,
each configuration is drawn into bracket ``b`` (from its id and the run seed, the same on
every rank) and judged from rung ``b`` on, against the configurations of its own bracket
only. Bracket ``b`` gets a share proportional to ``reduction^(B-1-b) / (B-b)``, Hyperband's
numbers of configurations per bracket.

With ``promotion`` an evaluation that is not good enough at a rung is *paused* (its training
saved with ``trial.save``), not stopped, and resumed later if it comes to rank among the best
of its rung as more values arrive (ASHA as published; Li et al., 2020).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError

RUNGS = 12  # rungs recorded per evaluation: min_step · reduction^0 .. ^11


@dataclass(frozen=True)
class RungView:
    """What a pruner judges an evaluation at a rung by. Losses are minimised (a maximised
    metric's values are negated).

    Attributes:
        loss: the evaluation's loss at the rung.
        others: the losses the island's other evaluations (of its bracket) had at the rung.
        steps, losses: the evaluation's reports so far (its learning curve).
        horizon: the last step of the longest complete evaluation known (``None``: none yet);
            where a curve is extrapolated to.
        incumbent: the best loss of a complete evaluation known (``None``: none yet).
    """

    loss: float
    others: np.ndarray
    steps: np.ndarray
    losses: np.ndarray
    horizon: int | None = None
    incumbent: float | None = None


@dataclass(frozen=True)
class PrunerSpec(ABC):
    """Settings of a pruner; subclasses are frozen dataclasses registered by ``name``.

    Args:
        min_step: the first rung's step (default 1).
        reduction: the factor between rungs' steps (default 3).
        brackets: Hyperband brackets, each judging from one rung later (default 1).
        promotion: pause instead of stop, and resume paused trainings that come to rank
            among the best of their rung (default false; needs an objective that saves and
            restores its training with ``trial.save`` / ``trial.restore``).
    """

    min_step: int = 1
    reduction: int = 3
    brackets: int = 1
    promotion: bool = False

    name: ClassVar[str]
    between_rungs: ClassVar[bool] = False  # :meth:`goes_on` is asked at every report

    def __post_init__(self) -> None:
        for field, low in (("min_step", 1), ("reduction", 2), ("brackets", 1)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(
                    f"early_stopping.{field} must be an integer >= {low}, but got {value!r}"
                )
        if self.brackets > RUNGS:
            raise ConfigError(f"early_stopping.brackets must be at most {RUNGS}")
        if not isinstance(self.promotion, bool):
            raise ConfigError(
                f"early_stopping.promotion must be true or false, but got {self.promotion!r}"
            )

    def steps(self) -> np.ndarray:
        """The rungs' steps."""
        return self.min_step * self.reduction ** np.arange(RUNGS, dtype=np.int64)

    def bracket(self, record_id: int, seed: int) -> int:
        """The bracket of evaluation ``record_id`` (0 with one bracket): the rung it is first
        judged at."""
        if self.brackets == 1:
            return 0
        b = np.arange(self.brackets)
        share = self.reduction ** (self.brackets - 1.0 - b) / (self.brackets - b)
        u = np.random.SeedSequence([seed, record_id, 0xB4]).generate_state(1)[0] / 2.0**32
        return int(np.searchsorted(np.cumsum(share) / share.sum(), u, side="right"))

    def judge(self, view: RungView) -> bool:
        """Whether the evaluation goes on past the rung (or, paused, is resumed): by its rank
        among the others (:meth:`keeps`), or by its learning curve (:meth:`second_opinion`)."""
        return self.keeps(view.loss, view.others) or self.second_opinion(view)

    def second_opinion(self, view: RungView) -> bool:
        """Whether an evaluation :meth:`keeps` would stop goes on all the same (default:
        never)."""
        return False

    def goes_on(self, view: RungView) -> bool:
        """Between rungs, asked at every report once the evaluation has passed its bracket's
        first rung when :attr:`between_rungs` is set: whether it goes on (default: yes).
        ``view`` holds the last rung passed and the loss just reported."""
        return True

    def ranked(self, view: RungView) -> bool:
        """Whether a paused training may be promoted by its rank (:meth:`cutoff`), or only
        by :meth:`second_opinion` (default: by its rank too)."""
        return True

    def cutoff(self, values: np.ndarray) -> float:
        """The largest loss that :meth:`keeps` lets go on at a rung whose losses, the judged
        one's among them, are ``values`` (sorted): :meth:`keeps` must be monotone, passing
        every loss up to a cutoff (promotion checks many paused trainings at once so)."""
        passed = [v for v in values if self.keeps(v, np.delete(values, np.searchsorted(values, v)))]
        return max(passed, default=-np.inf)

    def why(self, view: RungView) -> str:
        """Why :meth:`judge` said no, in words."""
        return self.explain(view.loss, view.others)

    @abstractmethod
    def keeps(self, loss: float, others: np.ndarray) -> bool:
        """Whether an evaluation whose loss at a rung is ``loss`` goes on, given the losses
        the island's other evaluations had at that rung (lower is better)."""

    def explain(self, loss: float, others: np.ndarray) -> str:
        """Why :meth:`keeps` said stop, in words."""
        return f"{loss:.6g} is not good enough against {len(others)} others at this rung"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


def rung_values(reports: list[tuple[int, float]], steps: np.ndarray) -> np.ndarray:
    """An evaluation's value at each rung: that of its first report at or after the rung's
    step (NaN for rungs it did not reach)."""
    out = np.full(len(steps), np.nan)
    k = 0
    for step, value in reports:
        while k < len(steps) and step >= steps[k]:
            out[k] = value
            k += 1
    return out
