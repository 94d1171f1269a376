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
    if view.horizon is None or view.incumbent is None:
        return 1.0
    p = probability_below(view.steps, view.losses, view.horizon, view.incumbent)
    return 1.0 if p is None else p


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
class Auto(Curve):
    """The recommended early stopping, chosen by measurement (``jobs/bench/early_stopping.py``,
    4 ranks, 5 seeds): learning-curve extrapolation judged at steps 3, 6, 12, 24, ... (3 reports
    are the fewest a curve is fitted to), stopping a training whose chance of ending below the
    best complete evaluation is under 20 %. On two families of crossing synthetic curves it
    spends 3.0x and 3.2x fewer epochs, with the same best on one and within 0.004 of it on the
    other, where ASHA, with or without promotion, and Hyperband brackets lost the best; on
    trainings of 6 to 10 epochs it saves less (1.3x to 1.8x), judging from step 3 only.
    """

    min_step: int = 3
    reduction: int = 2

    name = "auto"
