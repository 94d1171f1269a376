"""The ``propagate`` logger's messages, kept for a test script to write back."""

from __future__ import annotations

import logging


class LogLines(logging.Handler):
    """Keeps every message at ``level`` or above (default INFO) in :attr:`lines`."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
