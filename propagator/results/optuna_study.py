"""A run's evaluations as Optuna objects: the parameters' distributions and one
``FrozenTrial`` per record.

One conversion serves both the copy into an Optuna storage (``propagate optuna``,
:mod:`.optuna_export`) and the live, read-only view of a run (``propagate dashboard``,
:mod:`.run_storage`). Optuna is imported when a function is called, not with this module.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from ..engine.evaluation import error_headline
from ..engine.records import Record
from ..space import Categorical, Float, Int, Space
from .result import Result

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState

# Where Optuna keeps a study's metric names (what Study.set_metric_names writes): a read-only
# storage holds them there itself.
METRIC_NAMES_ATTR = "study:metric_names"
SEED_ATTR = "propagate_seed"


def distributions(space: Space) -> dict[str, BaseDistribution]:
    """The Optuna distribution of each searched parameter of ``space`` (constants have none)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, BaseDistribution] = {}
    for name, p in space.params.items():
        if isinstance(p, Float):
            out[name] = FloatDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, Int):
            out[name] = IntDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, Categorical):
            out[name] = CategoricalDistribution(p.choices)
    return out


def study_attrs(result: Result) -> tuple[dict[str, Any], dict[str, Any]]:
    """The study's user attributes (the run seed) and system attributes (the metric names)."""
    return {SEED_ATTR: result.info.seed}, {METRIC_NAMES_ATTR: list(result.objectives)}


def trial_state(record: Record, paused: TrialState | None = None) -> TrialState:
    """The Optuna state of ``record``: ok -> COMPLETE, failed -> FAIL, pruned -> PRUNED, and
    paused (stopped at a rung, its training saved) -> ``paused`` (default PRUNED: stopped
    early, as far as anyone can tell once the search is over)."""
    from optuna.trial import TrialState

    states = {
        "ok": TrialState.COMPLETE,
        "failed": TrialState.FAIL,
        "pruned": TrialState.PRUNED,
        "paused": paused or TrialState.PRUNED,
    }
    return states[record.status]


def frozen_trial(
    record: Record,
    number: int,
    space: dict[str, BaseDistribution],
    origin: float,
    paused: TrialState | None = None,
) -> FrozenTrial:
    """``record`` as the Optuna trial ``number`` (also its trial id).

    Args:
        record: the evaluation.
        number: the trial's number in its study.
        space: the run's :func:`distributions`.
        origin: epoch seconds the record times count from (the run's first start).
        paused: the state of a paused record (see :func:`trial_state`).

    The trial keeps the params that have a distribution (a constant goes to the ``constants``
    user attribute), the values when it succeeded, every intermediate value (the learning
    curve), real start and end times, and as user attributes the record's ``id``,
    ``island``, ``worker``, ``generation``, ``metrics`` and, where they apply, the failure's
    ``error`` headline, ``paused``, ``confirmation``, and PBT's ``parent`` and ``member``.
    """
    from optuna.trial import FrozenTrial, TrialState

    state = trial_state(record, paused)
    params = {k: v for k, v in record.params.items() if k in space}
    trial = FrozenTrial(
        number=number,
        trial_id=number,
        state=state,
        value=None,
        values=list(record.values) if state == TrialState.COMPLETE else None,
        # real times, so that Optuna's timeline and durations show when each evaluation ran
        datetime_start=datetime.datetime.fromtimestamp(origin + record.start),
        datetime_complete=(
            datetime.datetime.fromtimestamp(origin + record.end) if state.is_finished() else None
        ),
        params=params,
        distributions={k: space[k] for k in params},
        user_attrs=_user_attrs(record, space),
        system_attrs={},
        intermediate_values=dict(record.intermediate),
    )
    trial._validate()
    return trial


def _user_attrs(record: Record, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "id": record.id,
        "island": record.island,
        "worker": record.worker,
        "generation": record.generation,
        "metrics": record.metrics,
    }
    constants = {k: v for k, v in record.params.items() if k not in space}
    if constants:  # Optuna params need a distribution; constants have none
        attrs["constants"] = constants
    if record.error:
        attrs["error"] = error_headline(record.error)
    if record.paused:
        attrs["paused"] = True
    if record.confirmation:
        attrs["confirmation"] = True
    for name in ("parent", "member"):
        if getattr(record, name) is not None:
            attrs[name] = getattr(record, name)
    return attrs
