"""Evaluation times: lognormal with a given mean and coefficient of variation, drawn from an
evaluation's seed, so that the real objective of the validation (from ``trial.seed``) and the
simulator (from the same run seed and record id) sleep the same times for the same ids."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lognormal:
    """Attributes: ``mean`` (s) and ``cv`` (standard deviation over mean)."""

    mean: float
    cv: float

    def draw(self, seed: int) -> float:
        """The time of the evaluation whose seed is ``seed``, s."""
        sigma2 = math.log1p(self.cv**2)
        z = np.random.default_rng(seed).standard_normal()
        return math.exp(math.log(self.mean) - sigma2 / 2 + math.sqrt(sigma2) * z)


def trial_seed(run_seed: int, record_id: int) -> int:
    """``trial.seed`` of an evaluation's first repeat (as :class:`propagator.Trial` derives it)."""
    return int(np.random.SeedSequence([run_seed, record_id]).generate_state(1)[0])
