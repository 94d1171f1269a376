"""Warm starts: the evaluations of an earlier search seed a new one's islands (their pools and
strategies), read from a run directory, a CSV or JSON-lines export (``propagate export``), or
an Optuna study.

A record seeds the new search when its params are a point of the new space: the space's
parameters with values in range (a parameter the new space holds as a constant must have that
value, or be absent), and it has a value of the metric the new search optimizes. Others are
skipped and counted. A parameter the records lack (one added to the space since) takes the
warm start's ``fill`` value (:class:`propagator.seeding.WarmStart`); without one, the records
are skipped, the message names the parameter, and a warm start that keeps no record for want
of it is refused. Warm records are not evaluations of the new run: they are not stored in
it, and a configuration they hold may still be evaluated again (the settings around it may
have changed).

The metric is found by name in every source: a run's or an export's metrics are what its
objective returned, an Optuna study's are its values under ``study.metric_names`` (and what
``propagate optuna`` keeps in each trial's ``metrics`` attribute). A source whose successful
records have no value of the metric is refused, as it measured something else. A study that
does not name its metrics can seed only a search that does not name its own either (an
objective returning a number): its values could be any metric's.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.records import Kind, Status
from ..errors import ConfigError, SpaceError
from ..seeding import WarmStart
from ..space import Categorical, Constant, Float, Int, Space
from ..space.conditions import evaluation_order, is_active
from .run_store import META

# Another run's paused training cannot be resumed here: its value is a rung's, as a pruned one's.
_STATUS = {
    "ok": Status.OK,
    "failed": Status.FAILED,
    "pruned": Status.PRUNED,
    "paused": Status.PRUNED,
}


@dataclass(frozen=True)
class Warm:
    """What a warm start brings.

    Attributes:
        rows: the usable records as wire rows (ids negative: not of this run).
        source: where they come from.
        skipped: records left out (outside the new space, or without its metric).
        short: those of them left out for lacking a parameter of the new space.
        lacking: per parameter of the new space, the records that lack it.
    """

    rows: np.ndarray
    source: str
    skipped: int
    short: int = 0
    lacking: Mapping[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        lack = self.lacking_text()
        other = self.skipped - self.short
        return (
            f"warm start: {len(self.rows)} records from {self.source} ({other} outside "
            f"this search's space or without its metric, skipped{'; ' * bool(lack)}{lack})"
        )

    def lacking_text(self) -> str:
        """Which parameters records were skipped for lacking, and how to fill them in."""
        if not self.lacking:
            return ""
        names = sorted(self.lacking)
        counts = ", ".join(f"{self.lacking[n]} lack {n!r}" for n in names)
        fill = ", ".join(f"{n}: VALUE" for n in names)
        return (
            f"{counts}, which this search's space has: give a value for records without it "
            f"with warm_start: {{from: {self.source}, fill: {{{fill}}}}}"
        )


def load_warm(
    warm: WarmStart | str, space: Space, metric: str | tuple[str, ...] | None, dtype: np.dtype
) -> Warm:
    """Read the records of a warm start that fit ``space``.

    Args:
        warm: the warm start, or its source alone: a run directory, a ``.csv``/``.jsonl``
            export, or an Optuna storage (a database URL, an SQLite or journal file),
            optionally ``STORAGE#STUDY`` when it holds several studies.
        space: the new search's space.
        metric: the value it optimizes, or the values (a tuple); ``None``: each record's
            optimized value(s).
        dtype: its wire dtype.

    Raises:
        ConfigError: the source cannot be read, it holds no values of ``metric``, or every
            record lacks a parameter of ``space``.
    """
    warm = warm if isinstance(warm, WarmStart) else WarmStart(str(warm))
    source = warm.source
    rows = np.zeros(0, dtype)
    kept, skipped, short = [], 0, 0
    lacking: Counter[str] = Counter()
    order = evaluation_order(space.params)
    n = dtype["values"].shape[0]
    names = None if metric is None else metric if isinstance(metric, tuple) else (metric,)
    held: set[str] = set()  # the metrics the source's successful records have
    succeeded = False
    for params, metrics, value, status in _records(source, space, names):
        params, missing = _filled(params, space, order, warm.fill)
        lacking.update(missing)
        short += bool(missing)
        genes = None if missing else _genes(params, space)
        if names is not None:  # else the record's own optimized value(s)
            if status == Status.OK:
                succeeded = True
                held.update(metrics)
            value = [metrics.get(name, math.nan) for name in names]
        values = _values(value, n, status == Status.OK)
        if genes is None or values is None:
            skipped += 1
            continue
        row = np.zeros(1, dtype)[0]
        row["id"], row["island"], row["worker"], row["owner"] = -1 - len(kept), -1, -1, -1
        row["status"], row["kind"], row["step"] = status, Kind.EVALUATED, -1
        row["values"] = values
        row["genes"] = genes
        kept.append(row)
    missing = [name for name in names or () if name not in held]
    if succeeded and missing:
        raise ConfigError(
            f"warm_start: {source!r} holds no values of {_listed(missing)}, which this search "
            f"optimizes; its records have {_listed(sorted(held)) or 'no metrics'}"
        )
    if kept:
        rows = np.array(kept, dtype=dtype)
    found = Warm(rows, source, skipped, short, dict(lacking))
    if lacking and not kept:
        raise ConfigError(f"warm_start: no record of {source!r} fits: {found.lacking_text()}")
    return found


def _filled(
    params: Mapping[str, Any], space: Space, order: list[str], fill: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A record's params with ``fill``'s values for the active parameters it lacks; and the
    active parameters it still lacks (an inactive one is absent by right). ``order``: the
    space's parameters in the order their conditions are evaluated."""
    out = dict(params)
    active: dict[str, Any] = {}
    missing = []
    for name in order:
        p = space.params[name]
        try:
            if not is_active(name, p.when, active):
                continue
        except SpaceError:  # a value the condition cannot compare: not a point of the space
            return out, []
        if isinstance(p, Constant) and name not in out:
            active[name] = p.value
            continue
        if name not in out and name in fill:
            out[name] = fill[name]
        if name in out:
            active[name] = out[name]
        else:
            missing.append(name)
    return out, missing


