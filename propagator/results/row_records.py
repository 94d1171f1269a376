"""A result's rows as :class:`Record` objects, and a result as bytes (a JSON header and the
raw rows, no pickle)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.records import Kind, Record, Status, wire_dtype
from ..space import Space

if TYPE_CHECKING:
    from .result import Result

_STATUS = {int(s): s.name.lower() for s in Status}


def record_of(
    row: np.void,
    space: Space,
    objectives: Sequence[str],
    metrics: Mapping[int, dict[str, Any]],
    errors: Mapping[int, str],
    reports: Mapping[int, list[tuple[int, float]]],
) -> Record:
    """The :class:`Record` of one row, with what the row does not hold (returned metrics,
    error messages, reports; by id)."""
    rid = int(row["id"])
    value = float(row["values"][0])
    returned = metrics.get(rid)
    if returned is None:  # a record without metrics: its objective values
        values = row["values"].tolist()
        returned = dict(zip(objectives, values, strict=True)) if not math.isnan(value) else {}
    return Record(
        id=rid,
        params=space.decode(row["genes"]),
        value=value,
        metrics=dict(returned),
        status=_STATUS[int(row["status"])],
        error=errors.get(rid),
        island=int(row["island"]),
        worker=int(row["worker"]),
        generation=int(row["generation"]),
        start=float(row["start"]),
        end=float(row["end"]),
        intermediate=tuple(tuple(p) for p in reports.get(rid, ())),
        step=int(row["step"]) if row["step"] >= 0 else None,
        confirmation=int(row["kind"]) == Kind.CONFIRMATION,
        values=tuple(row["values"].tolist()),
        promoted=int(row["kind"]) == Kind.RESUMED and "parent" not in row.dtype.names,
        parent=_lineage(row, "parent"),
        member=_lineage(row, "member"),
    )


def _lineage(row: np.void, field: str) -> int | None:
    """A PBT record's ``parent`` or ``member`` (``None``: none, or no PBT)."""
    if field not in row.dtype.names or row[field] < 0:
        return None
    return int(row[field])


def to_wire(result: Result) -> bytes:
    """``result`` as a JSON header, a newline and its raw rows."""
    rows = result.rows
    header = {
        "space": result.space.to_dict(),
        "metric": list(result.objectives),
        "direction": list(result.directions),
        "info": dataclasses.asdict(result.info),
        "problems": result.problems,
        "metrics": result._metrics,
        "errors": result._errors,
        "reports": result._reports,
        "genes": result.space.dim,
        "values": rows.dtype["values"].shape[0],
        "rungs": rows.dtype["rungs"].shape[0] if "rungs" in rows.dtype.names else 0,
        "lineage": "parent" in rows.dtype.names,
    }
    return json.dumps(header).encode() + b"\n" + rows.tobytes()


def from_wire(data: bytes) -> dict[str, Any]:
    """The arguments of the :class:`Result` that :func:`to_wire` wrote."""
    from .result import RunInfo

    head, _, raw = data.partition(b"\n")
    h = json.loads(head)
    dtype = wire_dtype(h["genes"], h["rungs"], h["values"], h["lineage"])
    return {
        "space": Space.from_dict(h["space"]),
        "metric": h["metric"],
        "direction": h["direction"],
        "rows": np.frombuffer(raw, dtype=dtype).copy(),
        "metrics": {int(k): v for k, v in h["metrics"].items()},
        "errors": {int(k): v for k, v in h["errors"].items()},
        "reports": {int(k): [tuple(p) for p in v] for k, v in h["reports"].items()},
        "info": RunInfo(**h["info"]),
        "problems": h["problems"],
    }
