"""HDF5 files of a run directory, written with serial h5py (no parallel HDF5 needed).

Layout (``FORMAT_VERSION`` 2), readable with plain h5py::

    run.h5                       metadata, written by rank 0
      attrs: format_version, config_yaml (the search file as given), config (the resolved
             configuration, JSON), space (JSON, ``Space.to_dict``), seed, metric,
             direction, n_genes, n_rungs (values per record at the pruner's rungs, 0
             without a pruner), versions (JSON: python, numpy, mpi4py, h5py, propagate),
             created (epoch seconds)
      events   compound [n]: time (epoch s), session, kind ("start", "stop", "resume",
               "interrupted", "damaged", ...), detail (text)
    workers/worker-00000.h5      one per worker leader, append-only
      records  compound [n]: id, generation, island, worker, owner, status (0 ok,
               1 failed, 2 pruned), kind, step (the last reported step, -1 none), start,
               end (epoch seconds), values [n_values], genes [n_genes] (the encoded point,
               each in [0, 1]), rungs [n_rungs] (the values at the pruner's rungs, NaN where
               not reached; only with n_rungs > 0)
      params/NAME  [n] one column per non-constant parameter: float64 for float and int
               parameters (NaN where the parameter was inactive), int32 choice index for
               categoricals (-1 inactive; attrs "choices" holds them as JSON)
      metrics  str [n]: every value the objective returned, as JSON ("{}" for a float)
      errors   str [n]: failure message with traceback ("" if ok)
      reports  str [n]: intermediate (step, value) pairs, as JSON
      attrs: format_version, worker, rng_states (JSON: the breeding and migration bit
             generators' states at the last update)

Rows of a worker file are in the order they were evaluated; ``id`` is unique in the run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import PropagateError
from ..space import Categorical, Constant, Float, Int, Space

FORMAT_VERSION = 2  # 2: records carry step, and rungs with a pruner
_STR = h5py.string_dtype()
TEXT_COLUMNS = ("metrics", "errors", "reports")
_EVENT = np.dtype([("time", "f8"), ("session", "i4"), ("kind", _STR), ("detail", _STR)])


def _open(path: Path, mode: str) -> h5py.File:
    # Each file has one writer, and readers (propagate report on a running search) fall back
    # to the journal: HDF5's own file locks would only make a reader abort the writer.
    return h5py.File(path, mode, locking=False)


def append_worker_rows(
    path: Path,
    worker: int,
    rows: np.ndarray,
    space: Space,
    side: dict[int, dict[str, Any]],
    rng_states: list[dict[str, Any]] | None = None,
) -> None:
    """Append ``rows`` (their side data from ``side`` by id) to a worker file, created if
    missing, and flush."""
    params = param_columns(space, rows["genes"])
    text = _text_columns(rows, side)
    with _open(path, "a") as f:
        if "records" not in f:
            _create_worker_file(f, worker, rows.dtype, space)
        n = len(f["records"])
        _extend(f["records"], n, rows)
        for name in TEXT_COLUMNS:
            _extend(f[name], n, text[name])
        for name, column in params.items():
            _extend(f["params"][name], n, column)
        if rng_states is not None:
            f.attrs["rng_states"] = json.dumps(rng_states)


def _create_worker_file(f: h5py.File, worker: int, dtype: np.dtype, space: Space) -> None:
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["worker"] = worker
    f.create_dataset("records", (0,), _storable(dtype), maxshape=(None,), chunks=(1024,))
    for name in TEXT_COLUMNS:
        f.create_dataset(name, (0,), _STR, maxshape=(None,), chunks=(1024,))
    group = f.create_group("params")
    for name, p in space.params.items():
        if isinstance(p, Categorical):
            column = group.create_dataset(name, (0,), np.int32, maxshape=(None,), chunks=(1024,))
            column.attrs["choices"] = json.dumps(list(p.choices))
        elif not isinstance(p, Constant):
            group.create_dataset(name, (0,), np.float64, maxshape=(None,), chunks=(1024,))


def param_columns(space: Space, genes: np.ndarray) -> dict[str, np.ndarray]:
    """One column per non-constant parameter (see the layout above) for rows of genes."""
    u = np.nan_to_num(np.clip(genes, 0.0, 1.0), nan=0.0)
    conditional = any(p.when is not None for p in space.params.values())
    active = [space.decode(g).keys() for g in genes] if conditional else None
    columns = {}
    for j, name in enumerate(space.genes):
        p = space.params[name]
        if isinstance(p, Categorical):
            column = np.minimum((u[:, j] * len(p.choices)).astype(np.int32), len(p.choices) - 1)
        elif isinstance(p, Float) and not p.log:  # IEEE arithmetic: the same bits as decode
            column = np.clip(p.low + u[:, j] * (p.high - p.low), p.low, p.high)
        elif isinstance(p, Int) and not p.log:
            column = np.minimum(p.low + np.floor(u[:, j] * (p.high - p.low + 1)), p.high)
        else:  # log scales: math.exp and numpy's exp may differ in the last bit
            column = np.array([p.decode(x) for x in u[:, j].tolist()], dtype=np.float64)
        if active is not None:
            off = np.array([name not in keys for keys in active])
            column[off] = -1 if isinstance(p, Categorical) else np.nan
        columns[name] = column
    return columns


def _text_columns(rows: np.ndarray, side: dict[int, dict[str, Any]]) -> dict[str, np.ndarray]:
    n = len(rows)
    text = {
        "metrics": np.full(n, "{}", dtype=object),
        "errors": np.full(n, "", dtype=object),
        "reports": np.full(n, "[]", dtype=object),
    }
    if side:
        for i, record_id in enumerate(rows["id"].tolist()):
            s = side.get(record_id)
            if s:
                if s.get("m"):
                    text["metrics"][i] = json.dumps(s["m"])
                if s.get("e"):
                    text["errors"][i] = s["e"]
                if s.get("r"):
                    text["reports"][i] = json.dumps(s["r"])
    return text


def _extend(dataset: h5py.Dataset, n: int, values: np.ndarray) -> None:
    dataset.resize((n + len(values),))
    if values.dtype.names:
        values = values[list(dataset.dtype.names)]
    dataset[n:] = values


def _storable(dtype: np.dtype) -> np.dtype:
    """``dtype`` without its empty fields (no genes in a space of constants): HDF5 has no
    arrays of length zero."""
    fields = [(n, dtype[n]) for n in dtype.names if dtype[n].itemsize]
    return np.dtype(fields)


def _widened(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Stored rows as ``dtype`` (its empty fields back)."""
    if rows.dtype == dtype:
        return rows
    out = np.zeros(len(rows), dtype)
    for name in rows.dtype.names:
        out[name] = rows[name]
    return out


