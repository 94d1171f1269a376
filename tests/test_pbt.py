"""Population-based training (issue 20): explore stays in bounds and conditions, the
population's exploit choice against a hand-computed table, whole searches whose copies are
exact and whose lineage is recorded, kill -9 and resume, and every rank of a worker restoring
its own shard of the same copy."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_traced, traced_calls
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.engine.population import Population
from propagator.engine.records import Status
from propagator.errors import ConfigError
from propagator.pbt import PBT, explore, schedule
from propagator.settings import Budget, Settings
from propagator.store.checkpoints import Checkpoints

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from pbt_objective import EPOCHS  # noqa: E402

SPACE = pg.Space(
    {
        "lr": pg.Float(1e-3, 1.0, log=True),
        "wd": pg.Float(0.0, 0.1),
        "layers": pg.Int(1, 6),
        "opt": pg.Categorical(["sgd", "adam", "lamb"]),
        "momentum": pg.Float(0.0, 0.99, when="opt == 'sgd'"),
        "width": pg.Int(16, 256, log=True),
    }
)
MUTABLE = ("lr", "wd", "layers", "opt", "momentum")


# --- explore ------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.5, 1.0]),
)
def test_explore_moves_only_mutable_parameters_and_stays_in_bounds(genes, seed, resample):
    spec = PBT(mutable=MUTABLE, resample=resample)
    before = np.array(genes)
    after = explore(SPACE, before, spec, np.random.default_rng(seed))
    old, new = SPACE.decode(before), SPACE.decode(after)
    assert np.all((after >= 0.0) & (after <= 1.0))
    assert new["width"] == old["width"]  # not mutable
    for name, param in SPACE.params.items():
        if name in new:
            value = new[name]
            if isinstance(param, pg.Categorical):
                assert value in param.choices
            else:
                assert param.low <= value <= param.high
    assert ("momentum" in new) == (new["opt"] == "sgd")  # its condition holds
    if resample == 0.0:  # moved, never drawn anew
        for name in ("lr", "wd"):
            p = SPACE.params[name]
            ratio = new[name] / old[name] if old[name] else 1.0
            clipped = any(np.isclose(new[name], (p.low, p.high), rtol=1e-9, atol=1e-12))
            assert clipped or any(abs(ratio - f) < 1e-9 for f in spec.perturb), (name, ratio)
        assert abs(new["layers"] - old["layers"]) == 1
        choices = SPACE.params["opt"].choices
        assert abs(choices.index(new["opt"]) - choices.index(old["opt"])) == 1


def test_bad_pbt_settings_name_the_field():
    for spec, message in [
        ({"interval": 2}, "pbt.mutable is missing"),
        ({"mutable": []}, "pbt.mutable"),
        ({"mutable": ["lr"], "interval": 0}, "pbt.interval"),
        ({"mutable": ["lr"], "quantile": 0.7}, "pbt.quantile"),
        ({"mutable": ["lr"], "perturb": [0.8, -1]}, "pbt.perturb"),
        ({"mutable": ["lr"], "resample": 2}, "pbt.resample"),
        ({"mutable": ["lr"], "every": 3}, "unknown setting"),
    ]:
        with pytest.raises(ConfigError, match=message):
            pg.search(lambda p: 0.0, SPACE, budget=1, pbt=spec)
    with pytest.raises(ConfigError, match="not a parameter of the space"):
        pg.search(lambda p: 0.0, SPACE, budget=1, pbt={"mutable": ["beta"]})
    for clash in ({"early_stopping": "asha"}, {"repeats": 2}):
        with pytest.raises(ConfigError, match="pbt does not combine"):
            pg.search(lambda p: 0.0, SPACE, budget=9, pbt={"mutable": ["lr"]}, **clash)


# --- the population -----------------------------------------------------------------------------
def _segments(values: dict[int, float], status: int = int(Status.PAUSED)) -> np.ndarray:
    """One paused segment per member (id = member + 100), with the given values."""
    dtype = Settings(budget=Budget(evaluations=1), pbt=PBT(mutable=("lr",))).wire_dtype(SPACE)
    rows = np.zeros(len(values), dtype)
    for i, (member, value) in enumerate(values.items()):
        rows[i]["id"], rows[i]["member"], rows[i]["parent"] = member + 100, member, -1
        rows[i]["status"], rows[i]["values"][0], rows[i]["end"] = status, value, 1.0
    return rows


def test_the_worst_quarter_copies_one_of_the_best_quarter_and_the_rest_go_on():
    population = Population(sign=1.0, quantile=0.25)
    losses = {0: 0.5, 1: 0.1, 2: 0.9, 3: 0.3, 4: 0.7, 5: 0.2, 6: 0.8, 7: 0.4}
    population.learn(_segments(losses))
    rng = np.random.default_rng(0)
    # 8 members: the worst 2 (2: 0.9, 6: 0.8) copy the best 2 (1: 0.1, 5: 0.2)
    for member in (2, 6):
        sources = {int(population.source(member, rng)["member"]) for _ in range(40)}
        assert sources == {1, 5}
    for member in (0, 1, 3, 4, 5, 7):
        assert population.source(member, rng) is None
    # maximising flips the order; a member that completed leaves the population
    population = Population(sign=-1.0, quantile=0.25)
    population.learn(_segments(losses))
    assert int(population.source(1, rng)["member"]) in {2, 6}
    population.learn(_segments({2: 0.95, 6: 0.85}, status=int(Status.OK)))
    assert len(population) == 6
    assert population.source(99, rng) is None  # unknown member


def test_a_later_segment_replaces_an_earlier_one_whatever_order_they_arrive_in():
    population = Population(sign=1.0, quantile=0.5)
    early, late = _segments({0: 0.1}), _segments({0: 0.9})
    late["end"], late["id"] = 2.0, 300
    population.learn(late)
    population.learn(early)
    population.learn(_segments({1: 0.5}))
    assert int(population.source(0, np.random.default_rng(0))["member"]) == 1  # 0.9 is worst


# --- whole searches -----------------------------------------------------------------------------
SCRIPT = f"""
import sys
sys.path.insert(0, {str(DATA)!r})
import propagator as pg
from pbt_objective import objective
space = pg.Space({{"lr": pg.Float(0.01, 1.0, log=True), "tag": pg.Int(0, 9)}})
r = pg.search(objective, space, metric="loss", budget=int(sys.argv[2]), seed=7,
              pbt={{"mutable": ["lr"], "interval": 3, "quantile": float(sys.argv[5]),
                   "resample": 0.0}},
              run_dir=sys.argv[1], ranks_per_worker=int(sys.argv[3]), islands=int(sys.argv[4]),
              migration={{"probability": 0.9}})
