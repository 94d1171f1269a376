"""A run's evaluations in other formats: CSV and JSON lines (Optuna: :mod:`.optuna_export`).

Nothing here changes the run directory; every function reads a loaded :class:`Result`.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..engine.evaluation import error_headline
from ..engine.records import Record
from ..errors import ConfigError

# re-exported: the Optuna copy lived here, and `report` and the warm start import it from here
from .optuna_export import open_storage as open_storage
from .optuna_export import to_optuna as to_optuna
from .pbt_report import is_pbt
from .result import Result

STDOUT = Path("-")  # as an output path: standard output
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
_RECORD_COLUMNS = (
    "id",
    "status",
    "value",
    "error",
    "island",
    "worker",
    "generation",
    "start",
    "end",
    "duration",
    "step",
    "confirmation",
)
# a PBT run's lineage (see propagator.pbt): other runs' exports keep the columns they had
_LINEAGE_COLUMNS = ("parent", "member")


def format_for(path: Path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else the one the file extension names (CSV for
    standard output, ``-``).

    Raises:
        ConfigError: the extension names no format and none was given.
    """
    if fmt is not None:
        return fmt
    if path == STDOUT:
        return "csv"
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        accepted = ", ".join(FORMATS)
        raise ConfigError(
            f"cannot tell the format of {str(path)!r} from its extension; use one of {accepted} "
            "or pass --format csv|jsonl"
        ) from None


def export(result: Result, path: Path, fmt: str) -> int:
    """Write every evaluation of ``result`` to ``path`` (:data:`STDOUT`: standard output) as
    ``fmt`` (csv or jsonl).

    Returns:
        The number of rows written.

    Raises:
        ConfigError: ``path`` cannot be written.
        BrokenPipeError: standard output is a pipe whose reader went away (``| head``).
    """
    write = _write_csv if fmt == "csv" else _write_jsonl
    if path == STDOUT:
        write(result, sys.stdout)
        return len(result)
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            write(result, f)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror}") from None
    return len(result)


def columns(result: Result, params: str = "param.", metrics: str = "metric.") -> list[str]:
    """A table's columns (the CSV's, and those :func:`table_row` fills): record fields (with
    PBT, ``parent`` and ``member`` too), ``<params><name>`` per parameter, ``<metrics><name>``
    per returned metric."""
    returned = dict.fromkeys(k for r in result.records for k in r.metrics)
    return [
        *_RECORD_COLUMNS,
        *(_LINEAGE_COLUMNS if is_pbt(result) else ()),
        *(f"{params}{name}" for name in result.space.params),
        *(f"{metrics}{name}" for name in returned),
    ]


def table_row(
    record: Record, lineage: bool, params: str = "param.", metrics: str = "metric."
) -> dict[str, Any]:
    """One evaluation as a row of :func:`columns`: its fields, the error's headline
    (``None``: none), its active params and its metrics (an inactive param has no key)."""
    row = _fields(record, lineage)
    row["value"] = record.value
    row["error"] = error_headline(record.error) if record.error else None
    row.update({f"{params}{k}": v for k, v in record.params.items()})
    row.update({f"{metrics}{k}": v for k, v in record.metrics.items()})
    return row


def _write_csv(result: Result, f: Any) -> None:
    writer = csv.DictWriter(f, fieldnames=columns(result), restval="")
    writer.writeheader()
    lineage = is_pbt(result)
    for record in result.records:
        row = table_row(record, lineage)
        if math.isnan(record.value):
            row["value"] = ""
        writer.writerow(row)  # None (no error) is written as an empty cell


def _write_jsonl(result: Result, f: Any) -> None:
    lineage = is_pbt(result)
    for record in result.records:
        row = _fields(record, lineage)
        row.update(
            value=record.value,
            error=record.error,
            params=record.params,
            metrics=record.metrics,
            intermediate=[list(p) for p in record.intermediate],
        )
        # strict JSON has no NaN or Infinity: a failed evaluation's value becomes null
        f.write(json.dumps(_finite(row), allow_nan=False) + "\n")


def _fields(record: Record, lineage: bool) -> dict[str, Any]:
    """The record's fields; ``lineage``: its PBT ``parent`` and ``member`` too (``None``:
    a member's first segment has no parent)."""
    fields = {
        "id": record.id,
        "status": record.status,
        "island": record.island,
        "worker": record.worker,
        "generation": record.generation,
        "start": record.start,
        "end": record.end,
        "duration": record.duration,
        "step": record.step,
        "confirmation": record.confirmation,
    }
    if lineage:
        fields.update(parent=record.parent, member=record.member)
    return fields


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x
