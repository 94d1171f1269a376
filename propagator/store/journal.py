"""The per-leader journal: an append-only log of framed records, safe against kill -9.

Each record is one frame written with a single ``write`` call, so once the call returns the
record is in the operating system's hands and survives the process being killed:

    u32 payload length | u32 CRC-32 of the payload | payload

The payload is the record's wire row (fixed size for a run) followed by its side data as
UTF-8 JSON (metrics, error, intermediate reports, the breeder's RNG state), possibly empty.
A frame cut short by a crash, or damaged, fails the length or CRC check; reading stops there
and says how many bytes were dropped, and the writer truncates them before appending again.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_HEADER = struct.Struct("<II")


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
    side: dict[int, dict[str, Any]] = {}
    pos, size, item = 0, len(data), dtype.itemsize
    while pos + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        payload = data[pos + _HEADER.size : end]
        if end > size or length < item or zlib.crc32(payload) != crc:
            break
        rows.append(payload[:item])
        if length > item:
            record_id = int(np.frombuffer(payload[:item], dtype=dtype)["id"][0])
            side[record_id] = json.loads(payload[item:])
        pos = end
    array = np.frombuffer(b"".join(rows), dtype=dtype).copy() if rows else np.zeros(0, dtype)
    return JournalContents(array, side, pos, size - pos)


class JournalWriter:
    """Appends frames to a journal, first cutting off any damaged tail a crash left."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self._dtype = dtype
        if path.exists():
            good = read_journal(path, dtype).good_bytes
            if good != path.stat().st_size:
                os.truncate(path, good)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, row: np.void, side: dict[str, Any] | None) -> None:
        payload = row.tobytes()
        if side:
            payload += json.dumps(side, separators=(",", ":")).encode()
        os.write(self._fd, _HEADER.pack(len(payload), zlib.crc32(payload)) + payload)

    def close(self) -> None:
        os.close(self._fd)
