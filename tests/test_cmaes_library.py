"""The CMA-ES strategy and the ``cmaes`` release it runs on: a release without the private
parts the strategy reads is refused with its version, before any point is told."""

from __future__ import annotations

import re
from dataclasses import dataclass

import cmaes
import numpy as np
import pytest
from cmaes import CatCMAwM

from propagator.space import Float, Space
from propagator.strategies import CMAES

SPACE = Space({"x": Float(0, 1), "y": Float(0, 1)})


def _without_instance_attribute(monkeypatch, name: str) -> None:
    init = CatCMAwM.__init__

    def init_without(self, *args, **kwargs):
        init(self, *args, **kwargs)
        delattr(self, name)

    monkeypatch.setattr(CatCMAwM, "__init__", init_without)


@dataclass(frozen=True)
class _RenamedSolution:
    x: np.ndarray | None = None
    z: np.ndarray | None = None
    c: np.ndarray | None = None
    v_raw: np.ndarray | None = None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda mp: mp.delattr(CatCMAwM, "_eigen_decomposition"), "_eigen_decomposition"),
        (lambda mp: _without_instance_attribute(mp, "_A"), "_A"),
        (lambda mp: mp.setattr(CatCMAwM, "Solution", _RenamedSolution), "Solution"),
    ],
    ids=["method", "attribute", "solution-fields"],
)
def test_a_cmaes_release_without_a_private_part_is_refused_with_its_version(
    monkeypatch, change, named
) -> None:
    CMAES().create(SPACE, 1)  # the installed release has every part
    change(monkeypatch)
    with pytest.raises(RuntimeError) as info:
        CMAES().create(SPACE, 1)
    message = str(info.value)
    assert f"cmaes {cmaes.__version__} lacks" in message
    assert re.search(rf"\b{named}\b", message)
    assert "pip install 'cmaes>=0.13,<0.14'" in message
