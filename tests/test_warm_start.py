"""Warm starts from an earlier run, its exports and an Optuna study; records outside the new
space are skipped and counted, a source without the search's metric is refused (issue 13,
"start from what is known")."""

from __future__ import annotations

import numpy as np
import pytest

import propagator as pg
from propagator.cli import main
from propagator.engine.records import wire_dtype
from propagator.seeding import WarmStart
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


@pytest.mark.parametrize("source", ["run", "all.csv", "all.jsonl", "study.db"])
def test_every_source_gives_the_values_of_the_metric_by_its_name(earlier, source):
    """A run of loss seeds a search of acc with acc's values (the objective returned both),
    from every source alike: the study keeps acc in each trial's metrics attribute."""
    warm = load_warm(str(earlier["dir"] / source), NARROW, "acc", wire_dtype(NARROW.dim))
    assert len(warm.rows) == earlier["inside"]
    assert (warm.rows["values"][:, 0] == 1.0).all()


@pytest.mark.parametrize("source", ["run", "all.csv", "all.jsonl", "study.db"])
def test_every_source_refuses_a_metric_it_does_not_hold(earlier, source):
    with pytest.raises(
        pg.ConfigError,
        match=r"holds no values of 'val_acc', which this search optimizes; its records have "
        r"'acc', 'loss'$",
    ):
        load_warm(str(earlier["dir"] / source), NARROW, "val_acc", wire_dtype(NARROW.dim))


def _study(tmp_path, names: list[str] | None):
    """A plain Optuna study of three trials (value x + 10 for x = 0.1, 0.2, 0.3), its metric
    named ``names``; its storage."""
    import warnings

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    storage = f"sqlite:///{tmp_path / 'plain.db'}"
    study = optuna.create_study(storage=storage, study_name="plain")
    if names is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    space = {"x": FloatDistribution(0, 1), "act": CategoricalDistribution(["relu", "tanh"])}
    for x in (0.1, 0.2, 0.3):
        params = {"x": x, "act": "relu"}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=x + 10))
    return storage


def test_a_study_gives_the_values_of_its_named_metric_and_refuses_another(tmp_path):
    storage = _study(tmp_path, ["loss"])
    warm = load_warm(storage, NARROW, "loss", wire_dtype(NARROW.dim))
    np.testing.assert_allclose(warm.rows["values"][:, 0], [10.1, 10.2, 10.3])
    with pytest.raises(pg.ConfigError, match=r"holds no values of 'acc', .*records have 'loss'$"):
        load_warm(storage, NARROW, "acc", wire_dtype(NARROW.dim))
    with pytest.raises(pg.ConfigError, match="holds no values of 'acc'"):
        pg.search(bowl, NARROW, budget=2, metric="acc", warm_start=storage)


def test_a_study_without_metric_names_seeds_only_a_search_without_one(tmp_path):
    storage = _study(tmp_path, None)
    with pytest.raises(pg.ConfigError, match=r"does not name its metrics.*set_metric_names"):
        load_warm(storage, NARROW, "loss", wire_dtype(NARROW.dim))
    warm = load_warm(storage, NARROW, None, wire_dtype(NARROW.dim))
    np.testing.assert_allclose(warm.rows["values"][:, 0], [10.1, 10.2, 10.3])


# --- a parameter the earlier records lack (issue 21) ---------------------------------------------
GROWN = pg.Space(
    {
        "x": pg.Float(0, 0.5),
        "act": pg.Categorical(["relu", "tanh"]),
        "depth": pg.Int(1, 4),
        "width": pg.Int(8, 64, when="depth >= 2"),
    }
)


def test_records_lacking_a_new_parameter_are_refused_by_its_name(earlier):
    with pytest.raises(
        pg.ConfigError,
        match=r"no record of .* fits: 60 lack 'depth', which this search's space has: .*"
        r"warm_start: \{from: .*, fill: \{depth: VALUE\}\}",
    ):
        load_warm(str(earlier["dir"] / "run"), GROWN, "loss", wire_dtype(GROWN.dim))


@pytest.mark.parametrize("depth", [1, 3])
def test_fill_gives_the_records_the_new_parameters_where_they_are_active(earlier, depth):
    """``width`` is active only from depth 2: with depth 1 the records need no width, with
    depth 3 they take the filled one."""
    fill = {"depth": depth, "width": 32}
    warm = load_warm(
        WarmStart(str(earlier["dir"] / "run"), fill), GROWN, "loss", wire_dtype(GROWN.dim)
    )
    assert len(warm.rows) == earlier["inside"] and not warm.lacking
    params = [GROWN.decode(g) for g in warm.rows["genes"]]
    assert {p["depth"] for p in params} == {depth}
    assert {p.get("width") for p in params} == ({None} if depth == 1 else {32})


def test_a_record_s_own_value_wins_over_fill_and_the_rest_are_counted(tmp_path):
    source = tmp_path / "some.csv"
    source.write_text(
        "status,value,param.x,param.act,param.depth\n"
        "ok,1.0,0.1,relu,1\n"  # its own depth, at which width is inactive
        "ok,2.0,0.2,relu,\n"  # no depth: filled, and width with it
        "ok,3.0,0.3,tanh,\n"
    )
    fill = WarmStart(str(source), {"depth": 3, "width": 16})
    warm = load_warm(fill, GROWN, None, wire_dtype(GROWN.dim))
    decoded = [GROWN.decode(g) for g in warm.rows["genes"]]
    assert [(p["depth"], p.get("width")) for p in decoded] == [(1, None), (3, 16), (3, 16)]
    # without fill: the record with a depth is kept; the two without are named
    warm = load_warm(str(source), GROWN, None, wire_dtype(GROWN.dim))
    assert len(warm.rows) == 1 and warm.lacking == {"depth": 2}
    assert "2 lack 'depth'" in warm.describe() and "fill: {depth: VALUE}" in warm.describe()


def test_the_api_takes_the_mapping_and_checks_fill_against_the_space(earlier):
    source = str(earlier["dir"] / "run")
    result = pg.search(
        bowl,
        GROWN,
        budget=3,
        seed=1,
        metric="loss",
        warm_start={"from": source, "fill": {"depth": 2, "width": 16}},
    )
    assert len(result) == 3
    for fill, message in [
        ({"depth": 9}, r"warm_start\.fill\.depth: expected an integer in 1\.\.4, but got 9"),
        ({"height": 2}, r"warm_start\.fill\.height: the space has no parameter 'height'"),
    ]:
        with pytest.raises(pg.ConfigError, match=message):
            pg.search(
                bowl, GROWN, budget=3, metric="loss", warm_start={"from": source, "fill": fill}
            )
    with pytest.raises(pg.ConfigError, match=r"unknown key 'fil' in warm_start; known: fill, from"):
        pg.search(bowl, GROWN, budget=3, metric="loss", warm_start={"from": source, "fil": {}})
