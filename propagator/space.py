"""Search spaces: typed parameters, conditions, and the encoding the operators work on.

Every non-constant parameter owns one gene in ``[0, 1]``; a point of the space is a fixed-length
float vector whatever its types, so breeding operators never switch on parameter type and
records on the wire have a size that depends only on the number of genes.

* ``Float``: ``u -> low + u (high - low)``, or log-uniform with ``log=True``.
* ``Int``: equal-probability bins over ``low..high`` (log-sized bins with ``log=True``);
  a gene decodes to a Python ``int`` inside the bounds.
* ``Categorical``: ``m`` equal bins, decoding to the choice object itself.
* ``Constant``: no gene; always present (when its condition holds).

A parameter with ``when=`` is active only when its condition holds on the other *active*
parameters (a condition naming an inactive parameter is false), so conditions nest. Inactive
parameters keep a gene, which mutation may change freely, but are absent from decoded params.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .conditions import Condition
from .errors import SpaceError

Scalar = str | int | float | bool | None


def _is_real(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _condition(when: str | Condition | None) -> Condition | None:
    if when is None or isinstance(when, Condition):
        return when
    return Condition(when)


@dataclass(frozen=True)
class Float:
    """A real parameter in ``[low, high]``.

    Args:
        low: lower bound (inclusive).
        high: upper bound (inclusive); ``low < high`` must hold.
        log: sample and mutate on a log scale (needs ``low > 0``). Default ``False``.
        when: condition on other parameters under which this one is active, e.g. ``"opt == 'sgd'"``.
    """

    low: float
    high: float
    log: bool = False
    when: str | Condition | None = None
    kind: ClassVar[str] = "float"

    def _validated(self) -> Float:
        _check_bounds(self.low, self.high, self.log, integer=False)
        return Float(float(self.low), float(self.high), self.log, _condition(self.when))

    def decode(self, u: float) -> float:
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            x = math.exp(a + u * (b - a))
        else:
            x = self.low + u * (self.high - self.low)
        return min(max(x, self.low), self.high)

    def encode(self, x: Any) -> float:
        if not _is_real(x) or not self.low <= x <= self.high:
            raise SpaceError(f"expected a number in [{self.low}, {self.high}], but got {x!r}")
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            return (math.log(x) - a) / (b - a)
        return (x - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Int:
    """An integer parameter in ``low..high`` (both inclusive).

    Args:
        low: smallest value.
        high: largest value; ``low < high`` must hold.
        log: log-sized bins, so small values are as likely per octave as large ones (needs
            ``low >= 1``). Default ``False``.
        when: condition on other parameters under which this one is active, e.g. ``"depth >= 3"``.
    """

    low: int
    high: int
    log: bool = False
    when: str | Condition | None = None
    kind: ClassVar[str] = "int"

    def _validated(self) -> Int:
        _check_bounds(self.low, self.high, self.log, integer=True)
        return Int(int(self.low), int(self.high), self.log, _condition(self.when))

    def _log_edges(self) -> tuple[float, float]:
        return math.log(self.low - 0.5), math.log(self.high + 0.5)

    def decode(self, u: float) -> int:
        if self.log:
            a, b = self._log_edges()
            x = math.floor(math.exp(a + u * (b - a)) + 0.5)
        else:
            x = self.low + math.floor(u * (self.high - self.low + 1))
        return min(max(int(x), self.low), self.high)

    def encode(self, x: Any) -> float:
        # range first: it rules out inf and nan, on which int(x) would raise
        if not _is_real(x) or not self.low <= x <= self.high or x != int(x):
            raise SpaceError(f"expected an integer in {self.low}..{self.high}, but got {x!r}")
        if self.log:
            a, b = self._log_edges()
            return (math.log(x) - a) / (b - a)
        return (int(x) - self.low + 0.5) / (self.high - self.low + 1)


@dataclass(frozen=True)
class Categorical:
    """One of a list of choices (strings, numbers, booleans or null, as in YAML).

    Decoding returns the choice object itself. ``1``, ``1.0`` and ``True`` count as
    different choices.

    Args:
        choices: the non-empty list of distinct choices.
        when: condition on other parameters under which this one is active.
    """

    choices: tuple[Scalar, ...]
    when: str | Condition | None = None
    kind: ClassVar[str] = "categorical"

    def _validated(self) -> Categorical:
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Sequence):
            raise SpaceError(f"choices must be a list, but got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise SpaceError("choices must not be empty")
        for c in choices:
            if c is not None and not isinstance(c, (str, int, float, bool)):
                raise SpaceError(f"choices must be strings, numbers, booleans or null, got {c!r}")
        keys = [_choice_key(c) for c in choices]
        if len(set(keys)) != len(keys):
            dup = next(c for c, k in zip(choices, keys, strict=True) if keys.count(k) > 1)
            raise SpaceError(f"choices must be distinct, but {dup!r} appears twice")
        return Categorical(choices, _condition(self.when))

    def decode(self, u: float) -> Scalar:
        m = len(self.choices)
        return self.choices[min(max(int(u * m), 0), m - 1)]

    def encode(self, x: Any) -> float:
        key = _choice_key(x)
        for i, c in enumerate(self.choices):
            if _choice_key(c) == key:
                return (i + 0.5) / len(self.choices)
        raise SpaceError(f"expected one of {list(self.choices)!r}, but got {x!r}")


@dataclass(frozen=True)
class Constant:
    """A fixed value, passed to the objective as is (when its condition holds); no gene."""

    value: Any
    when: str | Condition | None = None
    kind: ClassVar[str] = "constant"

    def _validated(self) -> Constant:
        return Constant(self.value, _condition(self.when))


Param = Float | Int | Categorical | Constant
_PARAM_TYPES = {"float": Float, "int": Int, "categorical": Categorical, "constant": Constant}


def _choice_key(c: object) -> tuple[str, object]:
    return (type(c).__name__, c)


def _check_bounds(low: Any, high: Any, log: Any, *, integer: bool) -> None:
    kind = "an integer" if integer else "a finite number"
    for name, v in (("low", low), ("high", high)):
        # abs(v) <= max first: math.isfinite raises OverflowError on ints beyond float range
        ok = _is_real(v) and abs(v) <= sys.float_info.max and math.isfinite(v)
        if not ok or (integer and v != int(v)):
            raise SpaceError(f"{name} must be {kind}, but got {v!r}")
    if not isinstance(log, bool):
        raise SpaceError(f"log must be true or false, but got {log!r}")
    if not low < high:
        raise SpaceError(f"low < high must hold, but got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise SpaceError(f"log=True needs low > 0, but got low={low!r}")
    edges = (low - 0.5, high + 0.5) if integer else (low, high)  # as decode's
    if log and not math.log(edges[0]) < math.log(edges[1]):  # else encode divides by zero
        raise SpaceError(f"low={low!r}, high={high!r} are too close for a log scale")
    if not math.isfinite(float(high) - float(low)):  # decoding would give nan or inf
        raise SpaceError(f"high - low must be a finite number, but got low={low!r}, high={high!r}")


class Space:
    """A search space: named parameters, some conditional, mapped to a vector of genes.

    Args:
        params: parameter name -> ``Float``/``Int``/``Categorical``/``Constant``. A plain
            value (not a parameter) becomes a ``Constant``. Order is kept: it is the gene order.

    Raises:
        SpaceError: a parameter is ill-defined (``low >= high``, ``log`` with ``low <= 0``, no
            choices, ...), a condition names an unknown parameter, or the conditions form a
            cycle; the message names the parameter. Parameters are checked here, where their
            names are known, not when ``Float(...)`` etc. are created.

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
            p = p if isinstance(p, _PARAM_TYPES_TUPLE) else Constant(p)
            try:
                self._params[name] = p._validated()
            except SpaceError as exc:
                raise SpaceError(f"parameter {name!r}: {exc}") from None
        self._check_conditions()
        self._order = self._topological_order()
        self._genes = [n for n, p in self._params.items() if not isinstance(p, Constant)]
        self._gene_index = {n: i for i, n in enumerate(self._genes)}
        # (name, param, gene index or -1 for constants) in evaluation order
        self._plan = [(n, self._params[n], self._gene_index.get(n, -1)) for n in self._order]
        self._reordered = self._order != list(self._params)
        self._check_conditions_evaluate()

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
            if p.when is not None and not _is_active(name, p, values):
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
            if not _is_active(name, p, active):
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
                if _choice_key(params[name]) != _choice_key(p.value):
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
                params[name] = _param_from_dict(entry)
            except SpaceError as exc:
                raise SpaceError(f"parameter {name!r}: {exc}") from None
        return cls(params)

    # --- validation --------------------------------------------------------------------------
    def _check_conditions(self) -> None:
        for name, p in self._params.items():
            if p.when is None:
                continue
            for ref in sorted(p.when.names - self._params.keys()):
                hint = difflib.get_close_matches(ref, list(self._params), n=1)
                fix = f"; did you mean {hint[0]!r}?" if hint else ""
                raise SpaceError(
                    f"parameter {name!r}: condition {p.when.expression!r} names unknown "
                    f"parameter {ref!r}{fix}"
                )

    def _topological_order(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = [*path[path.index(name) :], name]
                raise SpaceError(
                    f"parameter {name!r}: conditions form a cycle {' -> '.join(cycle)}"
                )
            state[name] = 1
            when = self._params[name].when
            for ref in sorted(when.names) if when is not None else ():
                visit(ref, [*path, name])
            state[name] = 2
            order.append(name)

        for name in self._params:
            visit(name, [])
        return order

    def _check_conditions_evaluate(self) -> None:
        """Decode a few points, so that a condition that fails to evaluate surfaces now."""
        if any(p.when is not None for p in self._params.values()):
            rng = np.random.default_rng(0)
            for genes in (np.zeros(self.dim), np.ones(self.dim), *rng.random((16, self.dim))):
                self.decode(genes)


def _is_active(name: str, p: Param, values: dict[str, Any]) -> bool:
    if p.when is None:
        return True
    if not p.when.names <= values.keys():
        return False
    try:
        return p.when.holds(values)
    except Exception as exc:
        shown = {k: values[k] for k in sorted(p.when.names)}
        raise SpaceError(
            f"parameter {name!r}: condition {p.when.expression!r} fails on {shown}: {exc}"
        ) from None


_PARAM_TYPES_TUPLE = (Float, Int, Categorical, Constant)

_KEYS = {
    "float": {"type", "low", "high", "log", "when"},
    "int": {"type", "low", "high", "log", "when"},
    "categorical": {"type", "choices", "when"},
    "constant": {"type", "value", "when"},
}


def _param_from_dict(entry: Any) -> Param:
    if isinstance(entry, _PARAM_TYPES_TUPLE):
        return entry
    if not isinstance(entry, Mapping):
        return Constant(entry)
    kind = entry.get("type")
    if not isinstance(kind, str) or kind not in _PARAM_TYPES:
        raise SpaceError(f"type must be one of {sorted(_PARAM_TYPES)}, but got {kind!r}")
    extra = set(entry) - _KEYS[kind]
    if extra:
        raise SpaceError(
            f"unknown key(s) {sorted(extra)} for type {kind}; allowed: {sorted(_KEYS[kind])}"
        )
    args = {k: v for k, v in entry.items() if k != "type"}
    if kind in ("float", "int"):
        for bound in ("low", "high"):
            if bound not in args:
                raise SpaceError(f"type {kind} needs {bound!r}")
            args[bound] = _number(args[bound], bound)
    elif kind == "categorical" and "choices" not in args:
        raise SpaceError("type categorical needs 'choices'")
    elif kind == "constant" and "value" not in args:
        raise SpaceError("type constant needs 'value'")
    return _PARAM_TYPES[kind](**args)


def _number(v: Any, what: str) -> Any:
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            raise SpaceError(f"{what} must be a number, but got {v!r}") from None
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    return v