print("RESULT", len(r))
"""


def _run(
    tmp_path: Path,
    ranks: int,
    per_worker: int,
    budget: int,
    kill_after: int | None = None,
    islands: int = 1,
    quantile: float = 0.25,
):
    """Run the search script; ``kill_after``: kill -9 it after that many more calls."""
    args = [str(tmp_path / "run"), str(budget), str(per_worker), str(islands), str(quantile)]
    env = {"PBT_SLEEP": "0.01", "PBT_TRACE": str(tmp_path / "trace")}
    return run_traced(tmp_path, SCRIPT, ranks, args, env, kill_after)


def _check_lineage(result: pg.Result, interval: int = 3) -> int:
    """Every segment continues its parent exactly and in step; returns the copies made."""
    by_id = {r.id: r for r in result.records}
    copies = 0
    for r in result.records:
        assert r.member is not None
        assert r.status in ("ok", "paused"), (r.id, r.status, r.error)
        if r.parent is None:
            assert r.member == r.id and r.metrics["restored"] == 0.0
            assert r.step == interval
            continue
        parent = by_id[r.parent]
        assert r.metrics["restored"] == parent.metrics["w"]  # the saved training, exactly
        assert r.step == min(parent.step + interval, EPOCHS)
        assert r.params["tag"] == parent.params["tag"]  # not mutable: kept
        if parent.member != r.member:
            copies += 1
            lr, ratio = r.params["lr"], r.params["lr"] / parent.params["lr"]
            moved = any(abs(ratio - f) < 1e-9 for f in (0.8, 1.2))
            assert moved or lr in (0.01, 1.0), (r.id, ratio)  # perturbed, or at a bound
        else:
            assert r.params == parent.params  # its own training: the same configuration
    return copies


@pytest.mark.timeout(300)
def test_pbt_copies_exactly_records_lineage_and_keeps_one_checkpoint_per_member(tmp_path):
    code, out = _run(tmp_path, 4, 1, 48)
    assert code == 0, out[-3000:]
    result = pg.load(tmp_path / "run")
    assert len(result) == 48
    assert _check_lineage(result) >= 1, "no member copied another"
    best = result.best
    assert best.status == "ok" and best.step == EPOCHS
    rows = {int(r["id"]): r for r in result.rows}
    chain = schedule(rows, best.id, result.space.decode)
    assert chain[0].first_step == 1 and chain[-1].last_step == EPOCHS and chain[-1].id == best.id
    for a, b in itertools.pairwise(chain):
        assert b.first_step == a.last_step + 1
    # each worker keeps the checkpoints of its last 3 paused segments (its live member's
    # latest among them), and no other
    by_worker: dict = {}
    for r in sorted(result.records, key=lambda r: (r.end, r.id)):
        by_worker.setdefault(r.worker, []).append(r)
    kept = set()
    for segments in by_worker.values():
        if segments[-1].paused:
            kept.add(segments[-1].id)
        kept |= {r.id for r in [r for r in segments if r.paused][-3:]}
    assert set(Checkpoints(tmp_path / "run" / "checkpoints").stored()) == kept


@pytest.mark.timeout(300)
def test_strong_members_migrate_and_are_copied_on_another_island(tmp_path):
    # the worst half copy the best half: a copy from an immigrant is all but certain
    code, out = _run(tmp_path, 4, 1, 64, islands=2, quantile=0.5)
    assert code == 0, out[-3000:]
    result = pg.load(tmp_path / "run")
    assert _check_lineage(result) >= 1
    by_id = {r.id: r for r in result.records}
    crossed = [
        r for r in result.records if r.parent is not None and by_id[r.parent].island != r.island
    ]
    assert crossed, "no member was copied from another island"


@pytest.mark.timeout(400)
def test_pbt_resumes_after_kill_9_from_the_members_saved_trainings(tmp_path):
    code, out = _run(tmp_path, 4, 1, 24)
    assert code == 0, out[-3000:]
    first = pg.load(tmp_path / "run")
    code, out = _run(tmp_path, 4, 1, 72, kill_after=10)
    assert code != 0, out[-3000:]
    code, out = _run(tmp_path, 4, 1, 72)
    assert code == 0, out[-3000:]
    final = pg.load(tmp_path / "run")
    assert len(final) == 72
    _check_lineage(final)
    earlier = {r.id for r in first.records}
    later = [r for r in final.records if r.id not in earlier]
    assert any(r.parent in earlier for r in later), "no member went on after the resume"


@pytest.mark.timeout(300)
def test_every_rank_of_a_worker_restores_its_own_shard_of_the_same_copy(tmp_path):
    code, out = _run(tmp_path, 4, 2, 30)
    assert code == 0, out[-3000:]
    result = pg.load(tmp_path / "run")
    assert _check_lineage(result) >= 1
    by_call: dict = {}
    for c in traced_calls(tmp_path):
        by_call.setdefault(c["id"], {})[c["rank"]] = c
    assert any(c[0]["start"] > 0 for c in by_call.values())
    for record_id, ranks in by_call.items():
        assert sorted(ranks) == [0, 1], record_id
        assert ranks[0]["restored"] == ranks[1]["restored"]
        assert ranks[0]["start"] == ranks[1]["start"] and ranks[0]["t"] == ranks[1]["t"]


SEARCH_FILE = f"""
objective: {DATA / "pbt_objective.py"}:objective
metric: loss
space:
  lr: {{type: float, low: 0.01, high: 1.0, log: true}}
  tag: {{type: int, low: 0, high: 9}}
