"""Stop cleanly on SIGTERM, SIGINT and SIGUSR1 (SLURM's warning before the time limit)."""

from __future__ import annotations

import signal
import time
from types import FrameType

SIGNALS = tuple(
    s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", None)) if s is not None
)
_SAME_STOP = 2.0  # seconds: a terminal and mpiexec both deliver one Ctrl-C to each rank


class StopOnSignal:
    """Callable flag for the engine's ``should_stop``: true once a stop signal arrived.

    The first signal only sets the flag, so every rank finishes its evaluation in flight and
    the store is complete. The same signal again within 2 s is the same stop delivered twice;
    later, it acts as it would without propagate (a second Ctrl-C interrupts at once).

    A signal that is ignored when the search starts stays ignored, as Python itself leaves
    SIGINT alone when it starts with SIGINT ignored: a job started under ``nohup`` or in the
    background of a script (both ignore SIGINT) is not stopped by a Ctrl-C meant for something
    else; SIGTERM and SIGUSR1 still stop it.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._at = 0.0
        self._previous = {
            s: signal.signal(s, self._handle)
            for s in SIGNALS
            if signal.getsignal(s) is not signal.SIG_IGN
        }

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.received is None:
            self.received, self._at = signal.Signals(signum).name, now
        elif now - self._at > _SAME_STOP:
            signal.signal(signum, self._previous[signum])
            signal.raise_signal(signum)

    def __call__(self) -> bool:
        return self.received is not None

    @property
    def handled(self) -> tuple[signal.Signals, ...]:
        """The signals that stop the search (those not ignored when it started)."""
        return tuple(signal.Signals(s) for s in self._previous)

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
