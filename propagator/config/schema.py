"""The search file's JSON Schema, and its errors in words that name the field and the fix.

``jsonschema`` is imported by :func:`validate`, not with this module: with ``attrs`` and
``referencing`` it costs about 75 ms of CPU, and under ``mpirun`` only rank 0 validates (the
others hear its verdict, see :mod:`propagator.cli.main`).
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import jsonschema

_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_POS_INT = {"type": "integer", "minimum": 1}
_DURATION = {"oneOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}]}
# A strategy's own settings are checked by the strategy (``make_strategy``), which knows them.
_STRATEGY = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    ]
}
# An inline space entry that is a mapping must name a known type: checked here so that a typo
# gets a suggestion, and a non-string such as ``type: [float]`` a message (not a TypeError).
_INLINE_SPACE = {
    "type": "object",
    "additionalProperties": {
        "if": {"type": "object"},
        "then": {"properties": {"type": {"enum": ["float", "int", "categorical", "constant"]}}},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "objective": {"type": "string", "minLength": 1},
        "space": {"oneOf": [{"type": "string", "minLength": 1}, _INLINE_SPACE]},
        "fixed": {"type": "object"},
        "metric": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ]
        },
        "direction": {
            "oneOf": [
                {"enum": ["minimize", "maximize"]},
                {"type": "array", "items": {"enum": ["minimize", "maximize"]}, "minItems": 1},
            ]
        },
        "budget": {
            "oneOf": [
                _POS_INT,  # evaluations, as pg.search(budget=500)
                {
                    "type": "object",
                    "properties": {
                        "evaluations": _POS_INT,
                        "time": _DURATION,
                        "steps": _POS_INT,
                    },
                    "additionalProperties": False,
                    "minProperties": 1,
                },
            ]
        },
        "islands": {"oneOf": [_POS_INT, {"type": "array", "items": _POS_INT, "minItems": 1}]},
        "ranks_per_worker": _POS_INT,
        "migration": {
            "type": "object",
            "properties": {
                "probability": _PROB,
                "topology": {
                    "oneOf": [
                        {"enum": ["fully_connected", "ring"]},
                        {
                            "type": "array",
                            "items": {
                                "type": "array",
                                "items": {"type": "integer", "minimum": 0},
                            },
                        },
                    ]
                },
                "migrants": _POS_INT,
                "pollination": {"type": "boolean"},
                "targets": _POS_INT,
            },
            "additionalProperties": False,
        },
        "strategy": {"oneOf": [_STRATEGY, {"type": "array", "items": _STRATEGY, "minItems": 1}]},
        "run_dir": {"type": "string", "minLength": 1},
        "seed": {"type": "integer", "minimum": 0},
        "max_initial_failures": _POS_INT,
        "failure_grace": _DURATION,
        "trial_timeout": _DURATION,
        "checkpoint_disk": {"type": "number", "exclusiveMinimum": 0},
        "repeats": _POS_INT,
        "initial": {"type": "array", "items": {"type": "object"}},
        "warm_start": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "properties": {
                        "from": {"type": "string", "minLength": 1},
                        "fill": {"type": "object"},
                    },
                    "required": ["from"],
                    "additionalProperties": False,
                },
            ]
        },
        "confirm": {
            "type": "object",
            "properties": {"top": _POS_INT, "seeds": _POS_INT},
            "additionalProperties": False,
        },
        "early_stopping": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            ]
        },
        "deduplicate": {"type": "boolean"},
        "dissemination": {"enum": ["all", "gossip"]},
        "pbt": {
            "type": "object",
            "properties": {
                "mutable": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "interval": _POS_INT,
                "quantile": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
                "perturb": {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0},
                    "minItems": 1,
                },
                "resample": _PROB,
                "replay": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"step": _POS_INT, "params": {"type": "object"}},
                        "required": ["step", "params"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["mutable"],
            "additionalProperties": False,
        },
    },
    "required": ["objective", "space", "budget"],
    "additionalProperties": False,
}
_HINTS = {
    "objective": "a trainer name, 'package.module:function' or 'file.py:function'",
    "budget": "e.g. budget: 500 (evaluations) or budget: {evaluations: 500, time: 2h, steps: 4000}",
    "budget.time": "seconds, or a duration such as 90s, 30m, 2h, 1.5d or 1h30m",
    "metric": "the name of a value the objective returns, e.g. val_loss, or a list of them",
    "space": "an inline mapping, a YAML file, or a module such as search_spaces.oialr",
    "islands": "a number of islands, or a list of workers per island",
    "strategy": (
        "portfolio (the default), ga, cmaes, tpe, quadratic, random, "
        "{name: ga, population: 8, ...}, or one per island"
    ),
    "failure_grace": "seconds, or a duration such as 30s or 2m",
    "trial_timeout": "seconds, or a duration such as 20m or 1h",
    "early_stopping": (
        "auto, asha, curve, median, none, or {name: asha, min_step: 1, reduction: 3, "
        "promotion: true, brackets: 2}"
    ),
    "checkpoint_disk": "GiB that paused trainings' checkpoints may take, e.g. 20",
    "pbt": "e.g. pbt: {mutable: [lr, momentum], interval: 2, quantile: 0.25}",
    "warm_start": (
        "a run directory, a .csv/.jsonl export or an Optuna storage, or "
        "{from: runs/earlier, fill: {new_param: 3}} to give records a parameter they lack"
    ),
    "migration.topology": "fully_connected, ring, or a square matrix of migrant counts",
}


def kind_of(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    """The validator of :data:`SCHEMA`, built on first use."""
    import jsonschema

    # JSON Schema counts 1000.0 as an integer; the engine wants a Python int
    # (budget.evaluations: 1e3 is a float, and is refused with a hint rather than passed on).
    validator = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
            "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)
        ),
    )
    return validator(SCHEMA)


def validate(data: dict[str, Any], path: Path) -> None:
    errors = sorted(
        (_specific(e) for e in _validator().iter_errors(data)),
        key=_error_rank,
    )
    if errors:
        raise ConfigError(f"{path}: {_explain(errors[0])}")


def _specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The error inside a ``oneOf`` that concerns the alternative the user meant.

    Alternatives whose type does not match the value are dropped (``islands: 0`` is an
    integer, so it was not meant as a list); among the rest the most specific error wins. When
    every alternative has the wrong type, the ``oneOf`` error itself is the clearest.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return error
    meant = [
        _specific(e)
        for e in error.context
        if not (e.validator == "type" and e.absolute_path == error.absolute_path)
    ]
    return min(meant, key=_error_rank) if meant else error


def _error_rank(error: jsonschema.ValidationError) -> tuple[int, int]:
    # Report the most specific problem: deepest path first, unknown keys before type mix-ups.
    return (-len(error.absolute_path), error.validator != "additionalProperties")


def _field(error: jsonschema.ValidationError) -> str:
    """The field path as the user writes it, e.g. ``budget.evaluations`` or ``islands[1]``."""
    out = ""
    for p in error.absolute_path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}" if out else str(p)
    return out


def _explain(error: jsonschema.ValidationError) -> str:
    field = _field(error)
    value = error.instance
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(value) - set(known), key=str)  # YAML keys may be numbers
        hints = [h for u in unknown for h in difflib.get_close_matches(str(u), known, n=1)]
        fix = f"; did you mean {hints[0]!r}?" if hints else f"; known keys: {', '.join(known)}"
        where = f" in {field}" if field else ""
        return f"unknown key {unknown[0]!r}{where}{fix}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        name = f"{field}.{missing}" if field else missing
        hint = _HINTS.get(name)
        return f"{name} is required" + (f" ({hint})" if hint else "")
    if error.validator == "minProperties":
        return f"{field} must not be empty ({_HINTS.get(field, '')})".replace(" ()", "")
    message = f"{field or 'the file'} must be {_expected(error.schema)}, got {value!r}"
    if error.validator == "enum" and isinstance(value, str):
        close = difflib.get_close_matches(value, [str(v) for v in error.schema["enum"]], n=1)
        if close:
            return f"{message}; did you mean {close[0]!r}?"
    # a number mistyped: also where the value may be a number or something else (budget: 20)
    numeric = error.validator == "type" or _accepts(error.schema, "integer")
    if numeric and isinstance(value, str):
        number = _as_number(value)
        if number is not None:
            return f"{message}, which YAML reads as text; write a plain number such as {number}"
    if numeric and isinstance(value, float) and value.is_integer():
        return f"{message}; write a whole number such as {int(value)}"
    hint = _HINTS.get(field)
    return message + (f" ({hint})" if hint else "")


def _accepts(schema: Mapping[str, Any], kind: str) -> bool:
    """Whether one of a ``oneOf`` schema's alternatives is of JSON type ``kind``."""
    return any(s.get("type") == kind for s in schema.get("oneOf", ()))


def _as_number(text: str) -> int | float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() else number


def _expected(schema: Mapping[str, Any]) -> str:
    """What a (sub)schema accepts, in words: ``an integer >= 1``, ``a number in [0, 1]``..."""
    if "oneOf" in schema:
        return " or ".join(_expected(s) for s in schema["oneOf"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    names = {
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "object": "a mapping",
        "array": "a list",
        "boolean": "true or false",
    }
    kind = names.get(schema.get("type", ""), "valid")
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"{kind} in [{low}, {high}]"
    if low is not None:
        return f"{kind} >= {low}"
    if "exclusiveMinimum" in schema:
        return f"{kind} > {schema['exclusiveMinimum']}"
    if schema.get("minLength") or schema.get("minItems"):
        return kind.replace("a ", "a non-empty ", 1)
    return kind
