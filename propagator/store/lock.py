"""The run-directory lock: one running job per run directory.

A job that writes a run directory holds ``run_dir/lock``, a small JSON file (host, pid,
process start time, command, time) refreshed by a heartbeat thread. A second job that finds
the lock refuses to start and names the holder. A lock whose holder is gone (a ``kill -9``, a
node failure) is stale and taken over with a message:

* on the same host, the holder is gone when no process has its pid and start time;
* on another host, liveness cannot be checked directly, so the holder is taken for gone when
  its heartbeat is older than :data:`STALE_AFTER` seconds (ten missed beats).

A lock is created with ``O_CREAT | O_EXCL`` (atomic, also on NFS v3+) and written at once;
an empty or unreadable one is stale only when it stays so for :data:`_WRITING` seconds (a job
killed between creating and writing it). A takeover removes the stale lock only while holding
``run_dir/lock.break`` (itself such a lock), and only if the lock is still the very file it
judged stale: same file, same bytes, not refreshed since. Of jobs racing to take over one stale
lock, one removes it and creates its own; the others then find that job's lock, alive. What is
left is a holder on another host that comes back after ``STALE_AFTER`` seconds of silence and
refreshes its lock in the microseconds between that last check and the removal: both jobs run
then, as they would if it came back a moment after the takeover.
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
STALE_AFTER = 10 * HEARTBEAT  # seconds without a refresh after which a foreign lock is stale
_PATIENCE = 10.0  # seconds to wait for another job's takeover of the same stale lock to end
_WRITING = 1.0  # seconds a lock may stay empty while its job writes it


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
            taken for stale.
    """

    def __init__(self, run_dir: Path, stale_after: float = STALE_AFTER) -> None:
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
        try:
            self.took_over = _lock(self.path, _me(), self._stale_after)
        except _Held as held:
            holder = held.holder
            raise ConfigError(
                f"{self.path.parent} is in use by another propagate job ({holder.describe()}); "
                f"wait for it to end or stop it (kill -TERM {holder.pid} on {holder.host}), or "
                "give this search another run_dir"
            ) from None
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="run-lock")
        self._beat.start()

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


def live_holder(run_dir: Path, stale_after: float = STALE_AFTER) -> Holder | None:
    """The job holding ``run_dir``'s lock, if it is still alive (``None``: nobody, or a job
    that ended without releasing it)."""
    seen = _look(Path(run_dir) / LOCK)
    holder = None if seen is None else _holder(seen.data)
    return holder if holder is not None and _alive(holder, seen, stale_after) else None


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in a lock file (``None`` if there is none or it is unreadable,
    e.g. a job killed while writing it)."""
    try:
        seen = _look(Path(path))
    except OSError:
        return None
    return None if seen is None else _holder(seen.data)


class _Held(Exception):
    """A live job holds the lock."""

    def __init__(self, holder: Holder) -> None:
        super().__init__(holder.describe())
        self.holder = holder


@dataclass(frozen=True)
class _Seen:
    """A lock file as read: which file, when it was last refreshed, and its bytes."""

    inode: int
    mtime_ns: int
    data: bytes


def _lock(path: Path, me: Holder, stale_after: float) -> Holder | None:
    """Create the lock ``path`` naming ``me``, taking over a stale one.

    Returns:
        The holder of the stale lock taken over (``None``: there was none, or it was
        unreadable).

    Raises:
        _Held: a live job holds it.
        ConfigError: other jobs kept taking over the same stale lock for ``_PATIENCE`` s.
    """
    deadline = time.monotonic() + _PATIENCE
    while True:
        if _create(path, me):
            return None
        seen = _look(path)
        if seen is None:  # released meanwhile
            continue
        holder = _holder(seen.data)
        if holder is not None and _alive(holder, seen, stale_after):
            raise _Held(holder)
        if holder is None:  # perhaps still being written
            time.sleep(_WRITING)
            if _look(path) != seen:
                continue
        if _take_over(path, seen, me, stale_after):
            return holder
        # another job is taking it over, or took it, or the holder refreshed it: look again
        if time.monotonic() > deadline:
            raise ConfigError(f"could not take the lock {path}: other jobs keep taking it")
        time.sleep(0.01)


def _take_over(path: Path, seen: _Seen, me: Holder, stale_after: float) -> bool:
    """Replace the stale lock ``seen`` at ``path`` by ours, if it is still there; whether it
    was."""
    guard = path.with_name(path.name + ".break")
    try:
        # a guard left by a job killed while taking over is stale like any lock
        _lock(guard, me, stale_after)
    except _Held:
        return False
    try:
        # Only guard holders remove a lock, so the lock cannot change from here to the unlink
        # but by its own holder, which was found gone.
        if _look(path) != seen:
            return False
        os.unlink(path)
        return _create(path, me)
    finally:
        os.unlink(guard)


def _create(path: Path, me: Holder) -> bool:
    """Create a lock naming ``me`` at ``path`` unless one is there; whether it was created."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(me.__dict__, f)
    return True


def _look(path: Path) -> _Seen | None:
    """The lock file at ``path`` (``None``: there is none)."""
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())  # opening revalidates NFS's cached attributes
            return _Seen(stat.st_ino, stat.st_mtime_ns, f.read())
    except FileNotFoundError:
        return None


def _holder(data: bytes) -> Holder | None:
    try:
        fields: dict[str, Any] = json.loads(data)
        return Holder(**fields)
    except (ValueError, TypeError):
        return None


def _alive(holder: Holder, seen: _Seen, stale_after: float) -> bool:
    """Whether the job that wrote the lock ``seen`` still runs (see the module docstring)."""
    if holder.host == socket.gethostname():
        return _running(holder.pid, holder.started)
    return time.time() - seen.mtime_ns / 1e9 < stale_after


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
