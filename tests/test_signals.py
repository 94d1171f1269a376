"""The stop flag behind SIGTERM/SIGINT/SIGUSR1 handling, in one process."""

from __future__ import annotations

import os
import signal
import time

import pytest

from propagator.engine import signals
from propagator.engine.signals import StopOnSignal


def test_first_signal_sets_the_flag_and_a_quick_repeat_is_the_same_stop():
    stop = StopOnSignal()
    try:
        assert not stop()
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)  # delivered twice (terminal + mpiexec): still fine
        assert stop() and stop.received == "SIGUSR1"
    finally:
        stop.restore()


def test_a_later_second_interrupt_acts_as_usual(monkeypatch):
    monkeypatch.setattr(signals, "_SAME_STOP", 0.0)
    stop = StopOnSignal()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == "SIGINT"
        time.sleep(0.01)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()


def test_restore_puts_the_previous_handlers_back():
    before = {s: signal.getsignal(s) for s in signals.SIGNALS}
    StopOnSignal().restore()
    assert {s: signal.getsignal(s) for s in signals.SIGNALS} == before
