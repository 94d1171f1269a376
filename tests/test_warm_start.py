"""Warm starts from an earlier run, its exports and an Optuna study; records outside the new
space are skipped and counted (issue 13, "start from what is known")."""

from __future__ import annotations

import numpy as np
import pytest

import propagator as pg
from propagator.cli import main
from propagator.engine.records import wire_dtype
from propagator.store.warm import load_warm

WIDE = pg.Space({"x": pg.Float(0, 1), "act": pg.Categorical(["relu", "tanh"])})
NARROW = pg.Space({"x": pg.Float(0, 0.5), "act": pg.Categorical(["relu", "tanh"])})


def bowl(params):
    return {"loss": (params["x"] - 0.3) ** 2 + (params["act"] == "tanh"), "acc": 1.0}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An earlier run and its CSV, JSON-lines and Optuna exports."""
    tmp = tmp_path_factory.mktemp("earlier")
    run = tmp / "run"
    result = pg.search(bowl, WIDE, budget=60, seed=0, metric="loss", run_dir=run, strategy="ga")
    for name in ("all.csv", "all.jsonl"):
        assert main(["export", str(run), "-o", str(tmp / name)]) == 0
    assert main(["optuna", str(run), "-o", f"sqlite:///{tmp / 'study.db'}"]) == 0
    inside = sum(r.params["x"] <= 0.5 for r in result.records)
    return {"dir": tmp, "result": result, "inside": inside}


@pytest.mark.parametrize("source", ["run", "all.csv", "all.jsonl", "study.db"])
def test_every_source_gives_the_records_inside_the_new_space(earlier, source):
    warm = load_warm(str(earlier["dir"] / source), NARROW, "loss", wire_dtype(NARROW.dim))
    assert len(warm.rows) == earlier["inside"] and warm.skipped == 60 - earlier["inside"]
    assert (warm.rows["id"] < 0).all()
    params = sorted(NARROW.decode(g)["x"] for g in warm.rows["genes"])
    expected = sorted(r.params["x"] for r in earlier["result"].records if r.params["x"] <= 0.5)
    np.testing.assert_allclose(params, expected)
    assert "outside this search's space" in warm.describe()


def test_a_warm_start_seeds_the_pool_so_the_first_children_are_bred(earlier):
    """The GA breeds from the warm pool at once (a cold GA samples at random until its
    pool is full): its first candidates are near the warm best."""
    warm_best = min(r.value for r in earlier["result"].records if r.params["x"] <= 0.5)
    warm = pg.search(
        bowl,
        NARROW,
        budget=4,
        seed=3,
        metric="loss",
        strategy="ga",
        warm_start=str(earlier["dir"] / "run"),
    )
    cold = pg.search(bowl, NARROW, budget=4, seed=3, metric="loss", strategy="ga")
    assert warm.best.value < 10 * warm_best + 1e-3 and warm.best.value < cold.best.value
    assert len(warm) == 4  # warm records are not records of this run


def test_an_unknown_source_or_study_is_a_config_error(earlier, tmp_path):
    with pytest.raises(pg.ConfigError, match="nothing at"):
        pg.search(bowl, NARROW, budget=2, metric="loss", warm_start=str(tmp_path / "none"))
    db = f"sqlite:///{earlier['dir'] / 'study.db'}"
    with pytest.raises(pg.ConfigError, match="has no study 'nope'; it holds "):
        pg.search(bowl, NARROW, budget=2, metric="loss", warm_start=db + "#nope")
