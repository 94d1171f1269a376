"""Rank 0's view of a running search: a live bar on a terminal, periodic lines otherwise."""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import TextIO

from tqdm import tqdm

_log = logging.getLogger("propagate")


class ProgressMonitor:
    """Shows evaluations/budget, best value, evaluations per second, failures, elapsed and
    remaining time. Implements the engine's ``Monitor`` protocol.

    Args:
        total: the run's evaluation budget (``None``: time budget only).
        done_before: evaluations of earlier sessions.
        time_left: seconds this session may run (``None``: no time budget).
        metric: name of the optimized value.
        sign: +1 when minimising, -1 when maximising (turns losses back into values).
        stream: where to write (default stderr).
        interval: seconds between plain lines when ``stream`` is not a terminal.
    """

    def __init__(
        self,
        total: int | None,
        done_before: int,
        time_left: float | None,
        metric: str,
        sign: float,
        stream: TextIO | None = None,
        interval: float = 10.0,
    ) -> None:
        self._stream = stream or sys.stderr
        self._total, self._before = total, done_before
        self._time_left, self._metric, self._sign = time_left, metric, sign
        self._interval = interval
        self._start = time.perf_counter()
        self._next_line = self._start + interval
        self._bar = None
        if self._stream.isatty():
            self._bar = tqdm(
                total=total, initial=done_before, unit="eval", file=self._stream, dynamic_ncols=True
            )

    def update(self, done: int, failed: int, best_loss: float) -> None:
        """``done``/``failed``: this session's evaluations so far, over all workers."""
        now = time.perf_counter()
        elapsed = now - self._start
        best = "-" if math.isinf(best_loss) else f"{self._sign * best_loss:.6g}"
        fields = {f"best {self._metric}": best, "failed": failed}
        left = self._remaining(done, elapsed)
        if left is not None:
            fields["left"] = _duration(left)
        if self._bar is not None:
            self._bar.n = self._before + done
            self._bar.set_postfix(fields, refresh=True)
        elif now >= self._next_line or (self._total and self._before + done >= self._total):
            self._next_line = now + self._interval
            of = f"/{self._total}" if self._total else ""
            rate = done / elapsed if elapsed > 0 else 0.0
            line = (
                f"{self._before + done}{of} evaluations, best {self._metric} {best}, "
                f"{rate:.1f}/s, {failed} failed, elapsed {_duration(elapsed)}"
            )
            if left is not None:
                line += f", ~{_duration(left)} left"
            print(line, file=self._stream, flush=True)
            _log.info(line)

    def _remaining(self, done: int, elapsed: float) -> float | None:
        estimates = []
        if self._total and done:
            estimates.append((self._total - self._before - done) * elapsed / done)
        if self._time_left is not None:
            estimates.append(max(0.0, self._time_left - elapsed))
        return min(estimates) if estimates else None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
