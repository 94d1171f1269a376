"""The per-leader journal: an append-only log of framed records, safe against kill -9.

Each record is one frame written with a single ``write`` call, so once the call returns the
record is in the operating system's hands and survives the process being killed:

    u32 payload length | u32 CRC-32 of the payload | payload

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
import os
import shutil
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_HEADER = struct.Struct("<II")
_SESSION = struct.Struct("<2sd")
_MARK = b"T0"


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
    while pos + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        payload = data[pos + _HEADER.size : end]
        if end > size or zlib.crc32(payload) != crc:
            break
        if length == _SESSION.size and payload[:2] == _MARK:
            t0 = _SESSION.unpack(payload)[1]
        elif length >= item:
            rows.append(payload[:item])
            t0s.append(t0)
            if length > item:
                record_id = int(np.frombuffer(payload[:item], dtype=dtype)["id"][0])
                side[record_id] = json.loads(payload[item:])
        else:
            break
        pos = end
    array = np.frombuffer(b"".join(rows), dtype=dtype).copy() if rows else np.zeros(0, dtype)
    array["start"] += t0s
    array["end"] += t0s
    return JournalContents(array, side, pos, size - pos)


class JournalWriter:
    """Appends frames to a journal, first cutting off any damaged tail a crash left."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self._dtype = dtype
        if path.exists():
            good = read_journal(path, dtype).good_bytes
            if good != path.stat().st_size:
                shutil.copyfile(path, path.with_name(f"{path.name}.damaged-{int(time.time())}"))
                os.truncate(path, good)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def start_session(self, t0: float) -> None:
        """Mark that the rows that follow have times relative to epoch second ``t0``."""
        self._write(_SESSION.pack(_MARK, t0))

    def append(self, row: np.void, side: dict[str, Any] | None) -> None:
        payload = row.tobytes()
        if side:
            payload += json.dumps(side, separators=(",", ":")).encode()
        self._write(payload)

    def _write(self, payload: bytes) -> None:
        os.write(self._fd, _HEADER.pack(len(payload), zlib.crc32(payload)) + payload)

    def close(self) -> None:
        os.close(self._fd)
