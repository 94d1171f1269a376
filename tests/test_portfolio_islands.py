"""The default portfolio's members follow the space at every island count (issue 17): each
island runs the members the space gives one island, no other, and `validate` and `report`
show them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.cli import main
from propagator.results.islands import island_strategies
from propagator.settings import Settings, strategies_for
from propagator.strategies import Portfolio, StrategySpec

SMALL = pg.Space({f"x{i}": pg.Float(0, 1) for i in range(10)})
LARGE = pg.Space({f"x{i}": pg.Float(0, 1) for i in range(11)})
INTS = pg.Space({"x": pg.Float(0, 1), "n": pg.Int(1, 9)})
MIXED = pg.Space({"x": pg.Float(1e-4, 1, log=True), "act": pg.Categorical(["relu", "tanh"])})
CONDITIONAL = pg.Space({"n": pg.Int(1, 3), "w": pg.Float(0, 1, when="n > 1")})
SPACES = {
    "10 floats": (SMALL, {"ga", "cmaes", "quadratic"}),
    "11 floats": (LARGE, {"ga", "cmaes"}),
    "float and int": (INTS, {"ga", "cmaes"}),
    "categorical": (MIXED, {"ga", "cmaes", "tpe"}),
    "conditional": (CONDITIONAL, {"ga", "cmaes", "tpe"}),
}


def _members(spec: StrategySpec, space: pg.Space, objectives: int = 1) -> list[str]:
    """The strategies an island with ``spec`` runs on ``space``, by name."""
    if isinstance(spec, Portfolio):
        return [m.name for m in spec.members_for(space, objectives)]
    return [spec.name]


@pytest.mark.parametrize("n_islands", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("case", list(SPACES))
def test_every_island_runs_exactly_the_members_the_space_allows(case, n_islands):
    space, allowed = SPACES[case]
    found = Settings(
        budget=pg.Budget(10), islands=n_islands, strategy=strategies_for("portfolio", n_islands)
    )
    found.check(space)
    assert len(found.strategy) == n_islands
    for spec in found.strategy:
        assert sorted(_members(spec, space)) == sorted(allowed)
        spec.check(space)


def test_with_several_metrics_each_island_keeps_the_members_that_handle_them():
    one = [m.name for m in Portfolio().members_for(MIXED, 2)]
    assert one and all(pg.strategies.make_strategy(n).multi_objective for n in one)
    for spec in strategies_for("portfolio", 3):
        assert _members(spec, MIXED, 2) == one


def test_explicit_members_are_still_dealt_out():
    dealt = strategies_for({"name": "portfolio", "members": ["ga", "cmaes", "tpe"]}, 3)
    assert [s.name for s in dealt] == ["ga", "cmaes", "tpe"]


@st.composite
def _spaces(draw: st.DrawFn) -> pg.Space:
    """Spaces of 1 to 14 parameters: floats (linear or log), ints, categoricals, and floats
    active only for one choice of the first categorical."""
    params: dict[str, object] = {}
    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["float", "log", "int", "categorical", "conditional"]))
        choices = [name for name, p in params.items() if isinstance(p, pg.Categorical)]
        if kind == "float" or (kind == "conditional" and not choices):
            params[f"p{i}"] = pg.Float(-1, 1)
        elif kind == "log":
            params[f"p{i}"] = pg.Float(1e-3, 1, log=True)
        elif kind == "int":
            params[f"p{i}"] = pg.Int(0, draw(st.integers(1, 50)))
        elif kind == "categorical":
            params[f"p{i}"] = pg.Categorical(["a", "b", "c"])
        else:
            params[f"p{i}"] = pg.Float(0, 1, when=f"{choices[0]} == 'a'")
    return pg.Space(params)


@settings(max_examples=60, deadline=None)
@given(space=_spaces(), n_islands=st.integers(1, 6))
def test_generated_spaces_get_the_one_island_members_on_every_island(space, n_islands):
    one = _members(strategies_for("portfolio", 1)[0], space)
    islands = strategies_for("portfolio", n_islands)
    assert [sorted(_members(s, space)) for s in islands] == [sorted(one)] * n_islands
    structured = any(
        isinstance(p, pg.Categorical) or p.when is not None for p in space.params.values()
    )
    floats = all(isinstance(p, pg.Float) for p in space.params.values())
    assert ("tpe" in one) == structured
    assert ("quadratic" in one) == (floats and not structured and space.dim <= 10)
    assert {"ga", "cmaes"} <= set(one)


def test_report_names_the_space_members_on_every_island():
    config = Settings(
        budget=pg.Budget(10), islands=3, strategy=strategies_for("portfolio", 3)
    ).to_dict()
    one_each = SimpleNamespace(world_size=3, n_workers=3, n_islands=3)
    small = SimpleNamespace(space=SMALL, objectives=("value",), info=one_each)
    mixed = SimpleNamespace(space=MIXED, objectives=("value",), info=one_each)
    assert island_strategies(config, small) == ["portfolio (ga, cmaes, quadratic)"] * 3
    assert island_strategies(config, mixed) == ["portfolio (ga, cmaes, tpe)"] * 3
    # 26 workers: islands of 9, 9 and 8 workers, from 8 on an island TPE and CMA-ES alone
    mixed.info = SimpleNamespace(world_size=26, n_workers=26, n_islands=3)
    assert island_strategies(config, mixed) == ["portfolio (tpe, cmaes)"] * 3
    sizes = dict(config, islands=[22, 3, 1])
    expected = ["portfolio (tpe, cmaes)"] + ["portfolio (ga, cmaes, tpe)"] * 2
    assert island_strategies(sizes, mixed) == expected
    mixed.info = SimpleNamespace(world_size=21, n_workers=21, n_islands=3)  # 7 each
    assert island_strategies(config, mixed) == ["portfolio (ga, cmaes, tpe)"] * 3
    # stored island sizes that do not fit the run's workers: named as for one worker each
    assert island_strategies(dict(config, islands=[30, 30, 30]), mixed) == [expected[1]] * 3


def test_validate_shows_the_portfolio_on_every_island(tmp_path, capsys):
    (tmp_path / "f.py").write_text("def f(params, trial):\n    return 0.0\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        "objective: f.py:f\nspace: {x: {type: float, low: 0, high: 1}}\n"
        "budget: {evaluations: 4}\nislands: 3\n"
    )
    assert main(["validate", str(path)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)["strategy"]
    assert [(s["name"], s["members"]) for s in shown] == [("portfolio", "auto")] * 3
