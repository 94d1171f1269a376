"""The search's ``callbacks=``: user functions called on rank 0 with each stored record.

Every rank evaluates, and rank 0 does not receive the other workers' records while the search
runs. So, with a run directory, rank 0 follows the run store instead (a :class:`Following`
thread reading every worker's journal, :class:`propagator.store.tail.RunTail`) and calls the
callbacks with each record as it appears there, about every half second, then once more when
the search has ended, so that none is missed. Without a run directory, there is nothing to
follow: the callbacks get the result's records when the search ends.

A callback that raises is reported (once per callback and kind of error, with the traceback
in the ``propagate`` log) and is still called with the later records; nothing it does can
lose a record from the store or the result.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .records import Record

Callback = Callable[[Record], Any]
INTERVAL = 0.5  # seconds between two reads of the run store
_log = logging.getLogger("propagate")


def check_callbacks(callbacks: Sequence[Callback] | None) -> tuple[Callback, ...]:
    """``callbacks`` as a tuple (``None``: none).

    Raises:
        ConfigError: ``callbacks`` is not a list of callables.
    """
    if callbacks is None:
        return ()
    if callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise ConfigError(f"callbacks must be a list of callables, e.g. [{_name(callbacks)}]")
    listed = tuple(callbacks)
    wrong = [c for c in listed if not callable(c)]
    if wrong:
        raise ConfigError(f"callbacks must be callables; {wrong[0]!r} is not")
    return listed


class Callbacks:
    """Calls each callback with each record, in order; a callback that raises is reported
    and called again with the next record."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self._callbacks = tuple(callbacks)
        self._seen: set[tuple[int, str]] = set()  # (callback, kind of error) reported

    def __call__(self, records: Iterable[Record]) -> None:
        for record in records:
            for i, callback in enumerate(self._callbacks):
                try:
                    callback(record)
                except Exception as exc:  # the user's code: reported, never fatal
                    self._report(i, callback, record, exc)

    def _report(self, i: int, callback: Callback, record: Record, exc: Exception) -> None:
        kind = type(exc).__qualname__
        if (i, kind) in self._seen:
            return
        self._seen.add((i, kind))
        what = f"callback {_name(callback)} raised {kind} on record {record.id}"
        later = "it is still called with later records; this kind of error is reported once"
        _log.warning("%s (%s)", what, later, exc_info=exc)
        log = _log_file()
        if log is not None:  # the log holds the traceback; say so where the user looks
            sys.stderr.write(f"propagate: warning: {what}: {exc} ({later}; see {log})\n")
            sys.stderr.flush()


class Following:
    """A thread that calls ``callbacks`` with each record stored in ``run_dir`` from now on,
    every ``interval`` seconds, until :meth:`stop`.

    Make it before the search starts writing (what is stored already is skipped).
    """

    def __init__(
        self, run_dir: Path, callbacks: Sequence[Callback], interval: float = INTERVAL
    ) -> None:
        from ..store.tail import RunTail  # h5py only where there is a store

        self._call = Callbacks(callbacks)
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="propagate-callbacks", daemon=True)
        try:
            self._tail = RunTail(run_dir)
        except Exception as exc:  # raised here, it would leave the other ranks waiting
            _log.warning("callbacks: cannot follow %s", run_dir, exc_info=exc)
            sys.stderr.write(f"propagate: warning: the callbacks will not be called: {exc}\n")
            return
        self._thread.start()

    def stop(self) -> None:
        """Call the callbacks with the records stored since the last read, then end the
        thread. Call it once every worker has finished writing."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval):
            self._pass()
        self._pass()  # the last records, stored since the last read

    def _pass(self) -> None:
        try:  # a journal that cannot be read now is read from the same place next time
            records = self._tail.read()
        except Exception as exc:  # the thread goes on: the next read may succeed
            _log.warning("callbacks: reading the run store failed", exc_info=exc)
            return
        self._call(records)


def _log_file() -> str | None:
    """The file the ``propagate`` logger writes to (a search with a run directory), if any."""
    files = [h for h in _log.handlers if isinstance(h, logging.FileHandler)]
    return files[0].baseFilename if files else None


def _name(callback: Any) -> str:
    return getattr(callback, "__qualname__", type(callback).__qualname__)
