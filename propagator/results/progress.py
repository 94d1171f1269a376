"""Rank 0's view of a running search: a live bar, a line every few seconds, or nothing.

The mode (``propagate SEARCH.yaml --progress MODE``) is one of :data:`PROGRESS_MODES`:

* ``bar``: a bar redrawn in place with ``\\r`` (tqdm), whatever the output is;
* ``lines``: one line every ``interval`` seconds (10 by default) and a last one at the end;
* ``none``: nothing on the stream;
* ``auto`` (the default): a bar when a terminal shows the output, lines otherwise.

Under ``mpirun``/``mpiexec`` a rank's stderr is a pipe to the launcher, and MPICH's Hydra
starts each rank in a session of its own, so ``/dev/tty`` does not open there either; but the
launcher relays what the rank writes, ``\\r`` updates included, as it comes (measured with
MPICH 4 under ``script``). So ``auto`` follows the pipe up through the parent processes that
read it (Hydra's proxy, then ``mpiexec``) and shows a bar when the chain ends at a terminal.
A pipe read by some other program (``| tee log``), a file, or a launcher on another node
(``srun`` relays through ``slurmstepd``) gets lines; ``--progress bar`` forces a bar there.

Whatever the mode, a progress line goes to the ``propagate`` logger every ``interval``
seconds (the rank's log file in a run directory).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import time
from typing import Any, TextIO

_log = logging.getLogger("propagate")

PROGRESS_MODES = ("auto", "bar", "lines", "none")
_MAX_RELAYS = 4  # parent processes followed from a pipe towards a terminal
_PIPES = ("pipe:", "socket:")


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
        interval: seconds between lines (``lines`` mode, and the log). Default 10.
        mode: one of :data:`PROGRESS_MODES`. Default ``"auto"``.

    Raises:
        ValueError: an unknown ``mode``.
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
        mode: str = "auto",
    ) -> None:
        if mode not in PROGRESS_MODES:
            raise ValueError(f"progress mode must be one of {PROGRESS_MODES}, got {mode!r}")
        self._stream = stream or sys.stderr
        self._total, self._before = total, done_before
        self._time_left, self._metric, self._sign = time_left, metric, sign
        self._interval = interval
        self._start = time.perf_counter()
        self._next_line = self._start + interval
        self._latest = ""  # the newest line, and the last one shown
        self._shown = ""
        self._closed = False
        self._bar: Any = None
        columns = terminal_columns(self._stream) if mode == "auto" else None
        self._mode = ("bar" if columns else "lines") if mode == "auto" else mode
        if self._mode == "bar":
            self._bar = self._make_bar(columns or shutil.get_terminal_size().columns)

    @property
    def mode(self) -> str:
        """What is shown: ``"bar"``, ``"lines"`` or ``"none"`` (``auto`` resolved)."""
        return self._mode

    def _make_bar(self, columns: int) -> Any:
        from tqdm import tqdm

        # tqdm's own time estimate is left out: "left" also knows the time budget
        known = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
        if not self._total:
            known = "{n_fmt} evaluations "
        return tqdm(
            total=self._total,
            initial=self._before,
            unit="eval",
            file=self._stream,
            ncols=columns,
            mininterval=0.0,
            bar_format=known + "[{elapsed}, {rate_fmt}{postfix}]",
        )

    def update(self, done: int, failed: int, best_loss: float) -> None:
        """``done``/``failed``: this session's evaluations so far, over all workers. Once the
        evaluation budget is reached the display ends (later calls do nothing)."""
        if self._closed:
            return
        now = time.perf_counter()
        elapsed = now - self._start
        best = "-" if math.isinf(best_loss) else f"{self._sign * best_loss:.6g}"
        left = self._remaining(done, elapsed)
        self._latest = self._line(done, failed, best, elapsed, left)
        if self._bar is not None:
            fields = {f"best {self._metric}": best, "failed": failed}
            if left is not None:
                fields["left"] = _duration(left)
            self._bar.n = self._before + done
            self._bar.set_postfix(fields, refresh=True)
        finished = bool(self._total) and self._before + done >= self._total
        if now >= self._next_line or finished:
            self._next_line = now + self._interval
            self._show_line()
        if finished:
            self.close()

    def _line(self, done: int, failed: int, best: str, elapsed: float, left: float | None) -> str:
        of = f"/{self._total}" if self._total else ""
        rate = done / elapsed if elapsed > 0 else 0.0
        line = (
            f"{self._before + done}{of} evaluations, best {self._metric} {best}, "
            f"{rate:.1f}/s, {failed} failed, elapsed {_duration(elapsed)}"
        )
        return line + (f", ~{_duration(left)} left" if left is not None else "")

    def _show_line(self) -> None:
        """Log the newest line, and print it in ``lines`` mode, unless it was the last one."""
        if not self._latest or self._latest == self._shown:
            return
        self._shown = self._latest
        _log.info(self._latest)
        if self._mode == "lines":
            self._stream.write(self._latest + "\n")  # one write: a relay keeps the line whole
            self._stream.flush()

    def _remaining(self, done: int, elapsed: float) -> float | None:
        estimates = []
        if self._total and done:
            estimates.append((self._total - self._before - done) * elapsed / done)
        if self._time_left is not None:
            estimates.append(max(0.0, self._time_left - elapsed))
        return min(estimates) if estimates else None

    def close(self) -> None:
        """End the display (at the end of the session, whatever ended it): the bar's line is
        ended, so that what follows starts on a line of its own, and in ``lines`` mode the
        final state is printed if the last line did not show it. Calling it again does
        nothing."""
        if self._closed:
            return
        self._closed = True
        self._show_line()
        if self._bar is not None:
            self._bar.close()


def terminal_columns(stream: TextIO) -> int | None:
    """The width of the terminal that shows what is written to ``stream``, or ``None``.

    That is the stream's own terminal, or the one at the end of a chain of pipes each read by
    the parent process (an MPI launcher and its proxy relaying a rank's output), as found in
    ``/proc`` (Linux; elsewhere only the stream itself counts).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if os.isatty(fd):
        return _columns(fd)
    pid, target = os.getpid(), _link(os.getpid(), fd)
    for _ in range(_MAX_RELAYS):
        if target is None or not target.startswith(_PIPES):
            break
        parent = _parent(pid)
        if parent is None or not _reads(parent, target):
            return None
        pid, target = parent, _link(parent, fd)
    if target is None or not target.startswith("/dev/"):
        return None
    try:
        tty = os.open(target, os.O_WRONLY | os.O_NOCTTY)
    except OSError:
        return None
    try:
        return _columns(tty) if os.isatty(tty) else None
    finally:
        os.close(tty)


def _columns(fd: int) -> int:
    try:
        return os.get_terminal_size(fd).columns or 80
    except OSError:
        return 80


def _link(pid: int, fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields follow the last ')'
    parent = int(stat.rsplit(")", 1)[1].split()[1])
    return parent if parent > 1 else None


def _reads(pid: int, target: str) -> bool:
    """Whether process ``pid`` holds the read end of pipe (or socket) ``target``."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if _link(pid, int(fd)) == target and _read_end(pid, int(fd)):
                return True
    return False


def _read_end(pid: int, fd: int) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            flags = next(line for line in f if line.startswith("flags:"))
    except (OSError, StopIteration):
        return False
    return int(flags.split()[1], 8) & os.O_ACCMODE != os.O_WRONLY


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
