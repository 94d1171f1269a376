"""Conditions that switch a search-space parameter on or off, e.g. ``"depth >= 3"``.

A condition is a small Python-like expression over other parameters: comparisons
(``== != < <= > >= in not in``), ``and``/``or``/``not``, arithmetic (``+ - * / // %``),
literals (numbers, strings, ``true``/``false``/``null`` as in YAML, lists and tuples) and
parameter names. Anything else (calls, attributes, subscripts, lambdas) is refused when the
space is built, so evaluating a condition from a search file can never run arbitrary code.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from ..errors import SpaceError

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Tuple,
    ast.List,
)

# YAML spellings of literals, usable in conditions written in search files.
_LITERALS = {"true": True, "false": False, "null": None, "True": True, "False": False}
_GLOBALS = {"__builtins__": {}}


class _Literals(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _LITERALS:
            return ast.copy_location(ast.Constant(_LITERALS[node.id]), node)
        return node


@dataclass(frozen=True)
class Condition:
    """A parsed, validated condition expression.

    Attributes:
        expression: the source text, e.g. ``"depth >= 3"``.
        names: the parameter names it reads.
        tree: the parsed expression, with ``true``/``false``/``null`` as constants.
    """

    expression: str
    names: frozenset[str] = field(init=False)
    tree: ast.Expression = field(init=False, repr=False, compare=False)
    _code: CodeType = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise SpaceError(f"a condition must be a non-empty string, but got {self.expression!r}")
        try:
            tree = ast.parse(self.expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise SpaceError(
                f"condition {self.expression!r} is not an expression: {exc.msg}"
            ) from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise SpaceError(
                    f"condition {self.expression!r} uses {type(node).__name__}, which conditions "
                    "do not allow (use comparisons, and/or/not, arithmetic, literals, names)"
                )
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_LITERALS)
        object.__setattr__(self, "names", frozenset(names))
        # Literal spellings become constants, so that a parameter named e.g. `null` cannot
        # shadow them when the condition is evaluated with the parameters as locals.
        tree = ast.fix_missing_locations(_Literals().visit(tree))
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "_code", compile(tree, "<condition>", "eval"))

    def holds(self, values: dict[str, Any]) -> bool:
        """Whether the condition is true for ``values`` (every name in :attr:`names` present)."""
        return bool(eval(self._code, _GLOBALS, values))


def is_active(name: str, when: Condition | None, values: dict[str, Any]) -> bool:
    """Whether parameter ``name`` with condition ``when`` is active, given the values of the
    parameters active so far (a condition naming an inactive parameter is false).

    Raises:
        SpaceError: the condition fails to evaluate (e.g. compares a string with a number).
    """
    if when is None:
        return True
    if not when.names <= values.keys():
        return False
    try:
        return when.holds(values)
    except Exception as exc:
        shown = {k: values[k] for k in sorted(when.names)}
        raise SpaceError(
            f"parameter {name!r}: condition {when.expression!r} fails on {shown}: {exc}"
        ) from None


def evaluation_order(params: Mapping[str, Any]) -> list[str]:
    """The parameter names, each after every parameter its condition reads.

    Raises:
        SpaceError: a condition names an unknown parameter (with the closest name), or the
            conditions form a cycle.
    """
    for name, p in params.items():
        for ref in sorted(p.when.names - params.keys()) if p.when is not None else ():
            hint = difflib.get_close_matches(ref, list(params), n=1)
            fix = f"; did you mean {hint[0]!r}?" if hint else ""
            raise SpaceError(
                f"parameter {name!r}: condition {p.when.expression!r} names unknown "
                f"parameter {ref!r}{fix}"
            )
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise SpaceError(f"parameter {name!r}: conditions form a cycle {' -> '.join(cycle)}")
        state[name] = 1
        when = params[name].when
        for ref in sorted(when.names) if when is not None else ():
            visit(ref, [*path, name])
        state[name] = 2
        order.append(name)

    for name in params:
        visit(name, [])
    return order
