"""The :class:`Study`: the user's side of the turns."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mpi4py import MPI

from ..api import prepare
from ..engine.callbacks import Callback, check_callbacks
from ..engine.signals import StopOnSignal
from ..errors import ConfigError
from ..results.result import Result
from ..space import Space
from .search_thread import SearchThread
from .trial import StudyTrial
from .turns import Left, Message, Turns


class Study:
    """Ask/tell over an asynchronous island search, for a training loop the user owns.

    Every rank of ``comm`` makes the same :class:`Study` and runs the same loop (SPMD, as
    :func:`propagator.search`)::

        with pg.Study(space, budget=50, run_dir="runs/x", islands=2) as study:
            while (trial := study.ask()) is not None:
                for epoch in range(1, 11):
                    loss = train_one_epoch(trial.params)
                    trial.report(epoch, loss)
                    if trial.should_stop():
                        break
                study.tell(trial, loss)
        result = study.result

    The search is :func:`propagator.search`'s, with its workers, islands, budget, run store,
    resume, de-duplication, early stopping and failures: each worker's trials come from its
    island's strategy, and every rank of a multi-rank worker gets the same trial (same
    ``id`` and ``params``; ``trial.comm`` is the worker's communicator) and tells it too (the
    worker's first rank's value counts).

    The search runs only inside :meth:`ask` (in a second thread, while the caller's waits):
    the value told reaches it at the next ``ask``, which records it (and stores it, with a
    ``run_dir``; so does the end of the ``with`` block). Between two asks a
    rank's code may use MPI freely (``trial.comm`` collectives are fine; collectives over
    several workers are not, as the workers are not in step). A trial's end time is taken at
    that next ``ask``. MPI must be initialised with ``MPI_THREAD_SERIALIZED`` or more (mpi4py
    asks for ``MPI_THREAD_MULTIPLE`` by default).

    Leaving the ``with`` block before :meth:`ask` returned ``None`` (``break``, ``return``,
    an exception) stops the whole search, and waits for its end: every other worker finishes
    the trial it holds (and, with trials of a fraction of a second, the few whose ids it had
    claimed), then its ``ask`` returns ``None``. A trial told is recorded; one asked
    and not told is recorded as failed with the exception that left the block (which is then
    raised), or, left without an exception or by ``KeyboardInterrupt``, not recorded (as an
    evaluation interrupted by Ctrl-C). The ranks of a worker must leave together: one that
    stays may wait forever in its trial's collectives for one that left.

    With a ``run_dir``, SIGTERM, SIGINT and SIGUSR1 stop the search cleanly (in a study made
    on the main thread): each worker finishes and tells its trial, then ``ask`` returns
    ``None``; running the script again resumes. Without one, Ctrl-C raises
    ``KeyboardInterrupt`` in the loop, and the search stops as above.

    Args:
        space: the search space (see :func:`propagator.search`).
        callbacks: called on rank 0 as ``callback(record)`` with each stored evaluation
            (live with a ``run_dir``, else when the search ends; see :func:`propagator.search`).
        **options: the keyword arguments of :func:`propagator.search` (``budget`` is
            required; ``run_dir``, ``fresh`` and ``comm`` too).

    Raises:
        ConfigError: an argument is invalid, or the MPI library's thread support is below
            ``MPI_THREAD_SERIALIZED``.
        SpaceError: the space is invalid.
    """

    def __init__(
        self,
        space: Space | Mapping[str, Any],
        callbacks: Sequence[Callback] | None = None,
        **options: Any,
    ) -> None:
        self._callbacks = check_callbacks(callbacks)
        self._prepared = prepare(space, **options)
        _check_thread_level()
        self._turns = Turns()
        self._search: SearchThread | None = None
        self._signals: StopOnSignal | None = None
        self._in_hand: StudyTrial | None = None  # asked, not told
        self._told: Message | None = None  # the answer for the engine's next turn
        self._ended: Message | None = None  # ("done", result) or ("error", exception)
        self._raised = False  # the error was raised from ask

    def __enter__(self) -> Study:
        if self._search is not None:
            raise RuntimeError("a Study runs once; make another (the same run_dir resumes)")
        if self._prepared.run_dir is not None and _on_main_thread():
            self._signals = StopOnSignal()  # only the main thread may install handlers
        self._search = SearchThread(self._prepared, self._turns, self._signals, self._callbacks)
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        try:
            self._leave(exc)
        finally:
            if self._signals is not None:
                self._signals.restore()
        if exc is not None:
            exc.with_traceback(tb)  # the engine's thread raised it too, adding its frames
        elif self._ended is not None and self._ended[0] == "error" and not self._raised:
            raise self._ended[1]

    def ask(self) -> StudyTrial | None:
        """The next trial of this rank's worker, or ``None`` when the search is over (its
        budget is spent, its space exhausted, or it was stopped). Records the trial told
        before (collective over the worker's ranks, as evaluations are).

        Raises:
            RuntimeError: the trial asked before is not told yet, or the study is not in a
                ``with`` block.
            ConfigError: the run directory is in use or holds another search (first ask).
            ObjectiveError: no evaluation succeeded, or the first ones all failed.
        """
        self._check_open()
        if self._in_hand is not None:
            raise RuntimeError(
                f"trial {self._in_hand.id} was asked and not told: call study.tell(trial, "
                "value) (or study.tell(trial, error=exception)) before asking again"
            )
        if self._ended is None:
            self._turns.give(self._told)
            self._told = None
            message = self._turns.take()
            if message[0] == "trial":
                self._in_hand = message[1]
                return self._in_hand
            self._ended = message
        if self._ended[0] == "error":
            self._raised = True
            raise self._ended[1]
        return None

    def tell(
        self, trial: StudyTrial, value: Any = None, *, error: BaseException | None = None
    ) -> None:
        """Give the trial's outcome (on every rank of its worker; the first rank's counts).

        Args:
            trial: the trial from the last :meth:`ask`.
            value: a float, a dict of metrics holding the search's ``metric``, or with
                several metrics a list of their values; NaN and inf are failures. May be left
                out for a trial that ``should_stop()`` stopped: its last report counts.
            error: the exception that failed the trial: recorded as a failure with its
                traceback (``pg.Pruned()`` records it as stopped early instead).

        Raises:
            ValueError: ``trial`` is not the one asked last, or was told already; both or
                neither of ``value`` and ``error`` given.
        """
        self._check_open()
        if trial is not self._in_hand:
            told = isinstance(trial, StudyTrial) and trial._told
            raise ValueError(
                f"{trial!r} was told already" if told else f"{trial!r} is not the trial asked last"
            )
        if value is not None and error is not None:
            raise ValueError("tell a value or an error, not both")
        if value is None and error is None and trial.stopped is None:
            raise ValueError(
                f"tell trial {trial.id} its value (a float, or a dict of metrics), or "
                "error=exception; only a trial stopped by should_stop() may be told without one"
            )
        trial._told, self._in_hand = True, None
        self._told = ("value", value) if error is None else ("raise", error)

    @property
    def result(self) -> Result:
        """The search's :class:`Result` (as :func:`propagator.search` returns it), once
        :meth:`ask` has returned ``None`` or the ``with`` block has ended.

        Raises:
            RuntimeError: the search is still running, or ended with an error.
        """
        if self._ended is None or self._ended[0] != "done":
            state = "is still running" if self._ended is None else "ended with an error"
            raise RuntimeError(f"the study {state}: it has no result")
        return self._ended[1]

    # --- the user's thread -------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._search is None or self._search.left:
            raise RuntimeError(
                "use a Study in a with block (`with pg.Study(...) as study:`), and only there"
            )

    def _leave(self, exc: BaseException | None) -> None:
        """End the search from this rank (see the class docstring) and wait for its end."""
        if self._search is None or self._search.left:
            return
        self._search.left = True  # before the engine's turn: it reads it then
        if self._ended is None:
            if not self._turns.engine_has_it:  # else an interrupt came while ask waited
                self._turns.give(self._parting(exc))
            while (message := self._turns.take())[0] == "trial":
                message[1]._told = True
                self._turns.give(("raise", Left()))
            self._ended = message
        self._search.join()

    def _parting(self, exc: BaseException | None) -> Message | None:
        """The answer for the trial in hand when the with block ends."""
        trial, self._in_hand = self._in_hand, None
        if trial is None:
            return self._told
        trial._told = True
        return ("raise", exc if isinstance(exc, Exception) else Left())


def _check_thread_level() -> None:
    provided = MPI.Query_thread()
    if provided < MPI.THREAD_SERIALIZED:
        names = {MPI.THREAD_SINGLE: "MPI_THREAD_SINGLE", MPI.THREAD_FUNNELED: "MPI_THREAD_FUNNELED"}
        raise ConfigError(
            "pg.Study runs the search in a second thread, which needs MPI initialised with "
            f"MPI_THREAD_SERIALIZED or more; this MPI gives {names.get(provided, provided)}. "
            "Leave mpi4py.rc.thread_level at its default ('multiple'), or use pg.search"
        )


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
