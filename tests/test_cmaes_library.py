"""The CMA-ES strategy and the ``cmaes`` release it runs on: a release without the private
parts the strategy reads is refused with its version, before any point is told."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

import cmaes
import numpy as np
import pytest
from cmaes import CatCMAwM
from hypothesis import given, settings
from hypothesis import strategies as st

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


_WITHOUT_SCIPY_STATS = """
import sys
import propagator as pg
space = pg.Space({"x": pg.Float(0, 1), "n": pg.Int(1, 9), "act": pg.Categorical(["a", "b"])})
result = pg.search(
    lambda p: (p["x"] - 0.3) ** 2 + p["n"] + (p["act"] == "b"), space, budget=40,
    strategy="cmaes", seed=1,
)
print(result.best.value, "scipy.stats" in sys.modules)
"""


def test_the_strategy_runs_without_loading_scipy_stats():
    """Every rank would pay 0.85 s of CPU and 70 MB for scipy.stats, which cmaes only needs
    for two functions it also ships (see ``_catcmawm``)."""
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SCIPY_STATS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out[1] == "False"
    assert float(out[0]) < 1.1  # n = 1, act = a and x near 0.3 found in 40 evaluations


@settings(max_examples=200)
@given(q=st.floats(1e-12, 1 - 1e-12), x=st.floats(-30, 30))
def test_the_functions_cmaes_uses_without_scipy_agree_with_scipy(q, x):
    from cmaes import _stats
    from scipy import stats

    np.testing.assert_allclose(_stats.chi2_ppf(q), stats.chi2.ppf(q, df=1), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(_stats.norm_cdf(x), stats.norm.cdf(x), rtol=1e-12, atol=1e-300)
