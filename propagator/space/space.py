"""Search spaces: named typed parameters, conditions, and the gene vector operators work on.

Every non-constant parameter owns one gene in ``[0, 1]`` (see :mod:`.params` for the
encodings); a point of the space is a fixed-length float vector whatever its types, so
breeding operators never switch on parameter type and records on the wire have a size that
depends only on the number of genes.

A parameter with ``when=`` is active only when its condition holds on the other *active*
parameters (a condition naming an inactive parameter is false), so conditions nest. Inactive
parameters keep a gene, which mutation may change freely, but are absent from decoded params.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import SpaceError
from .conditions import evaluation_order, is_active
from .params import (
    PARAM_CLASSES,
    Categorical,
    Constant,
    Float,
    Int,
    Param,
    choice_key,
    param_from_dict,
)
from .reachability import check_reachable


class Space:
    """A search space: named parameters, some conditional, mapped to a vector of genes.

    Args:
        params: parameter name -> ``Float``/``Int``/``Categorical``/``Constant``. A plain
            value (not a parameter) becomes a ``Constant``. Order is kept: it is the gene order.

    Raises:
        SpaceError: a parameter is ill-defined (``low >= high``, ``log`` with ``low <= 0``, no
            choices, ...), a condition names an unknown parameter, the conditions form a
            cycle, or a condition can never hold (:mod:`.reachability`); the message names
            the parameter. Parameters are checked here, where their names are known, not
            when ``Float(...)`` etc. are created.

    Example:
        >>> space = Space({"depth": Int(1, 4), "width3": Int(8, 64, log=True, when="depth >= 3")})
        >>> space.decode(space.encode({"depth": 2}))
        {'depth': 2}
    """

    def __init__(self, params: Mapping[str, Param | Any]) -> None:
        if not isinstance(params, Mapping):
            raise SpaceError(
                f"a space is a mapping of name -> parameter, got {type(params).__name__}"
            )
        if not params:
            raise SpaceError("a space needs at least one parameter")
        self._params: dict[str, Param] = {}
        for name, p in params.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise SpaceError(f"parameter names must be identifiers, but got {name!r}")
            p = p if isinstance(p, PARAM_CLASSES) else Constant(p)
            try:
                self._params[name] = p._validated()
            except SpaceError as exc:
                raise SpaceError(f"parameter {name!r}: {exc}") from None
        self._order = evaluation_order(self._params)
        self._genes = [n for n, p in self._params.items() if not isinstance(p, Constant)]
        self._gene_index = {n: i for i, n in enumerate(self._genes)}
        # (name, param, gene index or -1 for constants) in evaluation order
        self._plan = [(n, self._params[n], self._gene_index.get(n, -1)) for n in self._order]
        self._reordered = self._order != list(self._params)
        self._check_conditions_evaluate()
        check_reachable(self._params, self._order)

    # --- structure ---------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Param]:
        """The parameters by name (a copy)."""
        return dict(self._params)

    @property
    def genes(self) -> list[str]:
        """Names of the parameters that own a gene, in gene order."""
        return list(self._genes)

    @property
    def dim(self) -> int:
        """Number of genes (non-constant parameters, active or not)."""
        return len(self._genes)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        # repr, as __hash__: == on dicts would equate 1, 1.0 and True, and ignore gene order
        return isinstance(other, Space) and repr(self.to_dict()) == repr(other.to_dict())

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return f"Space({self._params!r})"

    # --- encoding ----------------------------------------------------------------------------
    def decode(self, genes: np.ndarray) -> dict[str, Any]:
        """Map a gene vector to the params the objective sees (active parameters only).

        Genes outside ``[0, 1]`` are clipped (NaN counts as 0), so any vector an operator
        produced decodes to a valid point. Keys come in the order the space was defined.
        """
        if len(genes) != len(self._genes):
            raise SpaceError(f"expected {len(self._genes)} genes, but got {len(genes)}")
        u = genes.tolist() if isinstance(genes, np.ndarray) else list(genes)
        values: dict[str, Any] = {}
        for name, p, i in self._plan:
            if p.when is not None and not is_active(name, p.when, values):
                continue
            if i < 0:
                values[name] = p.value
            else:
                x = u[i]
                values[name] = p.decode(x if 0.0 <= x <= 1.0 else (1.0 if x > 1.0 else 0.0))
        if self._reordered:
            return {n: values[n] for n in self._params if n in values}
        return values

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map params (active parameters only) to genes; inactive genes are set to 0.5.

        Raises:
            SpaceError: a value is out of range, a parameter is missing or unknown, or a
                parameter is given although its condition does not hold.
        """
        unknown = set(params) - self._params.keys()
        if unknown:
            raise SpaceError(
                f"unknown parameter(s) {sorted(unknown)}; the space has {list(self._params)}"
            )
        genes = np.full(len(self._genes), 0.5)
        active: dict[str, Any] = {}
        for name in self._order:
            p = self._params[name]
            if not is_active(name, p.when, active):
                if name in params:
                    raise SpaceError(
                        f"parameter {name!r} is given but inactive ({p.when.expression!r} is false)"
                    )
                continue
            if name not in params:
                if isinstance(p, Constant):
                    active[name] = p.value
                    continue
                raise SpaceError(f"parameter {name!r} is missing")
            if isinstance(p, Constant):
                if choice_key(params[name]) != choice_key(p.value):
                    raise SpaceError(
                        f"parameter {name!r} is the constant {p.value!r}, got {params[name]!r}"
                    )
            else:
                try:
                    genes[self._gene_index[name]] = p.encode(params[name])
                except SpaceError as exc:
                    raise SpaceError(f"parameter {name!r}: {exc}") from None
            active[name] = params[name]
        return genes

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random gene vector (log parameters are log-uniform)."""
        return rng.random(len(self._genes))

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A plain, JSON- and YAML-safe description that :meth:`from_dict` reads back."""
        out: dict[str, dict[str, Any]] = {}
        for name, p in self._params.items():
            d: dict[str, Any] = {"type": p.kind}
            if isinstance(p, (Float, Int)):
                d.update(low=p.low, high=p.high, log=p.log)
            elif isinstance(p, Categorical):
                d["choices"] = list(p.choices)
            else:
                d["value"] = p.value
            if p.when is not None:
                d["when"] = p.when.expression
            out[name] = d
        return out

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Space:
        """Build a space from the search-file form.

        Each entry is ``{type: float|int|categorical|constant, ...}`` with ``low``/``high``/
        ``log``, ``choices`` or ``value``, and an optional ``when``; a parameter object is
        taken as is, any other value is a constant. Numbers written as strings are accepted
        (PyYAML reads ``1e-5`` as a string).

        Raises:
            SpaceError: naming the parameter and what is wrong with it.
        """
        if not isinstance(spec, Mapping):
            raise SpaceError(
                f"a space is a mapping of name -> parameter, got {type(spec).__name__}"
            )
        params: dict[str, Any] = {}
        for name, entry in spec.items():
            try:
                params[name] = param_from_dict(entry)
            except SpaceError as exc:
                raise SpaceError(f"parameter {name!r}: {exc}") from None
        return cls(params)

    # --- validation --------------------------------------------------------------------------
    def _check_conditions_evaluate(self) -> None:
        """Decode a few points, so that a condition that fails to evaluate surfaces now."""
        if any(p.when is not None for p in self._params.values()):
            rng = np.random.default_rng(0)
            for genes in (np.zeros(self.dim), np.ones(self.dim), *rng.random((16, self.dim))):
                self.decode(genes)
