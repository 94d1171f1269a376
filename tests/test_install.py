"""constraints.txt, the pins of a reproducible install: every dependency the install names
(pyproject's dependencies and its mpi, trainers and test extras) is pinned to one version
that the dependency's own requirement allows, so the file cannot drift silently when a
dependency is added or its range changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("mpi", "trainers", "test")  # those of the README's and .ci/run's install


def _requirements() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = project["dependencies"] + [
        r for e in EXTRAS for r in project["optional-dependencies"][e]
    ]
    return [Requirement(r) for r in lines]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and name.strip() and version.strip(), f"not a pin (name==version): {line!r}"
        key = canonicalize_name(name.strip())
        assert key not in pins, f"{key} is pinned twice"
        pins[key] = Version(version.strip())
    return pins


def test_constraints_pin_every_dependency_within_its_requirement() -> None:
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name} (pyproject: {req})"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req}"
        )
