"""Trainer parameters, declared once: each part of a trainer (data, model, optimizer, ...) and
each method lists its params in a :class:`Table` of :class:`Param` (name, kind, default, range
or choices, one line of doc), and a :class:`Trainer` joins the tables of its parts.

The declaration is the one place defaults live: code reads typed, checked values from
:meth:`Table.read` instead of ``params.get(name, default)``. Before any work, the engine calls a
trainer's :meth:`Trainer.check_space` (through ``propagator.engine.evaluation.check_objective``),
which refuses a search that names an unknown param (with "did you mean"), a constant of the
wrong type or out of range, a searched range that leaves the declared one, or a choice that is
not allowed. Messages start with ``parameter 'NAME':``, the form the engine uses for spaces.

A default of ``None`` means "derived": what the code then uses is in ``Param.derived`` (e.g.
"a third of all steps"); such a param also accepts ``null``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from propagator import ConfigError

if TYPE_CHECKING:
    from propagator import Space, Trial

KINDS = ("float", "int", "bool", "choice", "str", "cuts")
_INDEX = re.compile(r"([A-Za-z_]+?)([1-9][0-9]*)$")


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Param:
    """One declared param.

    Attributes:
        name: the key in ``params``.
        kind: ``float``, ``int`` (integral floats such as YAML's ``5.0`` are taken), ``bool``,
            ``choice`` (one of ``choices``, or a path ending in one of ``suffixes``), ``str``,
            or ``cuts`` (an int or an increasing list of ints, e.g. ``split``).
        default: the value when the param is not given; ``None``: derived (see ``derived``).
        doc: one line for the README.
        low, high: the allowed range of a number (``None``: unbounded); ``low_open`` and
            ``high_open`` exclude the end itself.
        choices: the allowed values of a ``choice``.
        suffixes: file endings a ``choice`` also takes as a path (e.g. ``.npz``).
        derived: what a ``None`` default stands for.
        indexed: ``NAME1``, ``NAME2``, ... set it for one layer or group (1-based).
        structural: a paused training resumes only with the value it was paused with (the
            data, the model's shapes, the steps of the run: its saved state depends on them).
    """

    name: str
    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    suffixes: tuple[str, ...] = ()
    derived: str = ""
    indexed: bool = False
    structural: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.default is not None:
            self.check(self.default)
        elif not self.derived:
            raise ValueError(f"{self.name}: a None default needs 'derived' to say what it means")

    # --- checking values -------------------------------------------------------------------
    def check(self, value: Any, name: str | None = None) -> Any:
        """``value`` as the code uses it (a float for a ``float``, ...).

        Raises:
            ConfigError: ``parameter 'NAME': ...`` saying what is allowed.
        """
        if value is None and self.default is None:
            return None
        ok, normal = _CHECKS[self.kind](self, value)
        if not ok:
            raise ConfigError(
                f"parameter {name or self.name!r}: must be {self.requirement()}, got {value!r}"
            )
        return normal

    def _within(self, x: float) -> bool:
        above = self.low is None or (x > self.low if self.low_open else x >= self.low)
        below = self.high is None or (x < self.high if self.high_open else x <= self.high)
        return above and below

    def requirement(self) -> str:
        """What the param takes, in words: ``a number in [0, 1)``, ``one of [...]``."""
        bounds = self.range_text()
        if self.kind == "float":
            return f"a number {bounds}".rstrip()
        if self.kind == "int":
            return f"an integer {bounds}".rstrip()
        if self.kind == "cuts":
            return f"an integer {bounds} or an increasing list of them".rstrip()
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "a string"
        paths = f" or a file ending in {', '.join(self.suffixes)}" if self.suffixes else ""
        return f"one of {list(self.choices)}{paths}"

    def range_text(self) -> str:
        """The allowed range: ``in [0, 1)``, ``>= 1``, ``> 0``; empty when unbounded."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return ""

    def check_searched(self, searched: Any, name: str) -> None:
        """Check a param of the space (a ``Constant``, ``Categorical``, ``Float`` or ``Int``)."""
        from propagator import Categorical, Constant, Float

        if isinstance(searched, Constant):
            self.check(searched.value, name)
        elif isinstance(searched, Categorical):
            for choice in searched.choices:
                self.check(choice, name)
        elif self.kind not in ("float", "int", "cuts"):
            raise ConfigError(
                f"parameter {name!r}: is searched as a range of numbers, but must be "
                f"{self.requirement()}"
            )
        elif isinstance(searched, Float) and self.kind != "float":
            raise ConfigError(
                f"parameter {name!r}: is searched as a float range, but must be "
                f"{self.requirement()}; search it with type int"
            )
        elif not (self._within(searched.low) and self._within(searched.high)):
            raise ConfigError(
                f"parameter {name!r}: the searched range [{_num(searched.low)}, "
                f"{_num(searched.high)}] leaves the allowed range: it must be {self.requirement()}"
            )


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _check_float(p: Param, value: Any) -> tuple[bool, Any]:
    ok = _real(value) and math.isfinite(value) and p._within(value)
    return ok, float(value) if ok else value


def _check_int(p: Param, value: Any) -> tuple[bool, Any]:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    ok = isinstance(value, int) and not isinstance(value, bool) and p._within(value)
    return ok, value


def _check_cuts(p: Param, value: Any) -> tuple[bool, Any]:
    if not isinstance(value, list | tuple):
        return _check_int(p, value)
    checked = [_check_int(p, v) for v in value]
    cuts = [v for _, v in checked]
    ok = bool(cuts) and all(good for good, _ in checked) and cuts == sorted(set(cuts))
    return ok, cuts


def _check_choice(p: Param, value: Any) -> tuple[bool, Any]:
    listed = any(type(value) is type(c) and value == c for c in p.choices)
    path = bool(p.suffixes) and isinstance(value, str) and value.endswith(p.suffixes)
    return listed or path, value


_CHECKS: dict[str, Callable[[Param, Any], tuple[bool, Any]]] = {
    "float": _check_float,
    "int": _check_int,
    "cuts": _check_cuts,
    "bool": lambda p, v: (isinstance(v, bool), v),
    "str": lambda p, v: (isinstance(v, str), v),
    "choice": _check_choice,
}


def _bounds(text: str) -> dict[str, Any]:
    """``Param`` range fields from ``"[0, 1)"``, ``"(0, 1]"``, ``">= 1"``, ``"> 0"``, ``""``."""
    text = text.strip()
    if not text:
        return {}
    if text[0] in "[(":
        low, high = (float(v) for v in text[1:-1].split(","))
        return {"low": low, "high": high, "low_open": text[0] == "(", "high_open": text[-1] == ")"}
    op, _, value = text.partition(" ")
    if op not in (">", ">=", "<", "<="):
        raise ValueError(f"bounds must look like '[0, 1)' or '>= 1', got {text!r}")
    side = "low" if op[0] == ">" else "high"
    return {side: float(value), f"{side}_open": len(op) == 1}


def real(name: str, default: float | None, doc: str, bounds: str = "", **more: Any) -> Param:
    """A ``float`` param; ``bounds`` as ``"[0, 1)"`` or ``">= 0"`` (see :func:`_bounds`)."""
    return Param(name, "float", default, doc, **_bounds(bounds), **more)


def integer(name: str, default: int | None, doc: str, bounds: str = "", **more: Any) -> Param:
    """An ``int`` param (see :func:`real` for ``bounds``)."""
    return Param(name, "int", default, doc, **_bounds(bounds), **more)


def cut_points(name: str, default: Any, doc: str, bounds: str = "", **more: Any) -> Param:
    """A ``cuts`` param: an int or an increasing list of ints."""
    return Param(name, "cuts", default, doc, **_bounds(bounds), **more)


def flag(name: str, default: bool | None, doc: str, **more: Any) -> Param:
    """A ``bool`` param."""
    return Param(name, "bool", default, doc, **more)


def choice(name: str, default: Any, doc: str, choices: tuple[Any, ...], **more: Any) -> Param:
    """A ``choice`` param: one of ``choices`` (or a path ending in ``suffixes=``)."""
    return Param(name, "choice", default, doc, choices=tuple(choices), **more)


def text(name: str, default: str, doc: str) -> Param:
    """A ``str`` param."""
    return Param(name, "str", default, doc)


# --- tables -------------------------------------------------------------------------------------


class Values(Mapping[str, Any]):
    """The checked values of a :class:`Table`: every declared param (given, or its default) and
    any given ``NAMEi`` of an indexed one. A name the table does not declare is a ``KeyError``:
    a typo in the code, not in the user's input."""

    def __init__(self, values: dict[str, Any], table: Table | None = None) -> None:
        self._values = MappingProxyType(values)
        self._table = table

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def indexed(self, name: str, i: int) -> Any:
        """``NAMEi`` if it was given, else ``NAME`` (layer or group ``i``, 1-based)."""
        return self._values.get(f"{name}{i}", self._values[name])

    def per_group(self, name: str, count: int) -> tuple[Any, ...]:
        """:meth:`indexed` for groups ``1 .. count``."""
        return tuple(self.indexed(name, i + 1) for i in range(count))

    def structural(self) -> dict[str, Any]:
        """The values of the table's :attr:`Param.structural` params (a given ``NAMEi`` of an
        indexed one too): what a paused training must resume with."""
        if self._table is None:
            return {}
        return {
            name: value
            for name, value in self._values.items()
            if (param := self._table.find(name)) is not None and param.structural
        }


@dataclass(frozen=True)
class Table:
    """Params of one part of a trainer (or of a whole trainer: the union of its parts).

    Attributes:
        title: what the part is (``data``, ``optimizer``, ``easgd``, ...), for the docs.
        params: the declared params, in the order the docs list them.
    """

    title: str
    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"table {self.title!r} declares {twice} more than once")

    @cached_property
    def _by_name(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __getitem__(self, name: str) -> Param:
        return self._by_name[name]

    def find(self, name: str) -> Param | None:
        """The param ``name`` sets: itself, or the indexed one ``NAMEi`` belongs to."""
        if name in self._by_name:
            return self._by_name[name]
        match = _INDEX.match(name)
        base = self._by_name.get(match[1]) if match else None
        return base if base is not None and base.indexed else None

    def pick(self, *names: str) -> Table:
        """Only these params (a trainer that uses part of a part)."""
        return Table(self.title, tuple(self[n] for n in names))

    def replace(self, name: str, **changes: Any) -> Table:
        """The table with param ``name`` changed (a trainer's own default, choices, ...)."""
        params = tuple(replace(p, **changes) if p.name == name else p for p in self.params)
        return Table(self.title, params)

    def mark_structural(self, *names: str) -> Table:
        """The table with these params :attr:`Param.structural`."""
        params = {self[name].name for name in names}  # a name it does not declare: KeyError
        return Table(
            self.title,
            tuple(replace(p, structural=True) if p.name in params else p for p in self.params),
        )

    def with_defaults(self, **defaults: Any) -> Table:
        """The table with these defaults instead of the declared ones."""
        table = self
        for name, value in defaults.items():
            table = table.replace(name, default=value)
        return table

    def read(self, params: Mapping[str, Any]) -> Values:
        """The checked values of this table's params in ``params`` (defaults for the missing
        ones); keys the table does not declare are left alone (other parts read them).

        Raises:
            ConfigError: ``parameter 'NAME': must be ..., got ...``.
        """
        values = {
            p.name: p.check(params[p.name]) if p.name in params else p.default for p in self.params
        }
        for key, value in params.items():
            param = self.find(key) if key not in values else None
            if param is not None:
                values[key] = param.check(value, key)
        return Values(values, self)

    def check_space(self, space: Space, owner: str) -> None:
        """Refuse a space (searched params and ``fixed`` constants) that the params of this
        table do not cover; ``owner`` names the trainer in messages.

        Raises:
            ConfigError: naming the first bad parameter, with the closest declared name for an
                unknown one.
        """
        for name, searched in space.params.items():
            param = self.find(name)
            if param is None:
                raise ConfigError(
                    f"parameter {name!r}: {owner} has no such parameter{self._hint(name)}"
                )
            param.check_searched(searched, name)

    def _hint(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names, n=1, cutoff=0.6)
        if close:
            return f"; did you mean {close[0]!r}?"
        return f" (it takes: {', '.join(self.names)})"


def with_defaults(parts: tuple[Table, ...], defaults: Mapping[str, Any]) -> tuple[Table, ...]:
    """``parts`` with each of ``defaults`` set in the part that declares it (a trainer whose
    defaults differ from the shared parts', e.g. a ResNet trained at lr 0.1)."""
    unknown = set(defaults) - {n for part in parts for n in part.names}
    if unknown:
        raise ValueError(f"no part declares {sorted(unknown)}")
    return tuple(
        part.with_defaults(**{k: v for k, v in defaults.items() if k in part.names})
        for part in parts
    )


def join(title: str, *tables: Table) -> Table:
    """One table of all the params of ``tables`` (their names must not repeat)."""
    return Table(title, tuple(p for t in tables for p in t.params))


@dataclass(frozen=True)
class Trainer:
    """A registered trainer: a callable ``train(params, trial) -> metrics`` with the
    declaration the engine checks a search against before any work.

    Attributes:
        name: the trainer's name (``objective: NAME`` in a search file).
        parts: the tables of its parts, its own (the method's) last.
        metrics: the names of the values it returns.
        run: the training function; it gets the checked :class:`Values` of :attr:`table`.
    """

    name: str
    parts: tuple[Table, ...]
    metrics: tuple[str, ...]
    run: Callable[[Values, Trial], dict[str, float]] = field(repr=False)

    @cached_property
    def table(self) -> Table:
        """Every param the trainer takes."""
        return join(self.name, *self.parts)

    def __call__(self, params: Mapping[str, Any], trial: Trial) -> dict[str, float]:
        """Train with ``params`` (checked against the declaration; undeclared keys are ignored,
        the search was checked by :meth:`check_space`) on the worker of ``trial``."""
        return self.run(self.table.read(params), trial)

    @cached_property
    def structural(self) -> frozenset[str]:
        """The params a paused training cannot resume with another value of (PBT may not
        change them during a training)."""
        return frozenset(p.name for p in self.table.params if p.structural)

    def check_space(self, space: Space) -> None:
        """Raise :class:`propagator.ConfigError` if the space does not fit the declaration."""
        self.table.check_space(space, self.name)
