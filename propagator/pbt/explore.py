"""Explore: a copied configuration's mutable parameters, perturbed or drawn anew."""

from __future__ import annotations

import numpy as np

from ..space import Categorical, Float, Int, Space
from .spec import PBT


def explore(space: Space, genes: np.ndarray, spec: PBT, rng: np.random.Generator) -> np.ndarray:
    """``genes`` with each active mutable parameter drawn anew (probability ``resample``) or
    moved: a float multiplied by one of the ``perturb`` factors and kept in its range, an int
    or a category moved to a neighbour (the one inside the range at its ends). Inactive
    parameters and the others keep their genes, so the result decodes to a point of the
    space that satisfies its conditions."""
    out = np.array(genes, dtype=np.float64)
    active = space.decode(out)
    for name in spec.mutable:
        if name not in active:
            continue
        i = space.genes.index(name)
        param = space.params[name]
        if rng.random() < spec.resample:
            out[i] = rng.random()
        elif isinstance(param, Float):
            x = active[name] * float(rng.choice(spec.perturb))
            out[i] = param.encode(min(max(x, param.low), param.high))
        elif isinstance(param, Int):
            out[i] = param.encode(_neighbour(active[name], param.low, param.high, rng))
        elif isinstance(param, Categorical):
            j = _neighbour(_index(param, active[name]), 0, len(param.choices) - 1, rng)
            out[i] = param.encode(param.choices[j])
    return out


def _neighbour(x: int, low: int, high: int, rng: np.random.Generator) -> int:
    if low == high:
        return x
    step = 1 if rng.random() < 0.5 else -1
    y = x + step
    return y if low <= y <= high else x - step


def _index(param: Categorical, value: object) -> int:
    return next(j for j, c in enumerate(param.choices) if param.encode(c) == param.encode(value))
