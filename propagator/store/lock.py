"""The run-directory lock: one running job per run directory.

A job that writes a run directory holds ``run_dir/lock``, a small JSON file (host, pid,
process start time, command, time) created with ``O_CREAT | O_EXCL`` (atomic, also on NFS v3+)
and refreshed by a heartbeat thread. A second job that finds the lock refuses to start and names
the holder. A lock whose holder is gone (a ``kill -9``, a node failure) is stale and taken over
with a message:

* on the same host, the holder is gone when no process has its pid and start time;
* on another host, liveness cannot be checked directly, so the holder is taken for gone when
  its heartbeat is older than ``stale_after`` seconds (ten missed beats by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

LOCK = "lock"
HEARTBEAT = 10.0  # seconds between refreshes of the lock's modification time


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lock."""

    host: str
    pid: int
    started: float  # process start, as the kernel reports it (0 when unknown)
    command: str
    since: float  # epoch seconds the lock was taken

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host}, since {when}: {self.command}"


class RunLock:
    """Hold ``run_dir/lock`` from :meth:`acquire` to :meth:`release` (rank 0 of a job).

    Args:
        run_dir: the run directory (must exist).
        stale_after: seconds without a heartbeat after which a lock held from another host is
            taken for stale (default ``10 × HEARTBEAT``).
    """

    def __init__(self, run_dir: Path, stale_after: float = 10 * HEARTBEAT) -> None:
        self.path = Path(run_dir) / LOCK
        self._stale_after = stale_after
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.took_over: Holder | None = None

    def acquire(self) -> None:
        """Take the lock, taking over a stale one (then :attr:`took_over` names its holder).

        Raises:
            ConfigError: another live job holds it (the message names it and what to do).
        """
        me = _me()
        for _ in range(3):  # another job may take over the same stale lock at the same time
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_holder(self.path)
                if holder is not None and self._alive(holder):
                    raise ConfigError(
                        f"{self.path.parent} is in use by another propagate job ("
                        f"{holder.describe()}); wait for it to end or stop it (kill -TERM "
                        f"{holder.pid} on {holder.host}), or give this search another run_dir"
                    ) from None
                self.took_over = holder
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me.__dict__, f)
            self._stop = threading.Event()
            self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="run-lock")
            self._beat.start()
            return
        raise ConfigError(f"could not take the lock {self.path}: other jobs keep taking it")

    def release(self) -> None:
        """Stop the heartbeat and remove the lock, if this object holds it (and it is still
        ours: nobody took it over meanwhile)."""
        if self._beat is None:
            return
        self._stop.set()
        self._beat.join()
        self._beat = None
        holder = read_holder(self.path)
        if holder is not None and (holder.host, holder.pid) == (_me().host, os.getpid()):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def _alive(self, holder: Holder) -> bool:
        """Whether the job that wrote the lock still runs (see the module docstring)."""
        if holder.host == socket.gethostname():
            return _running(holder.pid, holder.started)
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        return age < self._stale_after


def live_holder(run_dir: Path, stale_after: float = 10 * HEARTBEAT) -> Holder | None:
    """The job holding ``run_dir``'s lock, if it is still alive (``None``: nobody, or a job
    that ended without releasing it)."""
    lock = RunLock(run_dir, stale_after)
    holder = read_holder(lock.path)
    return holder if holder is not None and lock._alive(holder) else None


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in a lock file (``None`` if there is none or it is unreadable,
    e.g. a job killed while writing it)."""
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
        return Holder(**data)
    except (OSError, ValueError, TypeError):
        return None


def _me() -> Holder:
    return Holder(
        host=socket.gethostname(),
        pid=os.getpid(),
        started=_process_start(os.getpid()),
        command=" ".join(sys.argv) or sys.executable,
        since=time.time(),
    )


def _running(pid: int, started: float) -> bool:
    """Whether process ``pid`` still runs and is the one that started at ``started`` (a
    recycled pid is not the holder; nor is a zombie, a killed process nobody reaped yet)."""
    fields = _stat(pid)
    if fields is None:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return fields[0] not in ("Z", "X", "x") and float(fields[19]) == started


def _process_start(pid: int) -> float:
    """The process's start time in clock ticks since boot (Linux); 0 where ``/proc`` does
    not tell."""
    fields = _stat(pid)
    return 0.0 if fields is None else float(fields[19])


def _stat(pid: int) -> list[str] | None:
    """Fields 3 and later of ``/proc/PID/stat`` (state first), or ``None`` without them."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    return stat.rsplit(")", 1)[1].split()
