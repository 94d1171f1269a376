"""Features that compose: searches drawn from the product of ranks per worker, islands,
repeats, early stopping, population-based training, budget kinds, one or two objectives,
warm starts, initial configurations, failing and ``None``-returning objectives on any rank,
and a kill -9 at a random moment (start-up included) followed by resumes, run as a user
runs them (see ``tests/combos.py``). Every run must end (no hang) with no traceback, and the
run must then hold: the budget exactly spent (evaluations) or never exceeded (steps), unique
ids, each record's status consistent with its steps and values, no configuration evaluated
twice on an island, each initial configuration once, every PBT segment continuing a stored
one, and every rank of a worker through the same repeats with the same steps and stop
decisions.

``PROPAGATE_COMBINATIONS=500 python -m pytest tests/test_combinations.py`` draws 500
scenarios instead of CI's handful.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings

import pytest
from combos import Scenario, check, play
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import propagator as pg

EXAMPLES = int(os.environ.get("PROPAGATE_COMBINATIONS", "3"))
SPACE = {
    "x": pg.Float(0.0, 1.0),
    "k": pg.Int(1, 4),
    "act": pg.Categorical(["a", "b", "c"]),
}


def _warm_objective(params: dict) -> dict:
    return {"loss": (params["x"] - 0.3) ** 2 + 0.02 * params["k"], "size": float(params["k"])}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Warm-start sources for one and two objectives: a run directory, its CSV export and an
    Optuna study."""
    import optuna

    from propagator.cli.main import main

    root = tmp_path_factory.mktemp("warm")
    out = {}
    for n, metric in ((1, "loss"), (2, ["loss", "size"])):
        run = root / f"run-{n}"
        pg.search(_warm_objective, SPACE, metric=metric, budget=8, seed=n, run_dir=run)
        assert main(["export", str(run), "-o", str(root / f"run-{n}.csv")]) == 0
        out[f"run-{n}"], out[f"csv-{n}"] = str(run), str(root / f"run-{n}.csv")
    storage = f"sqlite:///{root / 'studies.db'}"
    distributions = {
        "x": optuna.distributions.FloatDistribution(0.0, 1.0),
        "k": optuna.distributions.IntDistribution(1, 4),
        "act": optuna.distributions.CategoricalDistribution(["a", "b", "c"]),
    }
    for n, names in ((1, ["loss"]), (2, ["loss", "size"])):
        study = optuna.create_study(
            storage=storage, study_name=f"s{n}", directions=["minimize"] * n
        )
        with warnings.catch_warnings():  # experimental in optuna, and what a user calls
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
        for i in range(6):
            params = {"x": i / 6, "k": 1 + i % 4, "act": "abc"[i % 3]}
            values = _warm_objective(params)
            trial = optuna.trial.create_trial(
                params=params, distributions=distributions, values=[values[m] for m in names]
            )
            study.add_trial(trial)
        out[f"optuna-{n}"] = f"{storage}#s{n}"
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    rpw = draw(st.sampled_from([1, 2]))
    islands = draw(st.sampled_from([1, 2]))
    per_island = draw(st.sampled_from([1, 2])) if rpw * islands < 4 else 1
    fail_on = draw(st.sampled_from(["none", "leader", "follower", "all"]))
    # A rank that raises while its peers wait in a collective stops the job by design (after
    # failure_grace, see engine/crew.py): collectives only where ranks fail together.
    collective = rpw > 1 and fail_on in ("none", "all") and draw(st.booleans())
    early_stopping = draw(st.sampled_from(["none", "asha", "median", "promotion"]))
    repeats = draw(st.sampled_from([1, 2]))
    # mostly where it composes; sometimes where it must be refused
    pbt = (
        draw(st.booleans())
        if early_stopping == "none" and repeats == 1
        else draw(st.sampled_from([False, False, False, True]))
    )
    return Scenario(
        ranks_per_worker=rpw,
        islands=islands,
        workers_per_island=per_island,
        repeats=repeats,
        early_stopping=early_stopping,
        pbt=pbt,
        budget=draw(st.sampled_from(["evaluations", "steps", "time"])),
        objectives=draw(st.sampled_from([1, 2])),
        warm=draw(st.sampled_from(["none", "run", "csv", "optuna"])),
        initial=draw(st.integers(0, 2)),
        fail_on=fail_on,
        none_on_followers=rpw > 1 and draw(st.booleans()),
        collective=collective,
        strategy=draw(st.sampled_from(["ga", "random"])),
        kill_at=draw(st.one_of(st.none(), st.floats(0.2, 4.0))),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.mpi
@pytest.mark.timeout(120 + 90 * EXAMPLES)  # the suite's 300 s are for one example's worth
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_drawn_combinations_keep_the_invariants(scenario, sources, tmp_path):
    folder = tmp_path / uuid.uuid4().hex[:8]  # hypothesis reuses tmp_path across examples
    runs = play(scenario, folder, sources)
    check(scenario, folder, runs)
    shutil.rmtree(folder)


def test_the_harness_finds_a_run_that_breaks_an_invariant(sources, tmp_path):
    """The checks can fail: two evaluations beyond the budget are caught."""
    from propagator.cli.main import main

    s = Scenario(budget="evaluations")
    runs = play(s, tmp_path, sources)
    check(s, tmp_path, runs)
    grown = tmp_path / "grown.yaml"
    text = (tmp_path / "search.yaml").read_text()
    grown.write_text(text.replace("evaluations: 12", "evaluations: 14"))
    assert main(["run", str(grown), "--progress", "none"]) == 0
    with pytest.raises(AssertionError, match="14 evaluations stored"):
        check(s, tmp_path, runs)
