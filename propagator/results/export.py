"""A run's evaluations in other formats: CSV, JSON lines, and an Optuna study.

Nothing here changes the run directory; every function reads a loaded :class:`Result`.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import warnings
from pathlib import Path
from typing import Any

from ..engine.evaluation import error_headline
from ..engine.records import Record
from ..errors import ConfigError
from ..space import Categorical, Float, Int
from .pbt_report import is_pbt
from .result import Result

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
_JOURNAL_SUFFIXES = (".log", ".journal")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def format_for(path: Path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else the one the file extension names.

    Raises:
        ConfigError: the extension names no format and none was given.
    """
    if fmt is not None:
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        accepted = ", ".join(FORMATS)
        raise ConfigError(
            f"cannot tell the format of {str(path)!r} from its extension; use one of {accepted} "
            "or pass --format csv|jsonl"
        ) from None


def export(result: Result, path: Path, fmt: str) -> int:
    """Write every evaluation of ``result`` to ``path`` as ``fmt`` (csv or jsonl).

    Returns:
        The number of rows written.

    Raises:
        ConfigError: ``path`` cannot be written.
    """
    write = _write_csv if fmt == "csv" else _write_jsonl
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            write(result, f)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror}") from None
    return len(result)


def columns(result: Result) -> list[str]:
    """CSV columns: record fields (with PBT, ``parent`` and ``member`` too), ``param.<name>``
    per parameter, ``metric.<name>`` per metric."""
    metrics = dict.fromkeys(k for r in result.records for k in r.metrics)
    return [
        *_RECORD_COLUMNS,
        *(_LINEAGE_COLUMNS if is_pbt(result) else ()),
        *(f"param.{name}" for name in result.space.params),
        *(f"metric.{name}" for name in metrics),
    ]


def _write_csv(result: Result, f: Any) -> None:
    header = columns(result)
    writer = csv.DictWriter(f, fieldnames=header, restval="")
    writer.writeheader()
    lineage = is_pbt(result)
    for record in result.records:
        row = _fields(record, lineage)
        row["value"] = "" if math.isnan(record.value) else record.value
        row["error"] = error_headline(record.error)
        row.update({f"param.{k}": v for k, v in record.params.items()})
        row.update({f"metric.{k}": v for k, v in record.metrics.items()})
        writer.writerow(row)


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


# --- Optuna -------------------------------------------------------------------------------------
def to_optuna(result: Result, storage: str, study_name: str, overwrite: bool, origin: float) -> Any:
    """Copy every evaluation of ``result`` into a new Optuna study.

    Args:
        result: the run.
        storage: an SQLAlchemy URL (``sqlite:///study.db``), an SQLite file (``.db``), or a
            journal file (``.log``/``.journal``).
        study_name: name of the study to create.
        overwrite: delete an existing study of that name first.
        origin: epoch seconds at which the run started (record times are relative to it).

    Returns:
        The new ``optuna.Study``.

    Raises:
        ConfigError: Optuna is missing, the storage is not understood, or the study exists.
    """
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "exporting to Optuna needs optuna: pip install 'propagate[optuna]'"
        ) from None
    backend = open_storage(storage)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" chatter
    try:
        if study_name in optuna.get_all_study_names(backend):
            if not overwrite:
                raise ConfigError(
                    f"{storage} already holds a study named {study_name!r}; pass --overwrite "
                    "to replace it or --study to choose another name"
                )
            optuna.delete_study(study_name=study_name, storage=backend)
        study = optuna.create_study(
            storage=backend, study_name=study_name, directions=list(result.directions)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(result.objectives))
        study.set_user_attr("propagate_seed", result.info.seed)
        distributions = _distributions(result.space)
        study.add_trials([_trial(r, distributions, origin) for r in result.records])
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


def open_storage(spec: str) -> Any:
    """An Optuna storage from a database URL, an SQLite file or a journal file."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = Path(spec)
    if "://" in spec:
        url = spec
    elif path.suffix.lower() in _SQLITE_SUFFIXES:
        url = f"sqlite:///{path.resolve()}"
    elif path.suffix.lower() in _JOURNAL_SUFFIXES:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    else:
        raise ConfigError(
            f"cannot tell the Optuna storage {spec!r}: give a database URL such as "
            f"sqlite:///study.db, an SQLite file ({', '.join(_SQLITE_SUFFIXES)}), or a journal "
            f"file ({', '.join(_JOURNAL_SUFFIXES)})"
        )
    try:
        return optuna.storages.RDBStorage(url)
    except (ImportError, ValueError) as exc:  # bad URL or missing database driver
        raise ConfigError(f"cannot open the Optuna storage {spec!r}: {exc}") from None


def _distributions(space: Any) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in space.params.items():
        if isinstance(p, Float):
            out[name] = FloatDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, Int):
            out[name] = IntDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, Categorical):
            out[name] = CategoricalDistribution(p.choices)
    return out


def _trial(record: Record, distributions: dict[str, Any], origin: float) -> Any:
    from optuna.trial import TrialState, create_trial

    state = {"ok": TrialState.COMPLETE, "failed": TrialState.FAIL}.get(
        record.status, TrialState.PRUNED
    )
    params = {k: v for k, v in record.params.items() if k in distributions}
    user_attrs: dict[str, Any] = {
        "id": record.id,
        "island": record.island,
        "worker": record.worker,
        "generation": record.generation,
        "metrics": record.metrics,
    }
    constants = {k: v for k, v in record.params.items() if k not in distributions}
    if constants:  # Optuna params need a distribution; constants have none
        user_attrs["constants"] = constants
    if record.error:
        user_attrs["error"] = error_headline(record.error)
    trial = create_trial(
        state=state,
        values=list(record.values) if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: distributions[k] for k in params},
        user_attrs=user_attrs,
        intermediate_values=dict(record.intermediate),
    )
    # real times, so that Optuna's timeline and durations show when each evaluation ran
    trial.datetime_start = datetime.datetime.fromtimestamp(origin + record.start)
    trial.datetime_complete = datetime.datetime.fromtimestamp(origin + record.end)
    return trial