def read_worker_file(
    path: Path, dtype: np.dtype | None = None
) -> tuple[np.ndarray, dict[str, list[str]], list]:
    """Rows (as ``dtype``, by default as stored), text columns and last RNG states of a
    worker file (raises ``OSError``, ``KeyError`` or ``ValueError`` if it is damaged)."""
    with _open(path, "r") as f:
        rows = f["records"][...]
        if dtype is not None:
            rows = _widened(rows, dtype)
        text = {name: [s.decode() for s in f[name][...]] for name in TEXT_COLUMNS}
        states = json.loads(f.attrs.get("rng_states", "[]"))
    if any(len(column) != len(rows) for column in text.values()):
        raise OSError(f"{path}: columns of different lengths")
    return rows, text, states


def write_meta(
    path: Path, attrs: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> None:
    """Write ``run.h5`` whole: to a temporary file, then renamed over the old one, so that a
    kill at any moment leaves either the old or the new file, never a torn one (it changes
    only a few times per session)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with _open(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        for key, value in attrs.items():
            f.attrs[key] = value
        rows = [(e["time"], e["session"], e["kind"], e["detail"]) for e in events or []]
        f.create_dataset(
            "events", data=np.array(rows, dtype=_EVENT), maxshape=(None,), chunks=(64,)
        )
    os.replace(tmp, path)


def update_meta(path: Path, attrs: dict[str, Any]) -> None:
    """Change some attributes of ``run.h5`` (atomically, see :func:`write_meta`)."""
    old, events = read_meta(path)
    write_meta(path, {**old, **attrs}, events)


def read_meta(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Attributes (strings decoded) and events of ``run.h5``.

    Raises:
        PropagateError: the run was made by a propagate with another store format.
    """
    with _open(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        version = int(attrs.get("format_version", 0))
        if version != FORMAT_VERSION:
            raise PropagateError(
                f"{path.parent} was stored in format {version} by another version of "
                f"propagate (this one reads format {FORMAT_VERSION}); read it with that "
                "version, or start over with --fresh"
            )
        events = [
            {
                "time": float(e["time"]),
                "session": int(e["session"]),
                "kind": e["kind"].decode(),
                "detail": e["detail"].decode(),
            }
            for e in f["events"][...]
        ]
    return attrs, events


def add_event(path: Path, session: int, kind: str, detail: str = "") -> None:
    """Append an event to ``run.h5`` (atomically, see :func:`write_meta`)."""
    attrs, events = read_meta(path)
    event = {"time": time.time(), "session": session, "kind": kind, "detail": detail}
    write_meta(path, attrs, [*events, event])


def versions() -> str:
    import sys

    import mpi4py

    from .. import __version__

    return json.dumps(
        {
            "propagate": __version__,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "h5py": h5py.__version__,
            "mpi4py": mpi4py.__version__,
        }
    )
