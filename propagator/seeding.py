"""What a search starts from besides its strategies: the ``initial`` configurations and the
warm start's settings.

``initial`` configurations are evaluated first, with exactly the values given. A float's gene
in ``[0, 1]`` cannot hold every value of its range: the decoded genes of a float of a linear
range miss a few values in ten where the range does not start at 0 (``0.302062`` in ``[0.1,
0.5]`` comes back as ``0.30206199999999994``) and those of a log range most of them (``3e-4``
in ``[1e-5, 0.1]`` as ``0.0003000000000000001``), whatever the gene. So the objective is handed
the given values themselves (:func:`exact_params`); the genes place the configuration for the
strategies and the store (whose records show the decoded values).

A warm start (:class:`WarmStart`) names its source, and may give values for parameters the
source's records lack (``fill``), e.g. one added to the space since the earlier search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np

from .errors import ConfigError, SpaceError
from .space import Constant, Float, Space


@dataclass(frozen=True)
class WarmStart:
    """Another search's evaluations to seed this one's islands with.

    Args:
        source: a run directory, a ``.csv``/``.jsonl`` export, or an Optuna storage
            (``sqlite:///x.db``, ``x.db``, a journal file; ``STORAGE#STUDY`` names a study).
        fill: parameter -> value for the records that lack the parameter (say, one added to
            the space since); a record's own value wins. Default: none.
    """

    source: str
    fill: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> str | dict[str, Any]:
        """The search-file form: the source alone without ``fill`` (as runs have stored it)."""
        if not self.fill:
            return self.source
        return {"from": self.source, "fill": dict(self.fill)}

    def check(self, space: Space) -> None:
        """Raise :class:`ConfigError` unless each ``fill`` value is a value of its parameter."""
        for name, value in self.fill.items():
            p = space.params.get(name)
            if p is None:
                raise ConfigError(
                    f"warm_start.fill.{name}: the space has no parameter {name!r}; it has "
                    f"{', '.join(space.params)}"
                )
            if isinstance(p, Constant):
                raise ConfigError(
                    f"warm_start.fill.{name}: {name} is the constant {p.value!r} in this space; "
                    "records without it get it anyway (leave it out of fill)"
                )
            try:
                p.encode(value)
            except SpaceError as exc:
                raise ConfigError(f"warm_start.fill.{name}: {exc}") from None


def warm_start_from(
    spec: WarmStart | str | PathLike | Mapping[str, Any] | None,
) -> WarmStart | None:
    """A :class:`WarmStart` from a source (``"runs/earlier"``), its mapping form
    (``{"from": "runs/earlier", "fill": {"depth": 3}}``) or ``None`` (no warm start).

    Raises:
        ConfigError: none of these, or an unknown key.
    """
    if spec is None or isinstance(spec, WarmStart):
        return spec
    if isinstance(spec, (str, PathLike)):
        return WarmStart(str(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(
            "warm_start must be a run directory, an export file, an Optuna storage or "
            f"{{from: SOURCE, fill: {{PARAM: VALUE}}}}, got {spec!r}"
        )
    unknown = sorted(set(spec) - {"from", "fill"}, key=str)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in warm_start; known: fill, from")
    source, fill = spec.get("from"), spec.get("fill") or {}
    if not isinstance(source, (str, PathLike)) or not str(source):
        raise ConfigError(f"warm_start.from must be the source to read, got {source!r}")
    if not isinstance(fill, Mapping):
        raise ConfigError(f"warm_start.fill must map parameters to values, got {fill!r}")
    return WarmStart(str(source), dict(fill))


def initial_genes(configs: Sequence[Mapping[str, Any]], space: Space) -> np.ndarray:
    """The ``initial`` configurations as genes, one row each, in order.

    Raises:
        ConfigError: one is not a point of ``space`` or repeats an earlier one.
    """
    genes = np.zeros((len(configs), space.dim))
    for i, config in enumerate(configs):
        try:
            genes[i] = space.encode(config)
        except SpaceError as exc:
            raise ConfigError(f"initial[{i}]: {exc}") from None
        decoded = space.decode(genes[i])
        for j in range(i):
            if space.decode(genes[j]) == decoded:
                raise ConfigError(f"initial[{i}] repeats initial[{j}]")
    return genes


def exact_params(
    configs: Sequence[Mapping[str, Any]], rows: np.ndarray, space: Space, genes: np.ndarray
) -> dict[str, Any]:
    """The params of ``genes``: where they are an ``initial`` configuration's (``rows``, from
    :func:`initial_genes`), its floats as given; else ``space.decode(genes)``."""
    params = space.decode(genes)
    for config, row in zip(configs, rows, strict=True):
        if np.array_equal(row, genes):
            kinds = space.params
            given = {
                n: float(config[n]) for n in params if isinstance(kinds[n], Float) and n in config
            }
            return {**params, **given}
    return params
