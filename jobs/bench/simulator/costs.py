"""The costs the simulator charges, as measured by ``jobs/bench/_sim_costs.py`` (``costs.json``).

All times in seconds. Breeding costs are tabulated against the records a worker's island view
has been told (:attr:`Costs.history`) and interpolated linearly in that count (flat past the
last point: the bounded view keeps the strategies' histories capped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COSTS = Path(__file__).parent / "costs.json"


@dataclass(frozen=True)
class Costs:
    """Measured costs (see ``jobs/bench/_sim_costs.py`` for how each is measured).

    Attributes:
        latency: one-way time of a message, s.
        per_byte: one-way time per byte of a message, s.
        send_cpu: the sender's CPU per message, s.
        recv_cpu: the receiver's CPU per message, s.
        atomic: round trip of an atomic on another rank's window (a ticket claim, a claim
            probe), s.
        loop: the engine's own CPU per evaluation beyond breeding, s.
        history: told records at which the breeding costs were measured.
        own: per strategy, CPU of ``propose`` + ``learn`` of one evaluation at each history, s.
        absorb: per strategy, CPU of ``absorb`` per received record at each history, s.
        rank_base: resident memory of a rank before the search (imports done), bytes.
    """

    latency: float
    per_byte: float
    send_cpu: float
    recv_cpu: float
    atomic: float
    loop: float
    history: tuple[int, ...]
    own: dict[str, tuple[float, ...]]
    absorb: dict[str, tuple[float, ...]]
    rank_base: float

    @classmethod
    def load(cls, path: Path = COSTS) -> Costs:
        """The costs written by ``_sim_costs.py``."""
        raw = json.loads(Path(path).read_text())
        strategies = [k[: -len("_own")] for k in raw if k.endswith("_own")]
        return cls(
            latency=raw["latency"],
            per_byte=raw["per_byte"],
            send_cpu=raw["send_cpu"],
            recv_cpu=raw["recv_cpu"],
            atomic=raw["atomic"],
            loop=raw["loop"],
            history=tuple(raw["history"]),
            own={s: tuple(raw[f"{s}_own"]) for s in strategies},
            absorb={s: tuple(raw[f"{s}_absorb"]) for s in strategies},
            rank_base=raw["rank_base"],
        )

    def breeding(self, strategy: str, told: int) -> tuple[float, float]:
        """CPU of one evaluation's ``propose`` + ``learn`` and of ``absorb`` per record, for
        a view told ``told`` records."""
        own = float(np.interp(told, self.history, self.own[strategy]))
        return own, float(np.interp(told, self.history, self.absorb[strategy]))

    def transit(self, nbytes: int) -> float:
        """One-way time of a message of ``nbytes``."""
        return self.latency + nbytes * self.per_byte
