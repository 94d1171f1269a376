"""Stop cleanly on SIGTERM, SIGINT and SIGUSR1 (SLURM's warning before the time limit)."""

from __future__ import annotations

import signal
from types import FrameType

SIGNALS = tuple(
    s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", None)) if s is not None
)


class StopOnSignal:
    """Callable flag for the engine's ``should_stop``: true once a stop signal arrived.

    The first signal only sets the flag, so every rank finishes its evaluation in flight and
    the store is complete; the handler then steps aside, so a second signal acts as usual.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        signal.signal(signum, self._previous[signum])

    def __call__(self) -> bool:
        return self.received is not None

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
