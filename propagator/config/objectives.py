"""Finding what a search file names: the objective (a trainer, a module or a file) and files
such as a space given as YAML."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..engine.evaluation import Objective
from ..errors import ConfigError
from .schema import kind_of

TRAINER_GROUP = "propagate.trainers"


def find_file(name: str, base: Path, what: str) -> Path:
    """A file named in the search file: an absolute path, or one relative to ``base``, the
    search file's directory (whatever the working directory)."""
    candidate = base / name
    if candidate.is_file():
        return candidate
    where = f"looked for {str(candidate)!r}"
    if not Path(name).is_absolute():
        where += "; a relative path is taken from the directory of the search file"
    raise ConfigError(f"{what}: no file {name!r} next to the search file ({where})")


def load_objective(spec: str, base: Path = Path(".")) -> Objective:
    """The objective a search file names. Raises :class:`ConfigError` if it does not import."""
    if ":" not in spec:
        return _trainer(spec)
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        module = _import_file(find_file(target, base, "objective"))
        obj = getattr(module, attr, None)
        if obj is None:
            raise ConfigError(f"objective: {target} has no {attr!r}{_did_you_mean(attr, module)}")
    else:
        obj = import_attr(spec, default_attr=None, what="objective", base=base)
    if not callable(obj):
        raise ConfigError(
            f"objective: {spec!r} is {kind_of(obj)}, not a function (or other callable)"
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


def import_attr(spec: str, default_attr: str | None, what: str, base: Path = Path(".")) -> Any:
    """``package.module:attr`` (``attr`` defaults to ``default_attr``), imported from the
    installed packages or from ``base``, the search file's directory."""
    module_name, _, attr = spec.partition(":")
    attr = attr or default_attr
    if not attr:
        raise ConfigError(f"{what}: {spec!r} must look like 'package.module:function'")
    where = str(base.resolve())
    if where not in sys.path:
        sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what}: cannot import module {module_name!r} ({exc}); check the spelling, and "
            "that it is installed or lies next to the search file"
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
