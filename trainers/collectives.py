"""Collectives on a worker's ranks (``trial.comm``), counting the bytes each rank sends.

Two backends with one interface:

* :class:`MPICollectives` — mpi4py on CPU tensors, through numpy views of the tensors' own
  memory (no copies); a GPU tensor is staged through a host copy (copied back when a receive
  completes), so it works with any MPI, CUDA-aware or not. Always available.
* :class:`TorchCollectives` — ``torch.distributed`` (gloo on CPU, NCCL on GPU). Its process
  group is created once per worker group (a rendezvous address is broadcast over the MPI
  communicator) and reused by every later trial of the search.

Besides collectives, both offer point-to-point messages (``isend`` / ``irecv_``) and a
non-blocking broadcast for the layer-parallel trainers, whose stages talk only to their
neighbours in a chain (see :mod:`trainers.chain`). Such a rank spends much of its time waiting
for a neighbour; :func:`wait` completes a request by polling with a growing sleep instead of the
MPI library's busy wait, so that a waiting rank leaves its core to the ranks that work.

``bytes_sent`` counts the payload a rank hands to communication calls: ``nbytes`` of each
tensor it all-reduces or sends, and, for a broadcast, the tensor's size on the root only. It
is a property of the method, not of the MPI library's algorithm (a ring all-reduce moves
about twice the payload over the wire).
"""

from __future__ import annotations

import atexit
import os
import socket
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

if TYPE_CHECKING:  # mpi4py initialises MPI on import: trainers import it when they run
    from mpi4py import MPI

BACKENDS = ("mpi", "torch")


class Collectives(Protocol):
    """What trainers need from a communicator."""

    rank: int
    size: int
    bytes_sent: int

    def allreduce_(self, tensor: torch.Tensor, average: bool = True) -> torch.Tensor:
        """Sum (or average) ``tensor`` over the ranks, in place."""
        ...

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        """Overwrite ``tensor`` with ``root``'s, in place."""
        ...

    def isend(self, tensor: torch.Tensor, dest: int, tag: int) -> Request:
        """Start sending ``tensor`` to rank ``dest``; it must stay unchanged until the returned
        request has completed."""
        ...

    def irecv_(self, tensor: torch.Tensor, source: int, tag: int) -> Request:
        """Start receiving the next message from ``source`` with ``tag`` into ``tensor``."""
        ...

    def ibroadcast_(self, tensor: torch.Tensor, root: int = 0) -> Request:
        """Start overwriting ``tensor`` with ``root``'s (every rank calls it)."""
        ...


class Request(Protocol):
    """A started operation (an ``mpi4py`` request, or a wrapped ``torch.distributed`` work)."""

    def Test(self) -> bool: ...

    def Wait(self) -> object: ...


def wait(request: Request) -> None:
    """Complete ``request``: a few quick tests, then tests between sleeps that double from
    50 µs to 1 ms. MPI's own blocking calls spin, which on a node with more ranks than cores
    (a laptop, a test) takes the core from the rank that would send the message."""
    for _ in range(50):
        if request.Test():
            return
    pause = 5e-5
    while not request.Test():
        time.sleep(pause)
        pause = min(2 * pause, 1e-3)


class _Work:
    """A ``torch.distributed`` work as a :class:`Request` (``None``: nothing to do).

    ``Test`` waits: not every work reports completion before ``wait()`` (gloo's point-to-point
    ones never do), so polling cannot be trusted; on GPUs, where this backend serves, a rank
    has its own core anyway."""

    def __init__(self, work: object | None) -> None:
        self._work = work

    def Test(self) -> bool:
        self.Wait()
        return True

    def Wait(self) -> object:
        return None if self._work is None else self._work.wait()


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    if not tensor.is_contiguous():
        raise ValueError("MPI collectives need contiguous tensors")
    return tensor.detach().numpy()  # shares the tensor's memory


class _Staged:
    """An MPI request on a host copy of a GPU tensor: ``host`` lives as long as the request,
    and a receive's data is copied into ``target`` when it completes."""

    def __init__(self, request: Request, host: torch.Tensor, target: torch.Tensor | None) -> None:
        self._request, self._host, self._target = request, host, target

    def Test(self) -> bool:
        if not self._request.Test():
            return False
        self._complete()
        return True

    def Wait(self) -> object:
        self._request.Wait()
        self._complete()
        return None

    def _complete(self) -> None:
        if self._target is not None:
            self._target.copy_(self._host)
            self._target = None


class MPICollectives:
    """mpi4py collectives on a communicator (see the module docstring).

    Args:
        comm: the worker's communicator (``trial.comm``).
    """

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self.bytes_sent = 0

    def allreduce_(self, tensor: torch.Tensor, average: bool = True) -> torch.Tensor:
        from mpi4py import MPI

        if self.size == 1:
            return tensor
        host = _host(tensor)
        array = _as_numpy(host)
        self.comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        self.bytes_sent += array.nbytes
        if host is not tensor:
            tensor.copy_(host)
        if average:
            tensor.div_(self.size)
        return tensor

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        if self.size == 1:
            return tensor
        host = _host(tensor)
        array = _as_numpy(host)
        self.comm.Bcast(array, root=root)
        if self.rank == root:
            self.bytes_sent += array.nbytes
        elif host is not tensor:
            tensor.copy_(host)
        return tensor

    def isend(self, tensor: torch.Tensor, dest: int, tag: int) -> Request:
        host = _host(tensor)
        array = _as_numpy(host)
        self.bytes_sent += array.nbytes
        return _staged(self.comm.Isend(array, dest=dest, tag=tag), tensor, host, receive=False)

    def irecv_(self, tensor: torch.Tensor, source: int, tag: int) -> Request:
        host = _host(tensor, copy=False)
        request = self.comm.Irecv(_as_numpy(host), source=source, tag=tag)
        return _staged(request, tensor, host, receive=True)

    def ibroadcast_(self, tensor: torch.Tensor, root: int = 0) -> Request:
        root_here = self.rank == root
        host = _host(tensor, copy=root_here)
        array = _as_numpy(host)
        if root_here and self.size > 1:
            self.bytes_sent += array.nbytes
        request = self.comm.Ibcast(array, root=root)
        return _staged(request, tensor, host, receive=not root_here)


