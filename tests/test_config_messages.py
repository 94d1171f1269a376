"""Configuration messages a user coming from Optuna meets (issue 21): unknown settings list
only settings, Optuna's argument names point to ours, a portfolio refused for several metrics
names the member at fault, and ``dir(propagator)`` shows the public names only."""

from __future__ import annotations

import dataclasses
import re

import pytest

import propagator as pg
from propagator.optuna_names import OPTUNA_NAMES
from propagator.pruners import PRUNERS, make_pruner
from propagator.strategies import STRATEGIES, make_strategy

REGISTRIES = {"strategy": (STRATEGIES, make_strategy), "early_stopping": (PRUNERS, make_pruner)}
SPACE = pg.Space({"x": pg.Float(0, 1), "y": pg.Float(0, 1)})


@pytest.mark.parametrize(
    ("field", "name"),
    [(field, name) for field, (registry, _) in REGISTRIES.items() for name in registry],
)
def test_an_unknown_setting_lists_the_settings_and_nothing_else(field, name):
    """Class-level facts (a strategy's ``multi_objective``, its ``name``) are no settings: they
    are not listed, and giving one is a ConfigError, not a TypeError from the constructor."""
    registry, make = REGISTRIES[field]
    settings = sorted(f.name for f in dataclasses.fields(registry[name]))
    for key in ("zzz", "multi_objective"):
        with pytest.raises(pg.ConfigError) as error:
            make({"name": name, key: 1})
        message = str(error.value)
        assert message.startswith(f"unknown key {key!r} in {field} {name!r}; ")
        expected = f"known: {', '.join(settings)}" if settings else "it takes no settings"
        assert message.endswith(f"; {expected}")


def test_multi_objective_in_a_search_is_a_config_error():
    with pytest.raises(pg.ConfigError, match="unknown key 'multi_objective' in strategy 'ga'"):
        pg.search(lambda p: 0.0, SPACE, budget=2, strategy={"name": "ga", "multi_objective": True})


@pytest.mark.parametrize(
    ("field", "name", "optuna", "ours"),
    [
        ("strategy", "tpe", "n_startup_trials", "startup"),
        ("strategy", "cmaes", "sigma0", "sigma"),
        ("strategy", "cmaes", "popsize", "population"),
        ("strategy", "cmaes", "inc_popsize", "growth"),
        ("strategy", "ga", "population_size", "population"),
        ("strategy", "ga", "mutation_prob", "mutation"),
        ("strategy", "ga", "crossover_prob", "crossover"),
        ("early_stopping", "median", "n_startup_trials", "warmup"),
        ("early_stopping", "median", "n_warmup_steps", "min_step"),
        ("early_stopping", "asha", "min_resource", "min_step"),
        ("early_stopping", "asha", "reduction_factor", "reduction"),
        ("early_stopping", "curve", "n_brackets", "brackets"),
    ],
)
def test_optuna_s_names_point_to_ours(field, name, optuna, ours):
    with pytest.raises(pg.ConfigError) as error:
        REGISTRIES[field][1]({"name": name, optuna: 5})
    assert str(error.value) == (
        f"unknown key {optuna!r} in {field} {name!r}; did you mean {ours!r}? "
        f"(Optuna's {optuna} is {ours} here)"
    )


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        # not max_trials, the closest spelling
        ({"name": "tpe", "n_ei_candidates": 24}, "Optuna's n_ei_candidates has no counterpart"),
        ({"name": "cmaes", "n_startup_trials": 5}, "known: growth, patience, population, sigma"),
        ({"name": "random", "seed": 1}, "set for the whole search: seed: N at the top level"),
    ],
)
def test_optuna_s_names_without_a_counterpart_say_so(spec, hint):
    with pytest.raises(pg.ConfigError, match=re.escape(hint)):
        make_strategy(spec)


def test_every_name_the_optuna_table_points_to_is_a_setting():
    """The table goes stale if a setting is renamed: each target must still exist."""
    for field, names in OPTUNA_NAMES.items():
        registry = REGISTRIES[field][0]
        settings = {f.name for cls in registry.values() for f in dataclasses.fields(cls)}
        for optuna, ours in names.items():
            assert set(ours) <= settings, (field, optuna, ours)
            assert optuna not in settings, (field, optuna)  # else it is no unknown key


@pytest.mark.parametrize(
    ("members", "single"),
    [(["ga", "cmaes"], "cmaes"), (["cmaes", "tpe", "quadratic"], "cmaes, quadratic")],
)
def test_a_portfolio_for_several_metrics_names_the_members_at_fault(members, single):
    with pytest.raises(pg.ConfigError) as error:
        pg.search(
            lambda p: {"a": 0.0, "b": 0.0},
            SPACE,
            budget=4,
            metric=["a", "b"],
            strategy={"name": "portfolio", "members": members},
        )
    assert str(error.value) == (
        f"strategy portfolio: its member(s) {single} optimize one value; with several "
        "metrics its members can be ga, random, tpe (or members: auto)"
    )


def test_a_portfolio_of_members_for_several_metrics_is_accepted():
    result = pg.search(
        lambda p: {"a": p["x"], "b": p["y"]},
        SPACE,
        budget=6,
        seed=0,
        metric=["a", "b"],
        strategy={"name": "portfolio", "members": ["ga", "random"]},
    )
    assert len(result) == 6 and result.pareto_front


def test_dir_shows_the_public_names_only():
    shown = dir(pg)
    public = [name for name in shown if not name.startswith("__")]
    assert public == sorted(pg.__all__)
    assert "__version__" in shown and "__doc__" in shown
    for helper in ("importlib", "Any", "TYPE_CHECKING", "annotations"):
        assert helper not in shown
    assert all(getattr(pg, name) is not None for name in public)
