"""The engine's side of a :class:`Study`: the search, in a thread of its own."""

from __future__ import annotations

import threading
from typing import Any

from ..api import Prepared, run_prepared
from ..engine.callbacks import Callback
from ..engine.evaluation import Trial
from ..engine.signals import StopOnSignal
from .trial import StudyTrial
from .turns import Left, Message, Turns

_NAME = "pg.Study"  # the objective's name in a run store's configuration (resumes compare it)


class SearchThread:
    """Runs a prepared search in a daemon thread, once the user's side first hands it the
    turn. Its objective hands each candidate to the user's thread and returns (or raises)
    what it is told; the search's result or error is its last message.

    Args:
        prepared: the search.
        turns: the turns it shares with the user's thread.
        signals: the stop signals' flag (a study with a run store, on the main thread).
        callbacks: called on rank 0 with each stored record (see :func:`propagator.search`).
    """

    def __init__(
        self,
        prepared: Prepared,
        turns: Turns,
        signals: StopOnSignal | None,
        callbacks: tuple[Callback, ...] = (),
    ) -> None:
        self.left = False  # the with block has ended: stop, and take no more candidates
        self._prepared = prepared
        self._turns = turns
        self._signals = signals
        self._callbacks = callbacks
        self._thread = threading.Thread(target=self._run, name="propagate-study", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread, after its last message."""
        self._thread.join()

    def _run(self) -> None:
        self._turns.await_turn()  # the first ask, or the end of the with block
        try:
            result = run_prepared(
                self._objective,
                self._prepared,
                name=_NAME,
                caller="pg.Study",
                should_stop=self._should_stop,
                callbacks=self._callbacks,
            )
            last: Message = ("done", result)
        except BaseException as exc:  # every error reaches the user's thread
            last = ("error", exc)
        self._turns.last(last)

    def _objective(self, params: dict[str, Any], trial: Trial) -> Any:
        if self.left:
            raise Left
        answer = self._turns.to_user(("trial", StudyTrial(params, trial)))
        if answer is None:  # an interrupt in ask took the trial from the user's hands
            raise Left
        kind, value = answer
        if kind == "raise":
            raise value
        return value

    def _should_stop(self) -> bool:
        return self.left or (self._signals is not None and self._signals())
