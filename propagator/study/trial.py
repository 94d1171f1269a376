"""The trial :meth:`Study.ask` hands out."""

from __future__ import annotations

from typing import Any

from ..engine.evaluation import Trial


class StudyTrial:
    """A trial from :meth:`Study.ask`: its ``params``, and everything a
    :class:`~propagator.Trial` has (``id``, ``comm``, ``seed``, ``repeat``, ``report``,
    ``should_stop``, ``paused``, ``save``, ``restore``, ...)."""

    __slots__ = ("_told", "_trial", "params")

    def __init__(self, params: dict[str, Any], trial: Trial) -> None:
        self.params = params
        self._trial = trial
        self._told = False

    def report(self, step: int, value: float) -> None:
        """Record an intermediate value (see :meth:`Trial.report`), before the trial is told."""
        self._open("report")
        self._trial.report(step, value)

    def should_stop(self) -> bool:
        """Whether to stop the training now (see :meth:`Trial.should_stop`) and tell what it
        has (``study.tell(trial)`` tells its last reported value)."""
        self._open("should_stop")
        return self._trial.should_stop()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not a Trial's; and _trial itself before __init__ (copies)
            raise AttributeError(name)
        return getattr(self._trial, name)

    def __repr__(self) -> str:
        return f"StudyTrial(id={self._trial.id}, params={self.params!r})"

    def _open(self, what: str) -> None:
        if self._told:
            raise RuntimeError(f"trial {self._trial.id} was told already: call {what} before tell")