def _host(tensor: torch.Tensor, copy: bool = True) -> torch.Tensor:
    """``tensor`` itself if it lives on the CPU, else a contiguous host buffer of its shape
    (holding its values if ``copy``)."""
    if tensor.device.type == "cpu":
        return tensor
    if copy:
        return tensor.detach().to("cpu", memory_format=torch.contiguous_format)
    return torch.empty(tensor.shape, dtype=tensor.dtype)


def _staged(request: Request, tensor: torch.Tensor, host: torch.Tensor, receive: bool) -> Request:
    if host is tensor:
        return request
    return _Staged(request, host, tensor if receive else None)


# (backend, world ranks) of the live process group, if any
_MEMBERS: list[tuple[str, tuple[int, ...]]] = []


class TorchCollectives:
    """``torch.distributed`` collectives for the ranks of ``comm`` (see the module docstring).

    The first instance for a set of ranks and a backend creates the process group (gloo, or
    NCCL when the tensors live on GPUs); later instances, in later trials, reuse it. A process
    belongs to one worker at a time, so one group per process suffices; a later trial that puts
    this rank in a different worker, or on the other device, replaces it (every rank of the
    worker makes the same change at the same trial, so they replace it together).
    """

    def __init__(self, comm: MPI.Comm, device: torch.device) -> None:
        import torch.distributed as dist
        from mpi4py import MPI

        self.rank, self.size = comm.rank, comm.size
        self.bytes_sent = 0
        self._dist = dist
        members = tuple(comm.group.Translate_ranks(list(range(comm.size)), MPI.COMM_WORLD.group))
        backend = "nccl" if device.type == "cuda" else "gloo"
        if self.size > 1 and [(backend, members)] != _MEMBERS:
            if dist.is_initialized():
                dist.destroy_process_group()
            _rendezvous(comm, backend)
            _MEMBERS[:] = [(backend, members)]

    def allreduce_(self, tensor: torch.Tensor, average: bool = True) -> torch.Tensor:
        if self.size == 1:
            return tensor
        self._dist.all_reduce(tensor, op=self._dist.ReduceOp.SUM)
        self.bytes_sent += tensor.numel() * tensor.element_size()
        if average:
            tensor.div_(self.size)
        return tensor

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        if self.size == 1:
            return tensor
        self._dist.broadcast(tensor, src=root)
        if self.rank == root:
            self.bytes_sent += tensor.numel() * tensor.element_size()
        return tensor

    def isend(self, tensor: torch.Tensor, dest: int, tag: int) -> Request:
        # NCCL ignores tags: the chain sends and receives in the same order on both sides
        self.bytes_sent += tensor.numel() * tensor.element_size()
        return _Work(self._dist.isend(tensor, dst=dest, tag=tag))

    def irecv_(self, tensor: torch.Tensor, source: int, tag: int) -> Request:
        return _Work(self._dist.irecv(tensor, src=source, tag=tag))

    def ibroadcast_(self, tensor: torch.Tensor, root: int = 0) -> Request:
        if self.size == 1:
            return _Work(None)
        if self.rank == root:
            self.bytes_sent += tensor.numel() * tensor.element_size()
        return _Work(self._dist.broadcast(tensor, src=root, async_op=True))


def _rendezvous(comm: MPI.Comm, backend: str) -> None:
    """Create the process group of ``comm``'s ranks: its rank 0 opens a TCP store on a free
    port and broadcasts the address over MPI."""
    import torch.distributed as dist

    address = None
    if comm.rank == 0:
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        address = (socket.gethostname(), port)
    host, port = comm.bcast(address, root=0)
    store = dist.TCPStore(host, port, comm.size, comm.rank == 0, use_libuv=False)
    dist.init_process_group(backend, store=store, rank=comm.rank, world_size=comm.size)
    atexit.register(_close, comm.Dup())


def _close(comm: MPI.Comm) -> None:
    """At exit (before MPI finalises: atexit runs this before mpi4py's handler): the group's
    ranks leave together and take the group down, or a rank whose peers (rank 0 serves the
    store) are already gone aborts in the group's threads."""
    import torch.distributed as dist

    comm.Barrier()
    if dist.is_initialized():
        dist.destroy_process_group()
    comm.Free()


def make_collectives(comm: MPI.Comm, device: torch.device, backend: str = "mpi") -> Collectives:
    """The collectives a trainer asked for: ``"mpi"`` (default) or ``"torch"``."""
    if backend == "mpi":
        return MPICollectives(comm)
    if backend == "torch":
        return TorchCollectives(comm, device)
    raise ValueError(f"collectives backend must be one of {list(BACKENDS)}, got {backend!r}")


def local_rank() -> int:
    """This rank's index on its node (for picking a GPU)."""
    for var in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0
