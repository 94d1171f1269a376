"""The run-directory lock: one job at a time, stale locks taken over (issue 12, item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from propagator import ConfigError
from propagator.store.lock import HEARTBEAT, LOCK, RunLock, read_holder


def _write_holder(run_dir, **fields) -> None:
    holder = {
        "host": "vm",
        "pid": 1,
        "started": 0.0,
        "command": "propagate other.yaml",
        "since": time.time(),
    }
    holder.update(fields)
    (run_dir / LOCK).write_text(json.dumps(holder))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_holder_is_refused_with_the_first_named(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(
            ConfigError, match=rf"in use by another propagate job \(pid {os.getpid()}"
        ):
            RunLock(tmp_path).acquire()
    finally:
        first.release()
    assert not (tmp_path / LOCK).exists()
    second = RunLock(tmp_path)
    second.acquire()
    second.release()


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    import socket

    pid = _dead_pid()
    _write_holder(tmp_path, host=socket.gethostname(), pid=pid)
    lock = RunLock(tmp_path)
    lock.acquire()
    try:
        assert lock.took_over is not None and lock.took_over.pid == pid
        assert read_holder(tmp_path / LOCK).pid == os.getpid()
    finally:
        lock.release()


def test_a_recycled_pid_is_not_the_holder(tmp_path):
    """The pid exists (it is ours) but started at another time: the lock is stale."""
    import socket

    _write_holder(tmp_path, host=socket.gethostname(), pid=os.getpid(), started=1.0)
    lock = RunLock(tmp_path)
    lock.acquire()
    assert lock.took_over is not None
    lock.release()


def test_a_lock_from_another_host_is_live_while_its_heartbeat_is(tmp_path):
    _write_holder(tmp_path, host="elsewhere", pid=4242)
    with pytest.raises(ConfigError, match="pid 4242 on elsewhere"):
        RunLock(tmp_path).acquire()
    old = time.time() - 20 * HEARTBEAT
    os.utime(tmp_path / LOCK, (old, old))
    lock = RunLock(tmp_path)
    lock.acquire()
    assert lock.took_over.host == "elsewhere"
    lock.release()


def test_an_unreadable_lock_is_stale(tmp_path):
    """A job killed while writing its lock leaves an empty file."""
    (tmp_path / LOCK).write_text("")
    lock = RunLock(tmp_path)
    lock.acquire()
    assert lock.took_over is None and read_holder(tmp_path / LOCK).pid == os.getpid()
    lock.release()


def test_the_heartbeat_refreshes_the_lock(tmp_path, monkeypatch):
    from propagator.store import lock as lock_module

    monkeypatch.setattr(lock_module, "HEARTBEAT", 0.05)
    lock = RunLock(tmp_path)
    lock.acquire()
    try:
        old = time.time() - 1000
        os.utime(tmp_path / LOCK, (old, old))
        time.sleep(0.3)
        assert time.time() - (tmp_path / LOCK).stat().st_mtime < 5
    finally:
        lock.release()
