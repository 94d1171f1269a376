"""The ``propagate`` command (see :mod:`.main`)."""

from .main import main

__all__ = ["main"]
