"""``propagate optuna``: a run copied into a new Optuna study (a database or a journal file).

Optuna's public ``Study.add_trials`` costs some 27 queries and a commit per trial on a
database (11 ms a trial on SQLite here, 30 to 190 s for 2,674 evaluations; the time is the
ORM's, not the disk's: ``PRAGMA synchronous=OFF`` changed nothing). So into a database the
trials are written in bulk instead: the study itself is made through Optuna's API, then the
rows of every trial are inserted in one transaction, into the tables of the schema Optuna
created them with (``optuna.storages._rdb.models``), 500 trials at a time so that progress
can be shown. Into a journal file trials go through ``add_trials`` (one write and fsync a
trial). The study returned is opened with ``optuna.load_study``, which reads no trial yet."""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError
from .optuna_study import METRIC_NAMES_ATTR, distributions, frozen_trial, study_attrs
from .result import Result

_JOURNAL_SUFFIXES = (".log", ".journal")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_BATCH = 500  # trials converted and written at a time (a progress update each)
_PROGRESS_EVERY = 1.0  # seconds between progress lines


def to_optuna(
    result: Result,
    storage: str,
    study_name: str,
    overwrite: bool,
    origin: float,
    progress: TextIO | None = None,
) -> Any:
    """Copy every evaluation of ``result`` into a new Optuna study.

    Args:
        result: the run.
        storage: an SQLAlchemy URL (``sqlite:///study.db``), an SQLite file (``.db``), or a
            journal file (``.log``/``.journal``).
        study_name: name of the study to create.
        overwrite: delete an existing study of that name first.
        origin: epoch seconds at which the run started (record times are relative to it).
        progress: where a copy that takes over a second says how far it is, once a second
            (default: stderr).

    Returns:
        The new ``optuna.Study``, as ``optuna.load_study`` reads it.

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
        study = _new_study(optuna, backend, storage, study_name, overwrite, result)
        space, records = distributions(result.space), result.records
        ticker = Ticker(len(records), progress or sys.stderr)
        with _writer(optuna, backend, study) as write:
            for start in range(0, len(records), _BATCH):
                batch = records[start : start + _BATCH]
                write([frozen_trial(r, start + i, space, origin) for i, r in enumerate(batch)])
                ticker.update(start + len(batch))
        ticker.close()
        return optuna.load_study(study_name=study_name, storage=backend)
    finally:
        optuna.logging.set_verbosity(verbosity)


def open_storage(spec: str) -> Any:
    """An Optuna storage from a database URL, an SQLite file or a journal file.

    Raises:
        ConfigError: ``spec`` names no storage this understands, or it cannot be opened.
    """
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


def _new_study(
    optuna: Any, backend: Any, storage: str, name: str, overwrite: bool, result: Result
) -> Any:
    """An empty study ``name`` for ``result`` (its directions, metric names and seed)."""
    if name in optuna.get_all_study_names(backend):
        if not overwrite:
            raise ConfigError(
                f"{storage} already holds a study named {name!r}; pass --overwrite "
                "to replace it or --study to choose another name"
            )
        optuna.delete_study(study_name=name, storage=backend)
    study = optuna.create_study(
        storage=backend, study_name=name, directions=list(result.directions)
    )
    user, system = study_attrs(result)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(system[METRIC_NAMES_ATTR])
    for key, value in user.items():
        study.set_user_attr(key, value)
    return study


@contextlib.contextmanager
def _writer(optuna: Any, backend: Any, study: Any) -> Iterator[Callable[[list[Any]], None]]:
    """A function that adds a batch of trials to the empty ``study``: in bulk, in one
    transaction that ends with the block, into a database; through ``add_trials`` else."""
    if not isinstance(backend, optuna.storages.RDBStorage):
        yield study.add_trials
        return
    with backend.engine.begin() as db:
        yield lambda trials: _insert(db, study._study_id, trials)


def _insert(db: Any, study_id: int, trials: Sequence[Any]) -> None:
    """Insert ``trials`` into the study ``study_id`` of an Optuna database (``db``: a
    connection) as Optuna's own ``create_new_trial`` stores them."""
    from optuna.storages._rdb import models  # private, but the schema of these very tables
    from sqlalchemy import insert, select

    table = models.TrialModel.__table__
    db.execute(insert(table), [_trial_row(study_id, t) for t in trials])
    numbers = [t.number for t in trials]
    query = select(table.c.number, table.c.trial_id).where(
        (table.c.study_id == study_id) & table.c.number.between(min(numbers), max(numbers))
    )
    ids = dict(db.execute(query).all())
    for model, rows in _child_rows(models, trials, ids).items():
        if rows:
            db.execute(insert(model.__table__), rows)


def _trial_row(study_id: int, trial: Any) -> dict[str, Any]:
    return {
        "study_id": study_id,
        "number": trial.number,
        "state": trial.state,
        "datetime_start": _utc(trial.datetime_start),
        "datetime_complete": _utc(trial.datetime_complete),
    }


def _utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    """A naive local time as the naive UTC time Optuna's database tables hold."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _child_rows(models: Any, trials: Sequence[Any], ids: dict[int, int]) -> dict[Any, list]:
    """The params, values, intermediate values and user attributes of ``trials`` as rows of
    their tables (``ids``: trial number -> trial id)."""
    from optuna.distributions import distribution_to_json

    value_repr = models.TrialValueModel.value_to_stored_repr
    step_repr = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
    out: dict[Any, list] = {
        models.TrialParamModel: [],
        models.TrialValueModel: [],
        models.TrialIntermediateValueModel: [],
        models.TrialUserAttributeModel: [],
    }
    for trial in trials:
        trial_id = ids[trial.number]
        for name, value in trial.params.items():
            dist = trial.distributions[name]
            out[models.TrialParamModel].append(
                {
                    "trial_id": trial_id,
                    "param_name": name,
                    "param_value": dist.to_internal_repr(value),
                    "distribution_json": distribution_to_json(dist),
                }
            )
        for objective, value in enumerate(trial.values or ()):
            stored, kind = value_repr(value)
            out[models.TrialValueModel].append(
                {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind}
            )
        for step, value in trial.intermediate_values.items():
            stored, kind = step_repr(value)
            out[models.TrialIntermediateValueModel].append(
                {
                    "trial_id": trial_id,
                    "step": step,
                    "intermediate_value": stored,
                    "intermediate_value_type": kind,
                }
            )
        for key, value in trial.user_attrs.items():
            out[models.TrialUserAttributeModel].append(
                {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            )
    return out


class Ticker:
    """Says on ``stream`` how many of ``total`` evaluations are copied, at most once every
    ``every`` seconds and only once the copy has taken that long (a quick one says
    nothing).

    Args:
        total: evaluations to copy.
        stream: where the lines go.
        every: seconds between lines (default 1).
    """

    def __init__(self, total: int, stream: TextIO, every: float = _PROGRESS_EVERY) -> None:
        self._total, self._stream, self._every = total, stream, every
        self._next = time.monotonic() + every
        self._shown = False

    def update(self, done: int) -> None:
        """``done`` evaluations are copied so far."""
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every
            self._line(done)

    def close(self) -> None:
        """The copy is done: a shown count ends at the total."""
        if self._shown:
            self._line(self._total)

    def _line(self, done: int) -> None:
        self._shown = True
        print(
            f"copied {done:,} of {self._total:,} evaluations into the study",
            file=self._stream,
            flush=True,
        )
