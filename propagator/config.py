"""Search files: YAML -> schema validation -> one frozen :class:`SearchFile`.

The YAML is read with ``safe_load`` and checked against a JSON Schema (``jsonschema``) before
anything is imported or started; every mistake becomes a :class:`ConfigError` that names the
field and, where it can, the fix. The library below never sees the YAML.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError, SpaceError
from .evaluation import Objective
from .settings import Settings, budget_from, migration_from, strategies_for
from .space import Constant, Space

TRAINER_GROUP = "propagate.trainers"

_PROB = {"type": "number", "minimum": 0, "maximum": 1}
_POS_INT = {"type": "integer", "minimum": 1}
_STRATEGY = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "population": {"type": "integer", "minimum": 2},
                "crossover": _PROB,
                "mutation": _PROB,
                "random_init": _PROB,
                "eta": {"type": "number", "exclusiveMinimum": 0},
            },
            "required": ["name"],
            "additionalProperties": False,
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
        "metric": {"type": "string", "minLength": 1},
        "direction": {"enum": ["minimize", "maximize"]},
        "budget": {
            "type": "object",
            "properties": {
                "evaluations": _POS_INT,
                "time": {"oneOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}]},
            },
            "additionalProperties": False,
            "minProperties": 1,
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
            },
            "additionalProperties": False,
        },
        "strategy": {"oneOf": [_STRATEGY, {"type": "array", "items": _STRATEGY, "minItems": 1}]},
        "run_dir": {"type": "string", "minLength": 1},
        "seed": {"type": "integer", "minimum": 0},
        "max_initial_failures": _POS_INT,
    },
    "required": ["objective", "space", "budget"],
    "additionalProperties": False,
}
_HINTS = {
    "objective": "a trainer name, 'package.module:function' or 'file.py:function'",
    "budget": "e.g. budget: {evaluations: 500, time: 2h}",
    "budget.time": "seconds, or a duration such as 90s, 30m, 2h, 1.5d or 1h30m",
    "metric": "the name of a value the objective returns, e.g. val_loss",
    "space": "an inline mapping, a YAML file, or a module such as search_spaces.oialr",
    "islands": "a number of islands, or a list of workers per island",
    "strategy": "ga, random, {name: ga, population: 16, crossover: 0.7, ...}, or one per island",
    "migration.topology": "fully_connected, ring, or a square matrix of migrant counts",
}


@dataclass(frozen=True)
class SearchFile:
    """A validated, resolved search file.

    Attributes:
        path: the file.
        text: the file as given.
        objective_spec: the ``objective`` string.
        space: the search space, ``fixed`` values included as constants.
        settings: everything else the engine needs.
        run_dir: where the run store lives.
    """

    path: Path
    text: str
    objective_spec: str
    space: Space
    settings: Settings
    run_dir: Path

    def resolved(self) -> dict[str, Any]:
        """The effective configuration, as stored in the run and compared on resume."""
        s = self.settings
        return {
            "objective": self.objective_spec,
            "space": self.space.to_dict(),
            "metric": s.metric,
            "direction": s.direction,
            "budget": {"evaluations": s.budget.evaluations, "time": s.budget.time},
            "islands": list(s.islands) if isinstance(s.islands, tuple) else s.islands,
            "ranks_per_worker": s.ranks_per_worker,
            "migration": {**asdict(s.migration), "topology": _plain(s.migration.topology)},
            "strategy": [spec.to_dict() for spec in s.strategy],
            "run_dir": str(self.run_dir),
            "seed": s.seed,
            "max_initial_failures": s.max_initial_failures,
        }

    def objective(self) -> Objective:
        """Import the objective (a trainer name or ``module:function``/``file.py:function``)."""
        try:
            return load_objective(self.objective_spec, self.path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None


def load(path: str | Path) -> SearchFile:
    """Read, validate and resolve a search file.

    Raises:
        ConfigError: with one message naming the field and the likely fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        hint = ""
        if not path.exists() and path.suffix == "" and len(path.parts) == 1:
            hint = "; to run a command, use one of: run, validate, report, export, plot, optuna"
        raise ConfigError(
            f"cannot read the search file {str(path)!r}: {exc.strerror}{hint}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte {exc.object[exc.start]:#04x} at offset {exc.start} "
            "is not UTF-8); a search file is YAML text"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{_yaml_problem(exc)}") from None
    if data is None:
        raise ConfigError(
            f"{path}: the file is empty; a search file needs at least objective, space and budget"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a search file is a mapping of keys such as objective, space, budget, "
            f"but this one is {_kind(data)}"
        )
    _validate(data, path)
    return _resolve(data, path, text)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    where = getattr(exc, "problem_mark", None)
    at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and mark:
        context = f" ({context} that starts at line {mark.line + 1}, column {mark.column + 1})"
    return f"{at}: {problem}{context or ''}"


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


def _validate(data: dict[str, Any], path: Path) -> None:
    errors = sorted(
        (_specific(e) for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(data)),
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
    if error.validator == "type" and isinstance(value, str):
        number = _as_number(value)
        if number is not None:
            return f"{message}, which YAML reads as text; write a plain number such as {number}"
    hint = _HINTS.get(field)
    return message + (f" ({hint})" if hint else "")


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


def _resolve(data: dict[str, Any], path: Path, text: str) -> SearchFile:
    try:
        space = _space(data["space"], path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    fixed = data.get("fixed", {})
    clash = sorted(set(fixed) & set(space.params))
    if clash:
        raise ConfigError(
            f"{path}: fixed.{clash[0]} is also a parameter of the space; "
            "remove it from fixed or from space"
        )
    if fixed:
        try:
            space = Space({**space.params, **{k: Constant(v) for k, v in fixed.items()}})
        except SpaceError as exc:
            raise ConfigError(f"{path}: fixed: {exc}") from None
    islands = data.get("islands", 1)
    n_islands = len(islands) if isinstance(islands, list) else islands
    try:
        _check_topology(data.get("migration") or {})
        settings = Settings(
            budget=budget_from(data["budget"]),
            metric=data.get("metric"),
            direction=data.get("direction", "minimize"),
            islands=tuple(islands) if isinstance(islands, list) else islands,
            ranks_per_worker=data.get("ranks_per_worker", 1),
            strategy=strategies_for(data.get("strategy", "ga"), n_islands),
            migration=migration_from(data.get("migration")),
            seed=data.get("seed"),
            max_initial_failures=data.get("max_initial_failures", 5),
        )
        settings.migration.matrix(n_islands)  # a topology matrix must fit the islands
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    run_dir = Path(data.get("run_dir", Path("runs") / path.stem))
    return SearchFile(path, text, data["objective"], space, settings, run_dir)


def _check_topology(migration: Mapping[str, Any]) -> None:
    rows = migration.get("topology")
    if not isinstance(rows, list):
        return
    for i, row in enumerate(rows):
        if len(row) != len(rows):
            raise ConfigError(
                f"migration.topology must be a square matrix (one row per island, one entry per "
                f"island in each row), but it has {len(rows)} rows and row {i} has {len(row)} "
                f"entries"
            )


def _space(spec: str | Mapping[str, Any], base: Path) -> Space:
    try:
        if isinstance(spec, Mapping):
            return Space.from_dict(spec)
        if spec.endswith((".yaml", ".yml")):
            file = _find(spec, base, "space")
            try:
                loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ConfigError(f"space: {file} is not valid YAML{_yaml_problem(exc)}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"space: {file} is not a UTF-8 text file") from None
            return Space.from_dict(
                loaded.get("space", loaded) if isinstance(loaded, dict) else loaded
            )
        obj = _import_attr(spec, default_attr="SPACE", what="space")
        obj = getattr(obj, "space", obj)  # e.g. propagator.benchmarks:rastrigin
        return obj if isinstance(obj, Space) else Space.from_dict(obj)
    except SpaceError as exc:
        # "parameter 'lr': low < high must hold..." -> "space.lr: low < high must hold..."
        named = re.match(r"parameter '([A-Za-z_]\w*)': (.*)", str(exc), re.DOTALL)
        raise ConfigError(f"space.{named[1]}: {named[2]}" if named else f"space: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"space: cannot read {spec!r}: {exc.strerror}") from None


def _find(name: str, base: Path, what: str) -> Path:
    """A file named in the search file: relative to the current directory or to the file."""
    for candidate in (Path(name), base / name):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{what}: no file {name!r} ({_looked_in(base)})")


def _looked_in(base: Path) -> str:
    if base == Path("."):
        return "looked in the current directory"
    return f"looked in the current directory and next to the search file, in {str(base)!r}"


def load_objective(spec: str, base: Path = Path(".")) -> Objective:
    """The objective a search file names. Raises :class:`ConfigError` if it does not import."""
    if ":" not in spec:
        return _trainer(spec)
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        module = _import_file(_find(target, base, "objective"))
        obj = getattr(module, attr, None)
        if obj is None:
            raise ConfigError(f"objective: {target} has no {attr!r}{_did_you_mean(attr, module)}")
    else:
        obj = _import_attr(spec, default_attr=None, what="objective")
    if not callable(obj):
        raise ConfigError(
            f"objective: {spec!r} is {_kind(obj)}, not a function (or other callable)"
        )
    return obj


def _trainer(name: str) -> Objective:
    trainers = {e.name: e for e in entry_points(group=TRAINER_GROUP)}
    if name in trainers:
        return trainers[name].load()
    close = difflib.get_close_matches(name, list(trainers), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = ", ".join(sorted(trainers)) or "none installed"
    raise ConfigError(
        f"objective: unknown trainer {name!r}; {hint}known trainers: {known}; "
        "or name a function as 'package.module:function' or 'file.py:function'"
    )


def _import_attr(spec: str, default_attr: str | None, what: str) -> Any:
    module_name, _, attr = spec.partition(":")
    attr = attr or default_attr
    if not attr:
        raise ConfigError(f"{what}: {spec!r} must look like 'package.module:function'")
    if str(Path.cwd()) not in sys.path:  # console scripts do not put the cwd on the path
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what}: cannot import module {module_name!r} ({exc}); check the spelling, and "
            "that it is installed or lies in the current directory"
            + ("; for a file, write 'file.py:function'" if what == "objective" else "")
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"{what}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not hasattr(module, attr):
        raise ConfigError(
            f"{what}: module {module_name!r} has no {attr!r}{_did_you_mean(attr, module)}"
        )
    return getattr(module, attr)


def _did_you_mean(attr: str, module: Any) -> str:
    names = [n for n in vars(module) if not n.startswith("_")]
    close = difflib.get_close_matches(attr, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _import_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"propagate_objective_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"objective: cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(
            f"objective: importing {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    return module


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))
