"""The stop flag behind SIGTERM/SIGINT/SIGUSR1 handling, in one process.

Every test sets the dispositions it relies on itself: the suite may run with SIGINT ignored
(started in the background of a script, under nohup or a batch system).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from propagator.engine import signals
from propagator.engine.signals import StopOnSignal


@pytest.fixture
def sigint_default() -> Iterator[None]:
    """SIGINT as an interactive Python has it (KeyboardInterrupt), restored afterwards."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def test_first_signal_sets_the_flag_and_a_quick_repeat_is_the_same_stop():
    stop = StopOnSignal()
    try:
        assert not stop()
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)  # delivered twice (terminal + mpiexec): still fine
        assert stop() and stop.received == "SIGUSR1"
    finally:
        stop.restore()


def test_a_later_second_interrupt_acts_as_usual(monkeypatch, sigint_default):
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


def test_an_interrupt_ignored_at_the_start_stays_ignored(sigint_ignored):
    """Started with SIGINT ignored (nohup, a script's background job): Ctrl-C changes nothing,
    SIGTERM still stops the search."""
    stop = StopOnSignal()
    try:
        assert signal.SIGINT not in stop.handled and signal.SIGTERM in stop.handled
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == "SIGTERM"
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.parametrize("inherited", [signal.default_int_handler, signal.SIG_IGN])
def test_restore_puts_the_previous_handlers_back(inherited):
    before_int = signal.signal(signal.SIGINT, inherited)
    try:
        before = {s: signal.getsignal(s) for s in signals.SIGNALS}
        StopOnSignal().restore()
        assert {s: signal.getsignal(s) for s in signals.SIGNALS} == before
    finally:
        signal.signal(signal.SIGINT, before_int)
