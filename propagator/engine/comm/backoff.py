"""Polling without spinning: MPICH's blocking calls busy-wait, which starves the other ranks
of an oversubscribed node, so every wait in the engine polls with an exponential sleep."""

from __future__ import annotations

import time
from typing import Any

# Polling cap for collectives where every rank is idle (start and end of a search): each
# round of the collective waits for the slowest rank's next poll, and nobody computes.
IDLE_CAP = 0.0002


class Backoff:
    """Sleep a little longer after each idle poll, up to ``cap`` seconds; reset on work."""

    def __init__(self, cap: float = 0.002, first: float = 1e-5) -> None:
        self._cap = cap
        self._first = first
        self._delay = 0.0

    def reset(self) -> None:
        self._delay = 0.0

    def sleep(self) -> None:
        time.sleep(self._delay)
        self._delay = min(self._cap, max(self._first, 2.0 * self._delay))


def wait(request: Any, cap: float = 0.002) -> None:
    """Complete an MPI request by polling ``Test`` with backoff."""
    backoff = Backoff(cap)
    while not request.Test():
        backoff.sleep()


def barrier(comm: Any, cap: float = 0.002) -> None:
    """A barrier that does not burn CPU while waiting (``Ibarrier`` plus backoff)."""
    wait(comm.Ibarrier(), cap)
