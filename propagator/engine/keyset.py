"""A set of 64-bit keys in one flat array: the compact store of :class:`.seen.Seen`.

A Python ``set`` of a million ints holds a million int objects (32 bytes each) and a hash
table of 16-byte entries kept at most 60 % full: about 70 bytes per key, measured 148 per
configuration in :class:`.seen.Seen` at 20,000 of them (``jobs/bench/memory.py --trace``).
Here a key is 8 bytes in an open-addressing table (linear probing) kept between a third and
two thirds full, 12 to 24 bytes per key, and membership is exact, as a set's. The keys must
be well mixed (a hash such as Seen's BLAKE2b keys): a key's slot is its low bits. The table
is an ``array.array``, whose items read as Python ints without numpy's per-item cost, so a
lookup costs a few hundred nanoseconds.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import numpy as np

_FIRST = 1 << 10  # slots of an empty set
_EMPTY = 0  # marks a free slot; the key 0 itself is kept apart (KeySet._zero)
_REHASH = 1 << 15  # slots of the old table placed at a time when the table grows


class KeySet:
    """A set of signed 64-bit integers (well mixed: see the module docstring)."""

    def __init__(self) -> None:
        self._n = 0
        self._zero = False  # whether the key 0 is in the set
        self._empty(_FIRST)

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes of the table (what the set holds beyond a few fixed fields)."""
        return len(self._slots) * self._slots.itemsize

    def __contains__(self, key: int) -> bool:
        if not key:
            return self._zero
        slots, mask = self._slots, self._mask
        i = key & mask
        held = slots[i]
        while held:
            if held == key:
                return True
            i = (i + 1) & mask
            held = slots[i]
        return False

    def add(self, key: int) -> bool:
        """Add ``key``; whether it was new."""
        if not key:
            new = not self._zero
            self._zero = True
            self._n += new
            return new
        slots, mask = self._slots, self._mask
        i = key & mask
        held = slots[i]
        while held:
            if held == key:
                return False
            i = (i + 1) & mask
            held = slots[i]
        slots[i] = key
        self._n += 1
        if self._n > self._limit:
            self._grow()
        return True

    def update(self, keys: Iterable[int]) -> None:
        """Add every key of ``keys``."""
        for key in keys:
            self.add(key)

    def _empty(self, size: int) -> None:
        """An empty table of ``size`` slots (a power of 2)."""
        self._slots = array("q", [_EMPTY]) * size
        self._mask = size - 1
        self._limit = 2 * size // 3  # past two thirds full, probes would lengthen

    def _grow(self) -> None:
        """Twice the slots, every key placed again (amortised O(1) per key added)."""
        old = np.frombuffer(self._slots, dtype=np.int64)
        self._empty(2 * len(old))
        table = np.frombuffer(self._slots, dtype=np.int64)  # writes through to the array
        # a slice of the old table at a time: whole-table temporaries (several times the
        # table) would grow the heap for good, as fragments the allocator cannot give back
        for start in range(0, len(old), _REHASH):
            chunk = old[start : start + _REHASH]
            self._place(table, chunk[chunk != _EMPTY])

    def _place(self, table: np.ndarray, keys: np.ndarray) -> None:
        """Linear probing for many keys at once: each round, the keys whose slot is free try
        it (one of several that want the same slot lands), the others move one slot on."""
        where = keys & self._mask
        while len(keys):
            free = table[where] == _EMPTY
            table[where[free]] = keys[free]
            moved = table[where] != keys
            keys, where = keys[moved], (where[moved] + 1) & self._mask
