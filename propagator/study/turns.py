"""Strict turns between the user's thread and the engine's thread of a :class:`Study`."""

from __future__ import annotations

import threading
from typing import Any

Message = tuple[str, Any]  # ("trial" | "done" | "error", ...) or ("value" | "raise", ...)


class Left(KeyboardInterrupt):
    """Raised in the engine's thread for a trial that will never be told (the ``with`` block
    was left): the engine neither records it nor goes on, as after Ctrl-C in an objective."""


class Turns:
    """Strict turns between the user's thread and the engine's: one runs, the other waits for
    the turn and the message that comes with it. Every wait ends when the other side hands
    the turn back, which each side always does (the engine last with how the search ended)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._engine = False  # whose turn it is
        self._message: Any = None

    @property
    def engine_has_it(self) -> bool:
        return self._engine

    def give(self, message: Any) -> None:
        """User: hand the turn to the engine with ``message``."""
        with self._cond:
            self._message, self._engine = message, True
            self._cond.notify_all()

    def take(self) -> Message:
        """User: wait for the turn; the engine's message."""
        with self._cond:
            self._cond.notify_all()  # again, in case an interrupt fell between give and here
            self._cond.wait_for(lambda: not self._engine)
            return self._message

    def await_turn(self) -> Any:
        """Engine: wait for the turn; the user's message."""
        with self._cond:
            self._cond.wait_for(lambda: self._engine)
            return self._message

    def to_user(self, message: Message) -> Any:
        """Engine: hand the turn to the user with ``message``; the user's answer."""
        with self._cond:
            self._message, self._engine = message, False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._engine)
            return self._message

    def last(self, message: Message) -> None:
        """Engine: hand the turn to the user for good."""
        with self._cond:
            self._message, self._engine = message, False
            self._cond.notify_all()