budget: {{evaluations: 40}}
seed: 3
pbt: {{mutable: [lr], interval: 3, quantile: 0.25}}
run_dir: run
"""


def _propagate(cwd: Path, *args: str, ranks: int = 1) -> str:
    launcher = ["mpiexec", "-n", str(ranks)] if ranks > 1 else []
    main = f"from propagator.cli import main; raise SystemExit(main({list(args)!r}))"
    cmd = [*launcher, sys.executable, "-c", main]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(400)
def test_the_replayed_winning_schedule_reaches_the_winners_value_on_every_member(tmp_path):
    (tmp_path / "search.yaml").write_text(SEARCH_FILE)
    _propagate(tmp_path, "search.yaml", "--progress", "none", ranks=4)
    original = pg.load(tmp_path / "run")
    _propagate(tmp_path, "replay", "run", "--members", "4", "-o", "replay.yaml")
    replay = yaml.safe_load((tmp_path / "replay.yaml").read_text())
    steps = replay["pbt"]["replay"]
    rows = {int(r["id"]): r for r in original.rows}
    chain = schedule(rows, original.best.id, original.space.decode)
    assert steps[0]["step"] == 1 and [s["params"] for s in steps] == [
        p for i, p in enumerate(c.params for c in chain) if i == 0 or p != chain[i - 1].params
    ]
    assert replay["budget"] == {"evaluations": 4 * len(steps)} and "seed" not in replay
    _propagate(tmp_path, "replay.yaml", "--progress", "none", ranks=4)
    replayed = pg.load(tmp_path / "run-replay")
    complete = [r for r in replayed.records if r.ok]
    assert len(complete) == 4
    for r in complete:  # the objective is deterministic: the schedule alone sets the value
        assert r.value == original.best.value and r.step == EPOCHS
        for segment in schedule(
            {int(x["id"]): x for x in replayed.rows}, r.id, replayed.space.decode
        ):
            expected = max(
                (s for s in steps if s["step"] <= segment.first_step), key=lambda s: s["step"]
            )
            assert segment.params == expected["params"]


def test_replay_says_why_it_cannot_replay_a_run():
    from propagator.errors import PropagateError
    from propagator.results.replay import replay_config, stretches

    plain = pg.search(lambda p: p["lr"], SPACE, budget=3, seed=1)
    with pytest.raises(PropagateError, match="did not use pbt"):
        stretches(plain)
    with pytest.raises(PropagateError, match="--members must be at least 1"):
        replay_config({"budget": 3}, [{"step": 1, "params": {}}], 0)


def test_a_step_budget_counts_each_trained_step_once_and_a_time_budget_ends_pbt(monkeypatch):
    from pbt_objective import objective

    space = pg.Space({"lr": pg.Float(0.01, 1.0, log=True)})
    spec = {"mutable": ["lr"], "interval": 3}
    result = pg.search(objective, space, metric="loss", budget={"steps": 30}, pbt=spec, seed=2)
    assert sum(len(r.intermediate) for r in result.records) == 30
    per_member: dict = {}
    for r in result.records:  # one worker: no copies, each member's segments in turn
        per_member.setdefault(r.member, []).extend(s for s, _ in r.intermediate)
    for steps in per_member.values():
        assert steps == list(range(1, len(steps) + 1))  # each step once, in order
    monkeypatch.setenv("PBT_SLEEP", "0.05")
    started = time.monotonic()
    timed = pg.search(objective, space, metric="loss", budget={"time": 1.5}, pbt=spec, seed=2)
    assert time.monotonic() - started < 10 and len(timed) >= 2
    assert all(r.status in ("ok", "paused", "pruned") for r in timed.records)


def test_pbt_may_not_change_what_a_trainer_cannot_change_midway(tmp_path):
    from propagator import config

    (tmp_path / "s.yaml").write_text(
        "objective: baseline\n"
        "space: {lr: {type: float, low: 0.01, high: 0.5}, width: {type: int, low: 8, high: 64}}\n"
        "fixed: {dataset: digits, epochs: 4}\nmetric: val_loss\nbudget: {evaluations: 8}\n"
        "pbt: {mutable: [lr, width]}\n"
    )
    search = config.load(tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=r"pbt\.mutable names 'width', which the objective"):
        search.objective()
    (tmp_path / "s.yaml").write_text((tmp_path / "s.yaml").read_text().replace(", width]", "]"))
    config.load(tmp_path / "s.yaml").objective()  # lr may change
