"""Search files: YAML -> schema validation -> one frozen :class:`SearchFile`.

The YAML is read with the safe loader (numbers such as ``1e-3`` are floats, as in YAML 1.2:
:mod:`.yaml_numbers`) and checked against a JSON Schema (``jsonschema``) before anything is
imported or started; every mistake becomes a :class:`ConfigError` that names the field and,
where it can, the fix. The library below never sees the YAML.

Every relative path in a search file (the objective file, the space file, ``run_dir``) is
relative to the search file's own directory, and modules it names are imported from there
too, so a search runs, and resumes, the same from any working directory. The default
``run_dir`` is ``runs/<file stem>`` next to the file; the read commands (``propagate report
SEARCH.yaml`` ...) find a run there too (:func:`run_dir_of`).

A key set to ``null`` is as if left out (at the top level, and in ``budget``, ``migration``,
``confirm`` and ``pbt``), so the effective configuration ``propagate validate`` prints, which
shows unset settings as ``null``, is itself a search file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..engine.evaluation import Objective, check_objective
from ..errors import ConfigError, SpaceError
from ..islands import migration_from
from ..pbt import make_pbt
from ..pruners import make_pruner
from ..seeding import WarmStart, warm_start_from
from ..settings import (
    DEFAULT_STRATEGY,
    Settings,
    budget_from,
    confirm_from,
    strategies_for,
)
from ..space import Constant, Space
from .objectives import find_file, import_attr, load_objective
from .schema import kind_of, validate
from .yaml_numbers import load_yaml

_SETTINGS_MAPPINGS = ("budget", "migration", "confirm", "pbt")  # whose null keys are unset


@dataclass(frozen=True)
class SearchFile:
    """A validated, resolved search file.

    Attributes:
        path: the file.
        text: the file as given.
        objective_spec: the ``objective`` string.
        space: the search space, ``fixed`` values included as constants.
        settings: everything else the engine needs.
        run_dir: where the run store lives (the search file's directory joined with
            ``run_dir_spec``).
        run_dir_spec: ``run_dir`` as written, relative to the search file's directory
            (default ``runs/<file stem>``); stored with the run, so the stored configuration
            does not depend on the working directory.
        fixed: the names that come from ``fixed`` (for messages that name the field).
        warm_start_spec: ``warm_start`` as written, a source or ``{from, fill}`` (stored with
            the run, like ``run_dir``); the settings hold its source relative to the working
            directory.
    """

    path: Path
    text: str
    objective_spec: str
    space: Space
    settings: Settings
    run_dir: Path
    run_dir_spec: str
    fixed: frozenset[str] = frozenset()
    warm_start_spec: str | dict[str, Any] | None = None

    def resolved(self) -> dict[str, Any]:
        """The effective configuration, as stored in the run and compared on resume."""
        return {
            "objective": self.objective_spec,
            "space": self.space.to_dict(),
            **self.settings.to_dict(),
            "run_dir": self.run_dir_spec,
            "warm_start": self.warm_start_spec,
        }

    def objective(self) -> Objective:
        """Import the objective (a trainer name or ``module:function``/``file.py:function``)
        and, where it declares its params and metrics, check the search against them."""
        try:
            objective = load_objective(self.objective_spec, self.path.parent)
            pbt = self.settings.pbt
            mutable = () if pbt is None else pbt.mutable
            check_objective(objective, self.space, self.settings.metric, mutable)
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {self._field(str(exc))}") from None
        return objective

    def _field(self, message: str) -> str:
        """``parameter 'x': ...`` from an objective's check as the field the user wrote:
        ``fixed.x: ...`` or ``space.x: ...``."""
        named = re.match(r"parameter '(\w+)': (.*)", message, re.DOTALL)
        if named is None:
            return message
        where = "fixed" if named[1] in self.fixed else "space"
        return f"{where}.{named[1]}: {named[2]}"


def load(path: str | Path, check: bool = True) -> SearchFile:
    """Read, validate and resolve a search file.

    Args:
        path: the search file.
        check: validate against the schema (default ``True``); ``False`` only where the same
            file has already passed, e.g. on rank 0 of the same job.

    Raises:
        ConfigError: with one message naming the field and the likely fix.
    """
    path = Path(path)
    text, data = _read(path)
    if check:
        validate(data, path)
    return _resolve(data, path, text)


def run_dir_of(path: str | Path) -> Path:
    """The run directory a read command (report, export, plot, ...) is pointed at: ``path``
    itself, or, for a search file (``.yaml``/``.yml``), its ``run_dir`` resolved as the run
    command resolves it (only the file's ``run_dir`` is read: its objective and space need not
    be importable where the run is read).

    Raises:
        ConfigError: the search file cannot be read, or its run has not started.
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() not in (".yaml", ".yml"):
        return path
    _, data = _read(path)
    spec = data.get("run_dir")
    if spec is not None and not (isinstance(spec, str) and spec):
        raise ConfigError(f"{path}: run_dir must be a non-empty string, got {spec!r}")
    run_dir = path.parent / _run_dir_spec(data, path)
    if not run_dir.is_dir():
        raise ConfigError(
            f"{path}: its run directory {str(run_dir)!r} does not exist yet; start the search "
            f"with: propagate {path}"
        )
    return run_dir


