"""How islands exchange records: the migration settings and their topology matrix."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ConfigError

TOPOLOGIES = ("fully_connected", "ring")
# Target islands per emigration, at most, by default: fully connected is unchanged up to 4
# islands; beyond, migration costs at most 3 x probability messages per evaluation instead of
# (islands - 1) x probability (32 ranks in 16 islands: 13.5 messages per evaluation).
TARGETS = 3


@dataclass(frozen=True)
class Migration:
    """Exchange between islands.

    Args:
        probability: chance that an island sends migrants per round of its workers' evaluations
            (each worker emigrates with ``probability / workers on its island`` after an
            evaluation). Default 0.9, as Propulate.
        topology: ``"fully_connected"`` (default), ``"ring"`` or a square matrix whose entry
            ``[i][j]`` is the number of migrants island ``i`` sends island ``j``.
        migrants: migrants per target island for the named topologies (default 1).
        pollination: send copies (True, default) or move individuals (False).
        targets: target islands per emigration, at most (default 3): where the topology
            gives an island more, each emigration goes to this many of them, drawn at random
            (without repeats), so that messages per evaluation stay bounded at any number of
            islands. To send to every target every time, set it to the number of islands.
    """

    probability: float = 0.9
    topology: str | tuple[tuple[int, ...], ...] = "fully_connected"
    migrants: int = 1
    pollination: bool = True
    targets: int = TARGETS

    def __post_init__(self) -> None:
        p = self.probability
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ConfigError(f"migration.probability must be in [0, 1], got {p!r}")
        m = self.migrants
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise ConfigError(f"migration.migrants must be a positive integer, got {m!r}")
        t = self.targets
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise ConfigError(f"migration.targets must be a positive integer, got {t!r}")
        if not isinstance(self.pollination, bool):
            raise ConfigError(
                f"migration.pollination must be true or false, got {self.pollination!r}"
            )
        t = self.topology
        if isinstance(t, str):
            if t not in TOPOLOGIES:
                raise ConfigError(
                    f"migration.topology must be one of {list(TOPOLOGIES)} or a matrix, got {t!r}"
                )
        else:
            object.__setattr__(self, "topology", _matrix(t))

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values; ``targets`` only when not the default, so that a
        run stored before the setting existed resumes unchanged."""
        out = {**asdict(self), "topology": json.loads(json.dumps(self.topology))}
        if self.targets == TARGETS:
            del out["targets"]
        return out

    def row(self, n_islands: int, island: int) -> np.ndarray:
        """Migrant counts from ``island`` to each of ``n_islands`` islands (its row of
        :meth:`matrix`, without building the matrix: 8 x islands² bytes per rank)."""
        if isinstance(self.topology, str):
            to = np.zeros(n_islands, dtype=np.int64)
            if self.topology == "fully_connected":
                to[:] = self.migrants
                to[island] = 0
            elif n_islands > 1:
                to[(island + 1) % n_islands] = self.migrants
            return to
        return self.matrix(n_islands)[island]

    def matrix(self, n_islands: int) -> np.ndarray:
        """Migrant counts ``[from, to]`` for ``n_islands`` islands."""
        if self.topology == "fully_connected":
            return self.migrants * (1 - np.eye(n_islands, dtype=np.int64))
        if self.topology == "ring":
            m = np.zeros((n_islands, n_islands), dtype=np.int64)
            if n_islands > 1:
                m[np.arange(n_islands), (np.arange(n_islands) + 1) % n_islands] = self.migrants
            return m
        m = np.array(self.topology, dtype=np.int64)
        if m.shape != (n_islands, n_islands):
            raise ConfigError(
                f"migration.topology is a {m.shape[0]}x{m.shape[1]} matrix but there are "
                f"{n_islands} islands; it must be {n_islands}x{n_islands}"
            )
        return m


def _matrix(t: Any) -> tuple[tuple[int, ...], ...]:
    if not isinstance(t, Sequence) or not t or not all(isinstance(r, Sequence) for r in t):
        raise ConfigError(f"migration.topology must be a name or a square matrix, got {t!r}")
    rows = tuple(tuple(r) for r in t)
    if any(len(r) != len(rows) for r in rows):
        raise ConfigError("migration.topology must be a square matrix")
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"migration.topology[{i}][{j}] must be a count >= 0, got {v!r}")
            if i == j and v:
                raise ConfigError(
                    f"migration.topology[{i}][{i}] must be 0: an island cannot migrate to itself"
                )
    return tuple(tuple(int(v) for v in r) for r in rows)


def migration_from(spec: Migration | Mapping[str, Any] | None) -> Migration:
    if spec is None:
        return Migration()
    if isinstance(spec, Migration):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"migration must be a mapping or a propagator.Migration, got {spec!r}")
    unknown = set(spec) - set(Migration.__dataclass_fields__)
    if unknown:
        raise ConfigError(
            f"unknown migration setting(s) {sorted(unknown)}; "
            f"known: {sorted(Migration.__dataclass_fields__)}"
        )
    return Migration(**spec)
