"""The ``pbt`` settings."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError, SpaceError
from ..space import Constant, Space


@dataclass(frozen=True)
class PBT:
    """Population-based training: how members exploit and explore (see :mod:`propagator.pbt`).

    Args:
        mutable: the parameters that may change during a training (the others stay as a
            member started); at least one, each a searched (not constant) parameter.
        interval: steps (``trial.report`` calls) per segment, between two chances to exploit
            (default 2).
        quantile: the share of the island's members at the bottom that copy one at the top,
            and the share at the top they copy from (default 0.25; in ``(0, 0.5]``).
        perturb: the factors a float parameter is multiplied by, one drawn at random
            (default ``(0.8, 1.2)``); an int or a category moves to a neighbour instead.
        resample: the probability that a mutable parameter is drawn anew from its range
            rather than perturbed (default 0.25).
        replay: a fixed schedule every member follows instead, from scratch and without
            copying (``propagate replay`` writes it from a run's winner): ``(first step,
            params)`` pairs, the first at step 1, the steps increasing (default none).
    """

    mutable: tuple[str, ...]
    interval: int = 2
    quantile: float = 0.25
    perturb: tuple[float, float] = (0.8, 1.2)
    resample: float = 0.25
    replay: tuple[tuple[int, Mapping[str, Any]], ...] = ()

    def __post_init__(self) -> None:
        mutable = self.mutable
        if isinstance(mutable, str) or not isinstance(mutable, Sequence) or not mutable:
            raise ConfigError(
                f"pbt.mutable must list the parameters that may change during training, got "
                f"{mutable!r}"
            )
        object.__setattr__(self, "mutable", tuple(str(m) for m in mutable))
        interval = self.interval
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise ConfigError(f"pbt.interval must be an integer >= 1 (steps), got {interval!r}")
        if not _real(self.quantile) or not 0 < self.quantile <= 0.5:
            raise ConfigError(f"pbt.quantile must be in (0, 0.5], got {self.quantile!r}")
        if not _real(self.resample) or not 0 <= self.resample <= 1:
            raise ConfigError(f"pbt.resample must be a probability, got {self.resample!r}")
        perturb = self.perturb
        if (
            isinstance(perturb, str)
            or not isinstance(perturb, Sequence)
            or len(perturb) < 1
            or not all(_real(f) and f > 0 for f in perturb)
        ):
            raise ConfigError(f"pbt.perturb must list positive factors, got {perturb!r}")
        object.__setattr__(self, "perturb", tuple(float(f) for f in perturb))
        object.__setattr__(self, "replay", _replay(self.replay))

    def check(self, space: Space) -> None:
        """Raise :class:`ConfigError` unless every mutable parameter is searched in ``space``."""
        for name in self.mutable:
            param = space.params.get(name)
            if param is None:
                raise ConfigError(
                    f"pbt.mutable names {name!r}, which is not a parameter of the space "
                    f"{list(space.params)}"
                )
            if isinstance(param, Constant):
                raise ConfigError(f"pbt.mutable names {name!r}, a constant: it cannot change")
        for i, (_, params) in enumerate(self.replay):
            try:
                space.encode(params)
            except SpaceError as exc:
                raise ConfigError(f"pbt.replay[{i}]: {exc}") from None

    def stretch(self, step: int) -> tuple[Mapping[str, Any], int | None]:
        """With ``replay``: the params a training trains step ``step`` with, and the last
        step it keeps them for (``None``: to its end)."""
        starts = [first for first, _ in self.replay]
        k = max(i for i, first in enumerate(starts) if first <= step)
        return self.replay[k][1], starts[k + 1] - 1 if k + 1 < len(starts) else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        replay = [{"step": first, "params": dict(params)} for first, params in self.replay]
        return {
            **out,
            "mutable": list(self.mutable),
            "perturb": list(self.perturb),
            "replay": replay,
        }


def _replay(entries: Any) -> tuple[tuple[int, dict[str, Any]], ...]:
    """``pbt.replay`` as ``(first step, params)`` pairs (given as such, or as ``{step,
    params}`` mappings, as a search file has them)."""
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence):
        raise ConfigError(f"pbt.replay must be a list of {{step, params}}, got {entries!r}")
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, Mapping) and set(entry) == {"step", "params"}:
            entry = (entry["step"], entry["params"])
        ok = isinstance(entry, Sequence) and len(entry) == 2 and isinstance(entry[1], Mapping)
        if not ok or not isinstance(entry[0], int) or isinstance(entry[0], bool):
            raise ConfigError(
                f"pbt.replay[{i}] must be {{step: N, params: {{...}}}}, got {entry!r}"
            )
        out.append((int(entry[0]), dict(entry[1])))
    steps = [first for first, _ in out]
    if out and (steps[0] != 1 or any(b <= a for a, b in itertools.pairwise(steps))):
        raise ConfigError(f"pbt.replay's steps must start at 1 and increase, got {steps}")
    return tuple(out)


def _real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def make_pbt(spec: Mapping[str, Any] | PBT | None) -> PBT | None:
    """A :class:`PBT` from a search file's ``pbt`` mapping (``None``: no PBT).

    Raises:
        ConfigError: an unknown key or a bad value, naming it.
    """
    if spec is None or isinstance(spec, PBT):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"pbt must be a mapping of settings, got {spec!r}")
    known = set(PBT.__dataclass_fields__)
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"pbt has unknown setting(s) {unknown}; known: {sorted(known)}")
    if "mutable" not in spec:
        raise ConfigError("pbt.mutable is missing: list the parameters that may change")
    return PBT(**spec)
