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
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._at = 0.0
        self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.received is None:
            self.received, self._at = signal.Signals(signum).name, now
        elif now - self._at > _SAME_STOP:
            signal.signal(signum, self._previous[signum])
            signal.raise_signal(signum)

    def __call__(self) -> bool:
        return self.received is not None

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
