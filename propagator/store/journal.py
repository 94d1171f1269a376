"""The per-leader journal: an append-only log of framed records, safe against kill -9.

Each record is one frame, copied into a shared memory map of the file: the bytes are then in
the operating system's page cache, which keeps them when the process is killed (kill -9
included), at the cost of a memory copy instead of a system call per record:

    u32 payload length | u32 CRC-32 of the payload | payload

The file grows in chunks, so an open journal ends in zero padding (a clean end, not damage);
closing it cuts the padding off.

The payload is the record's wire row (fixed size for a run) followed by its side data as
UTF-8 JSON (metrics, error, intermediate reports), possibly empty. Row times are seconds since
the session started: each session begins with a short marker frame holding its start time
(``b"T0"`` and a float64 of epoch seconds), which the reader adds back.
A frame cut short by a crash, or damaged, fails the length or CRC check; reading stops there
and says how many bytes were dropped. Before appending again the writer keeps a copy of the
whole file (``.damaged-<time>``, in case the damage was not just a cut-off tail) and
truncates the journal to its intact prefix.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_HEADER = struct.Struct("<II")
_SESSION = struct.Struct("<2sd")
_MARK = b"T0"
_CHUNK = 1 << 20


@dataclass
class JournalContents:
    """What a journal holds: rows, their side data by id, and any damaged tail."""

    rows: np.ndarray
    side: dict[int, dict[str, Any]] = field(default_factory=dict)
    good_bytes: int = 0
    dropped_bytes: int = 0


def read_journal(path: Path, dtype: np.dtype) -> JournalContents:
    """Read every intact frame of ``path``; a damaged or cut-off tail is reported, not raised."""
    data = path.read_bytes()
    rows: list[bytes] = []
    t0s: list[float] = []
    side: dict[int, dict[str, Any]] = {}
    pos, size, item, t0 = 0, len(data), dtype.itemsize, 0.0
    for end, payload in frames(data):
        mark = session_start(payload)
        if mark is not None:
            t0 = mark
        elif len(payload) >= item:
            rows.append(payload[:item])
            t0s.append(t0)
            if len(payload) > item:
                record_id = int(np.frombuffer(payload[:item], dtype=dtype)["id"][0])
                side[record_id] = json.loads(payload[item:])
        else:
            break
        pos = end
    array = np.frombuffer(b"".join(rows), dtype=dtype).copy() if rows else np.zeros(0, dtype)
    array["start"] += t0s
    array["end"] += t0s
    padding = data.count(0, pos) == size - pos  # an open journal's unused, zeroed room
    return JournalContents(array, side, pos, 0 if padding else size - pos)


def frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Each intact frame's payload in ``data``, with the offset just past the frame; stops at
    the first frame cut short or damaged. Zero padding reads as empty payloads."""
    pos, size = 0, len(data)
    while pos + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        payload = data[pos + _HEADER.size : end]
        if end > size or zlib.crc32(payload) != crc:
            return
        yield end, payload
        pos = end


def session_start(payload: bytes) -> float | None:
    """The epoch seconds a session marker's payload holds (``None``: not a marker)."""
    if len(payload) == _SESSION.size and payload[:2] == _MARK:
        return float(_SESSION.unpack(payload)[1])
    return None


class JournalWriter:
    """Appends frames to a journal, first cutting off any damaged tail a crash left."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        good = 0
        if path.exists():
            contents = read_journal(path, dtype)
            good = contents.good_bytes
            if contents.dropped_bytes:
                shutil.copyfile(path, path.with_name(f"{path.name}.damaged-{int(time.time())}"))
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, good)  # drop damage and old padding: what follows reads as zeros
        self._pos = good
        self._map = self._mapping(good + _CHUNK)

    def _mapping(self, size: int) -> mmap.mmap:
        os.ftruncate(self._fd, size)
        return mmap.mmap(self._fd, size)

    def start_session(self, t0: float) -> None:
        """Mark that the rows that follow have times relative to epoch second ``t0``."""
        self._write(_SESSION.pack(_MARK, t0))

    def append(self, row: np.void, side: dict[str, Any] | None) -> None:
        payload = row.tobytes()
        if side:
            payload += json.dumps(side, separators=(",", ":")).encode()
        self._write(payload)

    def _write(self, payload: bytes) -> None:
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        end = self._pos + len(frame)
        if end > len(self._map):
            self._map.close()
            self._map = self._mapping(end + _CHUNK)
        self._map[self._pos : end] = frame
        self._pos = end

    def close(self) -> None:
        self._map.close()
        os.ftruncate(self._fd, self._pos)
        os.close(self._fd)
