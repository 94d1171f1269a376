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

_FIRST = 1 << 10  # slots of an empty set
_EMPTY = 0  # marks a free slot; the key 0 itself is kept apart (KeySet._zero)


class KeySet:
    """A set of signed 64-bit integers (well mixed: see the module docstring)."""

    def __init__(self) -> None:
        self._slots = array("q", [_EMPTY]) * _FIRST
        self._mask = _FIRST - 1
        self._n = 0
        self._zero = False  # whether the key 0 is in the set

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes of the table (what the set holds beyond a few fixed fields)."""
        return len(self._slots) * self._slots.itemsize

    def __contains__(self, key: int) -> bool:
        if key == _EMPTY:
            return self._zero
        slots, mask = self._slots, self._mask
        i = key & mask
        while (held := slots[i]) != _EMPTY:
            if held == key:
                return True
            i = (i + 1) & mask
        return False

    def add(self, key: int) -> bool:
        """Add ``key``; whether it was new."""
        if key == _EMPTY:
            new = not self._zero
            self._zero = True
            self._n += new
            return new
        slots, mask = self._slots, self._mask
        i = key & mask
        while (held := slots[i]) != _EMPTY:
            if held == key:
                return False
            i = (i + 1) & mask
        slots[i] = key
        self._n += 1
        if 3 * self._n > 2 * len(slots):  # past two thirds full: probes would lengthen
            self._grow()
        return True

    def update(self, keys: Iterable[int]) -> None:
        """Add every key of ``keys``."""
        for key in keys:
            self.add(key)

    def _grow(self) -> None:
        """Twice the slots, every key placed again (amortised O(1) per key added)."""
        old = self._slots
        self._slots = array("q", [_EMPTY]) * (2 * len(old))
        self._mask = 2 * len(old) - 1
        slots, mask = self._slots, self._mask
        for key in old:
            if key != _EMPTY:
                i = key & mask
                while slots[i] != _EMPTY:
                    i = (i + 1) & mask
                slots[i] = key
