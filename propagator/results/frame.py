"""A run's evaluations as a pandas DataFrame (:meth:`Result.to_pandas`), one row each.

The columns are the CSV export's (:func:`propagator.results.export.columns`) named as
Optuna's ``trials_dataframe`` names them (``params_<name>``, ``metrics_<name>``), with
``promoted`` next to ``confirmation``; with several objectives also ``values_<objective>``
after ``value`` and ``front`` last (0: the Pareto front, 1: the front of what is left, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.records import Kind
from ..errors import ConfigError
from ..strategies.pareto import fronts
from .export import columns, table_row
from .pbt_report import is_pbt
from .result import Result

PARAMS, METRICS, VALUES = "params_", "metrics_", "values_"
_OPTIONAL_INTS = {"step", "parent", "member"}


def to_frame(result: Result) -> Any:
    """Every evaluation of ``result`` as a ``pandas.DataFrame``, in id order.

    An inactive param (its condition false) is missing: NaN. ``value`` is NaN where the
    evaluation failed, ``error`` its message's headline (``None``: none); ``start`` and ``end``
    are seconds since the run started, ``duration`` seconds; ``step`` the last step the
    evaluation reported, ``parent`` and ``member`` (PBT runs only) are nullable integers
    (``<NA>``: none).

    Raises:
        ConfigError: pandas is not installed.
    """
    pd = _pandas()
    lineage = is_pbt(result)
    names = columns(result, PARAMS, METRICS)
    rows = [table_row(r, lineage, PARAMS, METRICS) for r in result.records]
    frame = pd.DataFrame(rows, columns=names)
    for name in _OPTIONAL_INTS.intersection(names):  # integers, missing where there is none
        frame[name] = frame[name].astype("Int64")
    frame.insert(names.index("confirmation") + 1, "promoted", [r.promoted for r in result.records])
    if result.multi:
        at = names.index("value") + 1
        for i, objective in enumerate(result.objectives):
            frame.insert(at + i, f"{VALUES}{objective}", result.objective_values[:, i])
        frame["front"] = pd.array(_front_ranks(result), dtype="Int64")
    return frame


def _front_ranks(result: Result) -> list[int | None]:
    """Each successful search evaluation's Pareto front (0 the best); ``None`` for the
    others (failed, pruned, paused, confirmations), as :attr:`Result.pareto_front` ranks."""
    searched = result.ok & (result.rows["kind"] != Kind.CONFIRMATION)
    ranks: list[int | None] = [None] * len(result)
    for i, rank in zip(np.flatnonzero(searched), fronts(result.losses[searched]), strict=True):
        ranks[i] = int(rank)
    return ranks


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ConfigError(
            "Result.to_pandas needs pandas: pip install 'propagate[pandas]'"
        ) from None
    return pandas
