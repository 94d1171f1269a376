"""A run directory as a read-only Optuna storage of one study, which follows a running search.

What ``propagate dashboard`` serves to ``optuna-dashboard``. The run is read as ``propagate
watch`` reads it (:func:`.report.open_run`: never blocking or changing the search, nothing
unpickled or executed); at most every ``refresh`` seconds, when the dashboard asks for the
trials, the run is read again and only its new records are converted (with the conversion
of ``propagate optuna``, :func:`.optuna_study.frozen_trial`). Every write is refused.

Trial numbers follow the records' arrival: the records already stored when the storage is
made in id order, then each refresh's new ones in id order. optuna-dashboard keeps the
trials it has fetched up to the first unfinished one and asks only for those after it, so a
trial's content changes only while it is unfinished: a paused training (stopped at a rung,
its training saved) is WAITING while the search runs, since it may be resumed (its record is
then replaced, as in :attr:`Result.records`), and PRUNED once the search is over.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy  # what get_all_studies returns; not exported
from optuna.trial import FrozenTrial, TrialState

from ..engine.records import Status
from ..errors import PropagateError
from .optuna_study import distributions, frozen_trial, study_attrs
from .report import Run, open_run
from .watch import running

STUDY_ID = 0


class ReadOnlyError(PropagateError):
    """A write into the run's study: the dashboard only reads the run directory."""

    def __init__(self) -> None:
        super().__init__("propagate dashboard only reads the run: its study cannot be changed")


class RunTrials:
    """A run's records as Optuna trials, kept up to date record by record.

    Args:
        run: the run as read first.
    """

    def __init__(self, run: Run) -> None:
        self.trials: list[FrozenTrial] = []
        self._space = distributions(run.result.space)
        self._origin = run.origin
        self._number: dict[int, int] = {}  # record id -> trial number
        self._seen: dict[int, tuple[float, bool]] = {}  # record id -> (end, shown as WAITING)
        self.update(run)

    def update(self, run: Run) -> int:
        """Convert the records of ``run`` that are new, or changed since the last update (a
        paused training resumed, or the search over); returns how many were converted."""
        result = run.result
        live = running(run)
        waiting = live & (result.rows["status"] == Status.PAUSED)
        keys = zip(
            result.rows["id"].tolist(), result.rows["end"].tolist(), waiting.tolist(), strict=True
        )
        changed = [
            i for i, (rid, end, wait) in enumerate(keys) if self._seen.get(rid) != (end, wait)
        ]
        paused = TrialState.WAITING if live else TrialState.PRUNED
        records = result.records if changed else []
        for i in changed:
            record = records[i]
            number = self._number.setdefault(record.id, len(self.trials))
            trial = frozen_trial(record, number, self._space, self._origin, paused)
            if number == len(self.trials):
                self.trials.append(trial)
            else:  # replaced, never changed: a reader may hold the old trial
                self.trials[number] = trial
            self._seen[record.id] = (float(result.rows["end"][i]), bool(waiting[i]))
        return len(changed)


class RunStorage(BaseStorage):
    """The run in ``run_dir`` as an Optuna storage holding one study (id 0, named after the
    run directory), read again at most every ``refresh`` seconds (default 2) when trials
    are asked for. Thread-safe; every write raises :class:`ReadOnlyError`.

    Raises:
        ConfigError: ``run_dir`` is missing or holds no run.
        PropagateError: the run cannot be read.
    """

    def __init__(
        self, run_dir: Path, refresh: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        run = open_run(Path(run_dir))
        self.run_dir = run.path
        self._refresh, self._clock = refresh, clock
        self._lock = threading.Lock()
        self._next = clock() + refresh
        user, system = study_attrs(run.result)
        self._study = FrozenStudy(
            study_name=run.path.resolve().name,
            direction=None,
            directions=[StudyDirection[d.upper()] for d in run.result.directions],
            user_attrs=user,
            system_attrs=system,
            study_id=STUDY_ID,
        )
        self._trials = RunTrials(run)

    # --- reading ---------------------------------------------------------------------------
    def get_all_studies(self) -> list[FrozenStudy]:
        return [copy.deepcopy(self._study)]

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name != self._study.study_name:
            raise KeyError(
                f"no study named {study_name!r}; this run's is {self._study.study_name!r}"
            )
        return STUDY_ID

    def get_study_name_from_id(self, study_id: int) -> str:
        self._check(study_id)
        return self._study.study_name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        self._check(study_id)
        return list(self._study.directions)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        self._check(study_id)
        return copy.deepcopy(self._study.user_attrs)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        self._check(study_id)
        return copy.deepcopy(self._study.system_attrs)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        self._check(study_id)
        trials = self._current()
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trials = self._current()
        if not 0 <= trial_id < len(trials):
            raise KeyError(f"no trial {trial_id} in this run (it has {len(trials)})")
        return copy.deepcopy(trials[trial_id])

    def _current(self) -> list[FrozenTrial]:
        """The trials, the run read again first if ``refresh`` seconds have passed."""
        with self._lock:
            if self._clock() >= self._next:
                # a file caught in the middle of an update: the next refresh reads it
                with contextlib.suppress(PropagateError):
                    self._trials.update(open_run(self.run_dir))
                self._next = self._clock() + self._refresh
            return list(self._trials.trials)  # a snapshot: later updates replace, not change

    def _check(self, study_id: int) -> None:
        if study_id != STUDY_ID:
            raise KeyError(f"no study {study_id}; this run's study has id {STUDY_ID}")

    # --- writing: refused ------------------------------------------------------------------
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        raise ReadOnlyError

    def delete_study(self, study_id: int) -> None:
        raise ReadOnlyError

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        raise ReadOnlyError

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        raise ReadOnlyError

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        raise ReadOnlyError

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        raise ReadOnlyError

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        raise ReadOnlyError

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        raise ReadOnlyError

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise ReadOnlyError

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise ReadOnlyError
