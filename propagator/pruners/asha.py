"""Asynchronous successive halving (ASHA; Li et al., 2020): stopping, or pausing and promoting,
with learning-curve extrapolation as a second opinion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .base import PrunerSpec, RungView
from .curve_fit import probability_below


@dataclass(frozen=True)
class ASHA(PrunerSpec):
    """An evaluation goes on past a rung when its loss there is among the best ``1/reduction``
    of the losses the island has seen at that rung, its own included: with ``n`` of them,
    it must not be worse than the ``max(1, n // reduction)``-th best. Alone at a rung it goes
    on; of two it must be the better (with ``reduction`` 3), and so on.

    Args:
        min_step: the first rung's step (default 1).
        reduction: the rungs' spacing and the share kept, ``1/reduction`` (default 3).
        brackets: Hyperband brackets (default 1, see :mod:`.base`).
        promotion: pause and promote instead of stopping (default false).
        curve: a probability: an evaluation ASHA would stop goes on while the extrapolation
            of its learning curve gives at least this chance of ending better than the
            best complete evaluation (``None``, the default: ASHA alone).
    """

    curve: float | None = None

    name = "asha"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_probability(self.curve, "curve", optional=True)

    def keeps(self, loss: float, others: np.ndarray) -> bool:
        ranked = np.sort(np.append(others, loss))
        return bool(loss <= ranked[max(1, len(ranked) // self.reduction) - 1])

    def explain(self, loss: float, others: np.ndarray) -> str:
        n = len(others) + 1
        kept = max(1, n // self.reduction)
        return f"{loss:.6g} is not among the best {kept} of the {n} losses at this rung"

    def cutoff(self, values: np.ndarray) -> float:
        return float(values[max(1, len(values) // self.reduction) - 1])

    def second_opinion(self, view: RungView) -> bool:
        return self.curve is not None and chance(view) >= self.curve

    def why(self, view: RungView) -> str:
        reason = self.explain(view.loss, view.others)
        if self.curve is None:
            return reason
        return f"{reason}, and {_chance_words(view)}"


def chance(view: RungView) -> float:
    """The probability that the evaluation ends better than the incumbent, from its curve;
    1 when that cannot be told (no complete evaluation yet, too few reports)."""
    p = fitted_chance(view)
    return 1.0 if p is None else p


def fitted_chance(view: RungView) -> float | None:
    """:func:`chance`, or ``None`` when the curve cannot tell (no complete evaluation yet,
    fewer than three reports)."""
    if view.horizon is None or view.incumbent is None:
        return None
    return probability_below(view.steps, view.losses, view.horizon, view.incumbent)


def _chance_words(view: RungView) -> str:
    return (
        f"its curve gives a {chance(view):.1%} chance of ending below the best complete loss "
        f"{view.incumbent:.6g} at step {view.horizon}"
    )


def _check_probability(value: object, field: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
        raise ConfigError(
            f"early_stopping.{field} must be a probability between 0 and 1, but got {value!r}"
        )


@dataclass(frozen=True)
class Curve(PrunerSpec):
    """Learning-curve extrapolation (after Domhan et al., 2015): at each rung, an ensemble of
    parametric curves (power law, exponential, log-power) fitted to the evaluation's reports
    predicts its loss at the last step of the complete evaluations; it stops when the chance
    that this ends below the best complete loss is under ``probability``. It goes on while no
    evaluation is complete or it has fewer than three reports.

    Args:
        min_step: the first rung's step (default 1).
        reduction: the factor between rungs' steps (default 3).
        brackets: Hyperband brackets (default 1).
        promotion: pause instead of stopping (default false).
        probability: the chance below which it stops (default 0.2).
    """

    probability: float = 0.2

    name = "curve"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_probability(self.probability, "probability")

    def keeps(self, loss: float, others: np.ndarray) -> bool:
        return False  # its curve decides: see second_opinion

    def cutoff(self, values: np.ndarray) -> float:
        return -np.inf

    def second_opinion(self, view: RungView) -> bool:
        return chance(view) >= self.probability

    def why(self, view: RungView) -> str:
        return _chance_words(view)


@dataclass(frozen=True)
class Auto(ASHA):
    """The recommended early stopping, chosen by measurement (``jobs/bench/early_stopping.py``,
    4 ranks, 5 seeds). Rungs at steps 1, 2, 4, 8, ...; at each, the evaluation's learning
    curve decides once it can be extrapolated (three reports and a complete evaluation to
    compare with): it goes on while its chance of ending below the best complete loss is at
    least ``curve``. Before that, its rank does, as in ASHA (the best half go on), but only
    from ``earliest`` of the complete evaluations' length on: a rank taken earlier says too
    little about where a curve ends. Between rungs the curve is asked at every report, and
    pauses a training whose chance is under ``between``: a stricter bar, since it is asked
    far more often (at the rungs' 0.2 it lost the best on both synthetic curve families,
    at 0.1 on the crossing ones). A training that is not good enough is paused, and promoted
    by the rule that paused it: by its rank, when it comes to rank in its rung's best half,
    or by its curve, when that gives it the chance after all.

    Measured against no early stopping (median of 5 seeds, 4 ranks, every variant side by
    side): 2.05x fewer epochs on AB's 10 epochs, 2.14x on OIALR's 6, 2.40x on the NAS job's
    8, 3.74x on crossing synthetic curves and 3.25x where the best learn slowest, the best
    within the seeds' spread on four of the five (on the crossing curves 0.0735 against a
    bar of 0.0733; met in the run before, 0.0594 against 0.0661). Asking between rungs is
    what reached 2x and 3x: at rungs only it saved 1.6x, 1.9x, 2.5x, 3.4x and 2.3x.

    Args:
        min_step, reduction, brackets, promotion, curve: as for :class:`ASHA` (defaults 1,
            2, 1, true, 0.2).
        earliest: the share of the complete evaluations' length before which rank alone
            never stops a training (default 0.125).
        between: the chance below which the curve pauses a training between rungs
            (default 0.05; ``None``: at rungs only).
    """

    min_step: int = 1
    reduction: int = 2
    promotion: bool = True
    curve: float | None = 0.2
    earliest: float = 0.125
    between: float | None = 0.05

    name = "auto"
    between_rungs = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_probability(self.curve, "curve")
        _check_probability(self.earliest, "earliest")
        _check_probability(self.between, "between", optional=True)

    def judge(self, view: RungView) -> bool:
        p = fitted_chance(view)
        if p is not None:
            return p >= self.curve
        return bool(self._too_early(view) or self.keeps(view.loss, view.others))

    def second_opinion(self, view: RungView) -> bool:
        p = fitted_chance(view)
        return p is not None and p >= self.curve

    def goes_on(self, view: RungView) -> bool:
        if self.between is None:
            return True
        p = fitted_chance(view)
        return p is None or p >= self.between

    def ranked(self, view: RungView) -> bool:
        return fitted_chance(view) is None  # a training its curve paused, its curve promotes

    def why(self, view: RungView) -> str:
        if fitted_chance(view) is None:
            return self.explain(view.loss, view.others)
        return _chance_words(view)

    def _too_early(self, view: RungView) -> bool:
        return view.horizon is None or bool(view.steps[-1] < self.earliest * view.horizon)
