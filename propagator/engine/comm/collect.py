"""Collectives of the search's start and end, non-blocking and polled with backoff: MPICH's
blocking collectives spin, and on an oversubscribed node spinning ranks starve the very ranks
they wait for."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import numpy as np
from mpi4py import MPI

from ...errors import ConfigError, PropagateError
from .backoff import IDLE_CAP, wait


def allgather_bytes(comm: MPI.Comm, data: bytes) -> list[bytes]:
    """Collective: the ``data`` of every rank of ``comm``, in rank order."""
    sizes = np.zeros(comm.size, dtype=np.int64)
    mine = np.array([len(data)], dtype=np.int64)
    wait(comm.Iallgather([mine, MPI.INT64_T], [sizes, MPI.INT64_T]), IDLE_CAP)
    displs = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    payload = np.frombuffer(data, dtype=np.uint8) if data else np.empty(0, dtype=np.uint8)
    wait(comm.Iallgatherv([payload, MPI.BYTE], [out, (sizes, displs), MPI.BYTE]), IDLE_CAP)
    return [out[d : d + s].tobytes() for d, s in zip(displs, sizes, strict=True)]


def broadcast_ints(comm: MPI.Comm, values: list[int], root: int = 0) -> list[int]:
    """Collective: ``root``'s int64 ``values`` on every rank."""
    buf = np.array(values, dtype=np.int64)
    wait(comm.Ibcast([buf, MPI.INT64_T], root=root), IDLE_CAP)
    return buf.tolist()


def broadcast_bytes(comm: MPI.Comm, data: bytes | None, root: int = 0) -> bytes:
    """Collective: ``root``'s ``data`` on every rank."""
    size = broadcast_ints(comm, [len(data) if comm.rank == root and data else 0], root)[0]
    buf = np.frombuffer(data, dtype=np.uint8).copy() if comm.rank == root and data else None
    if buf is None:
        buf = np.empty(size, dtype=np.uint8)
    wait(comm.Ibcast([buf, MPI.BYTE], root=root), IDLE_CAP)
    return buf.tobytes()


_OK, _CONFIG, _INTERNAL = b"o", b"c", b"i"  # the first byte of what agree broadcasts


def agree(comm: MPI.Comm, make: Callable[[], bytes]) -> bytes:
    """Rank 0 makes the data; every rank gets it, or raises the error rank 0 met (every rank
    must hear of a failure, or the others would wait for rank 0 forever). The data or the
    error go in one broadcast, which the others wait for asleep, not spinning: they wait for
    as long as ``make`` takes, which they would otherwise slow down."""
    reply = b""
    if comm.rank == 0:
        try:
            reply = _OK + make()
        except ConfigError as exc:
            reply = _CONFIG + _encode(str(exc))
        except Exception:
            reply = _INTERNAL + _encode(f"preparing the run failed:\n{traceback.format_exc()}")
    reply = broadcast_bytes(comm, reply)
    if reply[:1] == _OK:
        return reply[1:]
    message = reply[1:].decode("utf-8", "surrogatepass")
    raise (ConfigError if reply[:1] == _CONFIG else PropagateError)(message)


def _encode(message: str) -> bytes:
    return message.encode("utf-8", "surrogatepass")