def _run_dir_spec(data: Mapping[str, Any], path: Path) -> Path:
    """``run_dir`` as written, relative to the file's directory (default ``runs/<stem>``)."""
    return Path(data.get("run_dir") or f"runs/{path.stem}")  # "runs/x/" is "runs/x"


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its YAML mapping, keys set to null left out.

    Raises:
        ConfigError: unreadable, not UTF-8, not YAML, empty or not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        hint = ""
        if not path.exists() and path.suffix == "" and len(path.parts) == 1:
            commands = "run, validate, report, export, plot, optuna, watch"
            hint = f"; to run a command, use one of: {commands}"
        raise ConfigError(
            f"cannot read the search file {str(path)!r}: {exc.strerror}{hint}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte {exc.object[exc.start]:#04x} at offset {exc.start} "
            "is not UTF-8); a search file is YAML text"
        ) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{_yaml_problem(exc)}") from None
    if data is None:
        raise ConfigError(
            f"{path}: the file is empty; a search file needs at least objective, space and budget"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a search file is a mapping of keys such as objective, space, budget, "
            f"but this one is {kind_of(data)}"
        )
    return text, _unset_nulls(data)


def _unset_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the keys set to null, at the top level and in the settings mappings
    (``seed: null`` and ``budget: {time: null}`` are the defaults, as validate prints them)."""
    out = {k: v for k, v in data.items() if v is not None}
    for key in _SETTINGS_MAPPINGS:
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if v is not None}
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    where = getattr(exc, "problem_mark", None)
    at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and mark:
        context = f" ({context} that starts at line {mark.line + 1}, column {mark.column + 1})"
    return f"{at}: {problem}{context or ''}"


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
            strategy=strategies_for(data.get("strategy", DEFAULT_STRATEGY), n_islands),
            migration=migration_from(data.get("migration")),
            seed=data.get("seed"),
            max_initial_failures=data.get("max_initial_failures", 5),
            failure_grace=data.get("failure_grace", 10.0),
            deduplicate=data.get("deduplicate", True),
            pruner=make_pruner(data.get("early_stopping")),
            trial_timeout=data.get("trial_timeout"),
            checkpoint_disk=data.get("checkpoint_disk", 10.0),
            repeats=data.get("repeats", 1),
            confirm=confirm_from(data.get("confirm")),
            initial=data.get("initial", ()),
            warm_start=_beside(data.get("warm_start"), path.parent),
            pbt=make_pbt(data.get("pbt")),
            dissemination=data.get("dissemination", "all"),
        )
        settings.migration.matrix(n_islands)  # a topology matrix must fit the islands
        settings.check(space)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    run_dir = _run_dir_spec(data, path)
    return SearchFile(
        path,
        text,
        data["objective"],
        space,
        settings,
        path.parent / run_dir,
        str(run_dir),
        frozenset(data.get("fixed", {})),
        data.get("warm_start"),
    )


def _beside(spec: Any, base: Path) -> WarmStart | None:
    """The warm start with its source relative to the search file (a database URL as it
    is)."""
    warm = warm_start_from(spec)
    if warm is None or "://" in warm.source:
        return warm
    return replace(warm, source=str(base / warm.source))


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
            file = find_file(spec, base, "space")
            try:
                loaded = load_yaml(file.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ConfigError(f"space: {file} is not valid YAML{_yaml_problem(exc)}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"space: {file} is not a UTF-8 text file") from None
            return Space.from_dict(
                loaded.get("space", loaded) if isinstance(loaded, dict) else loaded
            )
        obj = import_attr(spec, default_attr="SPACE", what="space", base=base)
        obj = getattr(obj, "space", obj)  # e.g. propagator.benchmarks:rastrigin
        return obj if isinstance(obj, Space) else Space.from_dict(obj)
    except SpaceError as exc:
        # "parameter 'lr': low < high must hold..." -> "space.lr: low < high must hold..."
        named = re.match(r"parameter '([A-Za-z_]\w*)': (.*)", str(exc), re.DOTALL)
        raise ConfigError(f"space.{named[1]}: {named[2]}" if named else f"space: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"space: cannot read {spec!r}: {exc.strerror}") from None
