"""A linear chain of stages on a worker's ranks, for the layer-parallel trainers (``mac``,
``auxnet``, ``ddg``, ``fr``): stage ``s`` holds one group of layers and talks to its
neighbours only.

Stages sit on ranks in contiguous blocks: with ``P`` ranks and ``K >= P`` stages each rank holds
``floor(K / P)`` or ``ceil(K / P)`` neighbouring stages; with ``K < P`` rank ``s`` holds stage
``s`` and ranks ``K .. P-1`` hold none (they only take part in :meth:`Chain.share`). One rank
holds every stage and runs the method sequentially.

Stages exchange tensors over named channels. A message is a copy of the sender's tensor, so the
sender may go on changing it at once; between two stages of one rank the copy is handed over in
memory, between ranks it is a point-to-point message of the worker's collectives, counted in
``bytes_sent``. Every channel is first-in first-out either way (MPI
never lets messages with the same source and tag overtake each other), so a trainer that runs
its stages in one fixed order computes the same numbers on one rank as on many.

Sends never block (they complete at :meth:`Chain.flush`); receives do. A schedule in which
every receive waits for a send that comes earlier in the sequential order cannot deadlock.
Waiting polls with a growing sleep (:func:`trainers.collectives.wait`): a rank waiting for its
neighbour, or idle, leaves the core to those that compute.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch

from propagator import ConfigError

from .collectives import Collectives, Request, wait

_TAG_LIMIT = 32767  # the smallest MPI_TAG_UB the MPI standard allows


def owners(stages: int, ranks: int) -> list[int]:
    """The rank of each stage: contiguous blocks as even as possible, lower ranks first."""
    if stages >= ranks:
        return [s * ranks // stages for s in range(stages)]
    return list(range(stages))


class Chain:
    """``stages`` stages on the ranks of ``comm`` with the message ``channels`` a trainer uses.

    Args:
        comm: the worker's collectives (``trial.comm`` wrapped by :func:`trainers.framework.setup`).
        stages: number of stages K (>= 1).
        channels: names of the kinds of message the trainer sends, e.g. ``("z", "grad")``; the
            same on every rank.
    """

    def __init__(self, comm: Collectives, stages: int, channels: Sequence[str]) -> None:
        if stages < 1:
            raise ConfigError(f"a chain needs at least one stage, got {stages}")
        if len(channels) * stages * stages >= _TAG_LIMIT:
            raise ConfigError(f"{stages} stages are too many for the chain's message tags")
        self.comm = comm
        self.stages = stages
        self.owner = owners(stages, comm.size)
        self.mine = [s for s in range(stages) if self.owner[s] == comm.rank]
        self._channels = {name: i for i, name in enumerate(channels)}
        self._local: dict[tuple[int, int, int], deque[torch.Tensor]] = {}
        self._pending: list[tuple[Request, torch.Tensor]] = []
        self.bytes_by_channel = dict.fromkeys(channels, 0)  # sent to other ranks

    @property
    def last(self) -> int:
        return self.stages - 1

    def holds(self, stage: int) -> bool:
        return 0 <= stage < self.stages and self.owner[stage] == self.comm.rank

    def _tag(self, channel: str, src: int, dst: int) -> int:
        return (self._channels[channel] * self.stages + src) * self.stages + dst

    def send(self, channel: str, src: int, dst: int, tensor: torch.Tensor) -> None:
        """Send ``tensor`` from stage ``src`` (held here) to stage ``dst``."""
        # a copy either way: the sender may change its tensor at once, even before an MPI send
        # has completed
        tensor = tensor.detach().clone(memory_format=torch.contiguous_format)
        if self.holds(dst):
            self._local.setdefault((self._channels[channel], src, dst), deque()).append(tensor)
            return
        self.bytes_by_channel[channel] += tensor.numel() * tensor.element_size()
        request = self.comm.isend(tensor, self.owner[dst], self._tag(channel, src, dst))
        self._pending.append((request, tensor))

    def recv(
        self,
        channel: str,
        src: int,
        dst: int,
        shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """The next tensor stage ``src`` sent to stage ``dst`` (held here) on ``channel``;
        ``shape`` and ``dtype`` are what the sender sent (the receiver knows them, so no
        header travels)."""
        if self.holds(src):
            queue = self._local.get((self._channels[channel], src, dst))
            if not queue:
                raise RuntimeError(f"stage {dst} waits for {channel!r} that stage {src} never sent")
            return queue.popleft()
        tensor = torch.empty(tuple(shape), dtype=dtype, device=device)
        wait(self.comm.irecv_(tensor, self.owner[src], self._tag(channel, src, dst)))
        return tensor

    def flush(self) -> None:
        """Wait until every send of this rank has completed."""
        for request, _ in self._pending:
            wait(request)
        self._pending.clear()

    def share(self, stage: int, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank gets ``tensor`` as the holder of ``stage`` has it (a broadcast; the
        others pass a tensor of the same shape)."""
        self.flush()
        tensor = tensor.contiguous()
        wait(self.comm.ibroadcast_(tensor, root=self.owner[stage]))
        return tensor