def _listed(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _records(
    source: str, space: Space, names: tuple[str, ...] | None
) -> Iterator[tuple[dict, dict, Any, int]]:
    path = Path(source.split("#")[0])
    if "://" not in source and not path.exists():
        raise ConfigError(
            f"warm_start: nothing at {str(path)!r}; give a run directory, a .csv or .jsonl "
            "export, or an Optuna storage (sqlite:///x.db, x.db, x.log)"
        )
    if (path / META).exists():
        yield from _from_run(path)
    elif path.suffix.lower() == ".csv":
        yield from _from_csv(path, space)
    elif path.suffix.lower() in (".jsonl", ".json"):
        yield from _from_jsonl(path)
    else:
        yield from _from_optuna(source, names)


def _from_run(path: Path) -> Iterator[tuple[dict, dict, Any, int]]:
    from .load import load

    for r in load(path).records:
        if not r.confirmation:
            yield r.params, r.metrics, r.value, _STATUS[r.status]


def _from_csv(path: Path, space: Space) -> Iterator[tuple[dict, dict, Any, int]]:
    with _opened(path) as f:
        for line in csv.DictReader(f):
            params = {
                k[6:]: _typed(v, space.params.get(k[6:]))
                for k, v in line.items()
                if k.startswith("param.") and v != ""
            }
            metrics = {k[7:]: _number(v) for k, v in line.items() if k.startswith("metric.")}
            status = _STATUS.get(line.get("status", "ok"), Status.OK)
            yield params, metrics, _number(line.get("value", "")), status


def _from_jsonl(path: Path) -> Iterator[tuple[dict, dict, Any, int]]:
    with _opened(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                status = _STATUS.get(r.get("status", "ok"), Status.OK)
                yield r.get("params", {}), r.get("metrics") or {}, r.get("value"), status


def _from_optuna(
    source: str, names: tuple[str, ...] | None
) -> Iterator[tuple[dict, dict, Any, int]]:
    import optuna  # a core dependency (the TPE strategy)

    from ..results.export import open_storage

    spec, _, name = source.partition("#")
    storage = open_storage(spec)
    studies = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name and name not in studies:
        raise ConfigError(
            f"warm_start: {spec!r} has no study {name!r}; it holds {', '.join(studies) or 'none'}"
        )
    if not name and len(studies) != 1:
        raise ConfigError(
            f"warm_start: {spec!r} holds {len(studies)} studies ({', '.join(studies) or 'none'}); "
            "name one as STORAGE#STUDY"
        )
    study = optuna.load_study(study_name=name or studies[0], storage=storage)
    named = study.metric_names
    if names is not None and named is None:
        raise ConfigError(
            f"warm_start: study {study.study_name!r} of {spec!r} does not name its metrics, so "
            f"its values cannot be taken for {_listed(names)}; name them with "
            f"optuna.load_study(study_name={study.study_name!r}, storage=...)"
            ".set_metric_names([...])"
        )
    states = {
        optuna.trial.TrialState.COMPLETE: Status.OK,
        optuna.trial.TrialState.FAIL: Status.FAILED,
        optuna.trial.TrialState.PRUNED: Status.PRUNED,
    }
    for t in study.trials:
        if t.state in states:
            kept = t.user_attrs.get("metrics")  # every metric, in a propagate export
            metrics = dict(kept) if isinstance(kept, dict) else {}
            if named is not None and t.values is not None:
                metrics.update(zip(named, t.values, strict=True))
            yield t.params, metrics, t.values, states[t.state]


def _genes(params: Mapping[str, Any], space: Space) -> np.ndarray | None:
    """The point's genes in ``space``, or ``None`` when it is not a point of it."""
    mine: dict[str, Any] = {}
    for name, p in space.params.items():
        if name not in params:
            continue
        if isinstance(p, Constant):
            if params[name] != p.value:
                return None
            continue
        mine[name] = params[name]
    try:
        return space.encode(mine)
    except SpaceError:
        return None


def _typed(text: str, p: Any) -> Any:
    """A CSV cell as the value the parameter takes."""
    if isinstance(p, Int):
        return int(float(text))
    if isinstance(p, Float):
        return float(text)
    if isinstance(p, (Categorical, Constant)):
        choices = p.choices if isinstance(p, Categorical) else (p.value,)
        return next((c for c in choices if str(c) == text), text)
    return text


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _values(value: Any, n: int, ok: bool) -> np.ndarray | None:
    """A record's ``n`` objective values (all NaN unless ``ok``); ``None`` when a success
    lacks a finite value for each."""
    if not ok:
        return np.full(n, math.nan)
    listed = value if isinstance(value, (list, tuple)) else [value]
    good = len(listed) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in listed
    )
    return np.array(listed, dtype=np.float64) if good else None


def _opened(path: Path) -> Any:
    try:
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"warm_start: cannot read {str(path)!r}: {exc.strerror}") from None


def shared_warm(
    comm: Any,
    source: WarmStart | str,
    space: Space,
    metric: str | tuple[str, ...] | None,
    dtype: np.dtype,
) -> np.ndarray:
    """Collective: rank 0 reads the warm start (and says what it found); every rank gets its
    rows, or the :class:`ConfigError` rank 0 met."""
    from ..engine.comm.collect import agree

    def read() -> bytes:
        warm = load_warm(source, space, metric, dtype)
        sys.stderr.write(f"propagate: {warm.describe()}\n")
        sys.stderr.flush()
        return warm.rows.tobytes()

    return np.frombuffer(agree(comm, read), dtype=dtype).copy()
