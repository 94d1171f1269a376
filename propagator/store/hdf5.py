"""HDF5 files of a run directory, written with serial h5py (no parallel HDF5 needed).

Layout (``FORMAT_VERSION`` 1), readable with plain h5py::

    run.h5                       metadata, written by rank 0
      attrs: format_version, config_yaml (the search file as given), config (the resolved
             configuration, JSON), space (JSON, ``Space.to_dict``), seed, metric,
             direction, n_genes, versions (JSON: python, numpy, mpi4py, h5py, propagate),
             created (epoch seconds)
      events   compound [n]: time (epoch s), session, kind ("start", "stop", "resume",
               "interrupted", "damaged", ...), detail (text)
    workers/worker-00000.h5      one per worker leader, append-only
      records  compound [n]: id, generation, island, worker, owner, status (0 ok,
               1 failed, 2 pruned), kind, start, end (seconds since the session started),
               values [n_values], genes [n_genes] (the encoded point, each in [0, 1])
      params   str [n]: the params the objective got, as JSON
      metrics  str [n]: every value it returned, as JSON ("{}" if it returned a float)
      errors   str [n]: failure message with traceback ("" if ok)
      reports  str [n]: intermediate (step, value) pairs, as JSON
      attrs: format_version, worker

Rows of a worker file are in the order they were evaluated; ``id`` is unique in the run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT_VERSION = 1
_STR = h5py.string_dtype()
TEXT_COLUMNS = ("params", "metrics", "errors", "reports")
_EVENT = np.dtype([("time", "f8"), ("session", "i4"), ("kind", _STR), ("detail", _STR)])


def append_worker_rows(
    path: Path, worker: int, rows: np.ndarray, text: dict[str, list[str]]
) -> None:
    """Append ``rows`` and their text columns to a worker file (created if missing), flushed."""
    with h5py.File(path, "a") as f:
        if "records" not in f:
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["worker"] = worker
            f.create_dataset("records", (0,), rows.dtype, maxshape=(None,), chunks=(1024,))
            for name in TEXT_COLUMNS:
                f.create_dataset(name, (0,), _STR, maxshape=(None,), chunks=(1024,))
        n, k = len(f["records"]), len(rows)
        f["records"].resize((n + k,))
        f["records"][n:] = rows
        for name in TEXT_COLUMNS:
            f[name].resize((n + k,))
            f[name][n:] = np.array(text[name], dtype=object)


def read_worker_file(path: Path) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Rows and text columns of a worker file (raises ``OSError``/``KeyError`` if damaged)."""
    with h5py.File(path, "r") as f:
        rows = f["records"][...]
        text = {name: [s.decode() for s in f[name][...]] for name in TEXT_COLUMNS}
    if any(len(column) != len(rows) for column in text.values()):
        raise OSError(f"{path}: columns of different lengths")
    return rows, text


def write_meta(path: Path, attrs: dict[str, Any]) -> None:
    """Create ``run.h5`` with its attributes and an empty event table."""
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        for key, value in attrs.items():
            f.attrs[key] = value
        f.create_dataset("events", (0,), _EVENT, maxshape=(None,), chunks=(64,))


def update_meta(path: Path, attrs: dict[str, Any]) -> None:
    with h5py.File(path, "a") as f:
        for key, value in attrs.items():
            f.attrs[key] = value


def read_meta(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Attributes (strings decoded) and events of ``run.h5``."""
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
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
    with h5py.File(path, "a") as f:
        events = f["events"]
        n = len(events)
        events.resize((n + 1,))
        events[n] = (time.time(), session, kind, detail)


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
