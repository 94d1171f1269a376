"""Early stopping that keeps the winners (issue 19): pausing at a rung and promoting later,
checkpoints that survive kill -9 and resume, the disk bound, brackets, and every rank of a
worker taking the same decisions."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import run_traced, traced_calls
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.engine.candidate import Evaluated
from propagator.engine.evaluation import Outcome
from propagator.engine.promotion import PausedTrainings
from propagator.engine.records import Status
from propagator.engine.stopping import Rungs
from propagator.pruners import ASHA
from propagator.settings import Budget, Settings
from propagator.store.checkpoints import Checkpoints

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from combos import Scenario, check, play  # noqa: E402
from paused_objective import EPOCHS, objective  # noqa: E402

SPACE = pg.Space({"x": pg.Float(0.0, 1.0), "y": pg.Float(0.0, 1.0)})


# --- promotion order, by hand ------------------------------------------------------------------
def _rows(losses_by_rung: dict[int, list[float]], first_id: int) -> np.ndarray:
    """Records whose rung values are the given losses (one record per value)."""
    dtype = Settings(budget=Budget(evaluations=1), pruner=ASHA()).wire_dtype(SPACE)
    values = [(k, v) for k, vs in losses_by_rung.items() for v in vs]
    rows = np.zeros(len(values), dtype)
    for i, (k, v) in enumerate(values):
        rows[i]["id"] = first_id + i
        rows[i]["status"] = int(Status.PRUNED)
        rows[i]["rungs"][:] = np.nan
        rows[i]["rungs"][: k + 1] = v  # it reached rung k with loss v (and v before)
    return rows


def _paused_trainings(tmp_path: Path, rungs: Rungs, limit_gib: float = 1.0) -> PausedTrainings:
    settings = SimpleNamespace(pruner=rungs.pruner, checkpoint_disk=limit_gib)
    ctx = SimpleNamespace(
        settings=settings,
        checkpoints=Checkpoints(tmp_path),
        layout=SimpleNamespace(n_workers=1),
        t0=time.time(),
        run_dir=tmp_path,
        worker=0,
    )
    replaced: list = []
    trainings = PausedTrainings(ctx, rungs, lambda i, g, e: replaced.append((i, e)))
    trainings.replaced = replaced
    return trainings


def _pause(trainings: PausedTrainings, record_id: int, rung: int, loss: float, size: int = 0):
    trainings._checkpoints.save(record_id, 0, b"x" * size)
    reports = [(s, loss) for s in (1, 3, 9)[: rung + 1]]
    evaluated = Evaluated(Outcome(Status.PAUSED, loss, None, "paused"), 0.0, 1.0, reports, reports)
    trainings.keep(record_id, np.zeros(2), evaluated, (0, rung, loss))


def test_a_paused_training_is_promoted_once_it_ranks_in_the_top_third_of_its_rung(tmp_path):
    """Hand-computed: ASHA keeps a loss at a rung of n values when it is no worse than the
    max(1, n // 3)-th best. Paused: 100 (id 100, rung 0, loss 0.5), 101 (rung 0, loss 0.4),
    102 (rung 1, loss 0.3)."""
    rungs = Rungs(ASHA(promotion=True), 1.0, seed=0)
    trainings = _paused_trainings(tmp_path, rungs)
    rungs.learn(_rows({0: [0.1, 0.2, 0.5, 0.4], 1: [0.2, 0.3]}, first_id=100)[[2, 3, 5]])
    for record_id, rung, loss in ((100, 0, 0.5), (101, 0, 0.4), (102, 1, 0.3)):
        _pause(trainings, record_id, rung, loss)
    # rung 0 holds 0.5, 0.4, 0.3 (102 passed it); rung 1 holds 0.3: 102 is alone at rung 1,
    # so max(1, 1 // 3) = 1: it is the best there and is promoted first (highest rung first)
    assert trainings.next().record_id == 102
    # rung 0: {0.5, 0.4, 0.3}: the best 1 is 0.3; neither 0.4 nor 0.5 passes
    assert trainings.next() is None
    # three more at rung 0 (0.9 each): 6 values, the best 2 are 0.3, 0.4: 101 passes
    rungs.learn(_rows({0: [0.9, 0.9, 0.9]}, first_id=200))
    assert trainings.next().record_id == 101
    assert trainings.next() is None
    # six more, all worse: 12 values, best 4 = 0.3, 0.4, 0.5, 0.9: 100 passes
    rungs.learn(_rows({0: [0.95] * 6}, first_id=300))
    assert trainings.next().record_id == 100
    assert len(trainings) == 0


@given(
    losses=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=30),
    extra=st.lists(st.floats(0.0, 1.0, allow_nan=False), max_size=30),
)
@settings(max_examples=40, deadline=None)
def test_promotion_order_is_best_loss_first_and_only_within_the_top_share(losses, extra):
    """Whatever the losses: a promoted training passes ASHA's rule at its rung, and no
    paused training that was not promoted has a better loss than one that was."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rungs = Rungs(ASHA(promotion=True), 1.0, seed=0)
        trainings = _paused_trainings(Path(tmp), rungs)
        rows = _rows({0: losses}, first_id=0)
        rungs.learn(rows)
        for i, loss in enumerate(losses):
            _pause(trainings, i, 0, loss)
        rungs.learn(_rows({0: extra}, first_id=1000))
        promoted = []
        while (p := trainings.next()) is not None:
            promoted.append(p.loss)
        everything = np.sort(np.array(losses + extra))
        kept = max(1, len(everything) // 3)
        assert all(loss <= everything[kept - 1] for loss in promoted)
        left = [p.loss for p in trainings._paused.values()]
        if promoted and left:
            assert max(promoted) <= min(left)
        assert promoted == sorted(promoted)


def test_the_disk_bound_deletes_the_oldest_checkpoints_first_and_says_so(tmp_path, caplog):
    rungs = Rungs(ASHA(promotion=True), 1.0, seed=0)
    limit = 2500 / 2**30  # GiB: two 1000-byte checkpoints fit, three do not
    trainings = _paused_trainings(tmp_path, rungs, limit_gib=limit)
    with caplog.at_level(logging.WARNING, logger="propagate"):
        for record_id in (1, 2, 3, 4):
            _pause(trainings, record_id, 0, 0.5, size=1000)
    assert sorted(trainings._paused) == [3, 4]
    assert Checkpoints(tmp_path).stored() == [3, 4]
    assert [i for i, _ in trainings.replaced] == [1, 2]
    assert all(e.outcome.status == Status.PRUNED for _, e in trainings.replaced)
    assert "checkpoint_disk" in trainings.replaced[0][1].outcome.error
    assert sum("evaluation 1: its checkpoint" in r.message for r in caplog.records) == 1


def test_brackets_are_drawn_per_configuration_in_hyperband_shares():
    pruner = ASHA(brackets=3, reduction=3)
    drawn = np.bincount([pruner.bracket(i, seed=7) for i in range(30000)], minlength=3)
    share = np.array([9 / 3, 3 / 2, 1 / 1])
    np.testing.assert_allclose(drawn / drawn.sum(), share / share.sum(), atol=0.01)
    assert [pruner.bracket(i, 7) for i in range(50)] == [pruner.bracket(i, 7) for i in range(50)]
    assert ASHA().bracket(123, 7) == 0


def test_a_bracket_is_judged_from_its_own_first_rung_against_its_own_members():
    pruner = ASHA(brackets=2)
    rungs = Rungs(pruner, 1.0, seed=3)
    rows = _rows({2: [0.1 * i for i in range(40)]}, first_id=0)
    rungs.learn(rows)
    for b in (0, 1):
        mine = [i for i in range(40) if pruner.bracket(i, 3) == b]
        assert sorted(rungs.at(b, 2)) == pytest.approx(sorted(0.1 * i for i in mine))
        # bracket 1 starts at rung 1: rung 0 holds only bracket 0's values
        assert len(rungs.at(b, 0)) == (len(mine) if b == 0 else 0)


# --- whole searches ------------------------------------------------------------------------
def _search(tmp_path: Path, budget: int, **kw):
    return pg.search(
        objective,
        SPACE,
        metric="val_loss",
        budget=budget,
        early_stopping={"name": "asha", "promotion": True},
        seed=5,
        strategy="random",
        **kw,
    )


def test_paused_trainings_resume_from_their_checkpoint_and_count_each_step_once(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PAUSED_TRACE", str(tmp_path / "trace"))
    result = _search(tmp_path, 60, run_dir=tmp_path / "run")
    calls = traced_calls(tmp_path)
    resumed = [c for c in calls if c["resumed"]]
    assert resumed, "no paused training was promoted"
    statuses = {r.status for r in result.records}
    assert "paused" in statuses and "ok" in statuses
    for call in resumed:
        # it continued right after the step it saved, reporting no step twice
        assert call["ran"][0] == call["restored"][0] + 1
    for record in result.records:
        steps = [s for s, _ in record.intermediate]
        assert steps == list(range(1, len(steps) + 1)), (record.id, steps)
        if record.promoted:
            assert record.status in ("ok", "paused", "pruned")
    promoted = [r for r in result.records if r.promoted]
    assert len(promoted) == len({c["id"] for c in resumed})
    assert len(result) == 60
    # checkpoints are kept for paused trainings only
    stored = set(Checkpoints(tmp_path / "run" / "checkpoints").stored())
    assert stored == {r.id for r in result.records if r.paused}


def test_an_objective_that_saves_nothing_is_pruned_not_paused(tmp_path):
    def curve(params, trial):
        for t in range(1, EPOCHS + 1):
            trial.report(t, float(params["x"]) + 1.0 / t)
            if t < EPOCHS and trial.should_stop():
                break
        return float(params["x"]) + 1.0 / t

    pruner = {"name": "asha", "promotion": True}
    result = pg.search(curve, SPACE, budget=30, early_stopping=pruner, seed=1)
    assert {r.status for r in result.records} <= {"ok", "pruned"}
    pruned = [r for r in result.records if r.pruned]
    assert pruned and all("saved no checkpoint" in r.error for r in pruned)


def test_without_a_run_directory_no_checkpoint_is_left_behind(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = _search(tmp_path, 40)
    assert any(r.paused for r in result.records)
    leftovers = [p for p in tmp_path.rglob("*.ckpt")]
    assert leftovers == []


SCRIPT = f"""
import sys
sys.path.insert(0, {str(DATA)!r})
import propagator as pg
from paused_objective import objective
space = pg.Space({{"x": pg.Float(0.0, 1.0), "y": pg.Float(0.0, 1.0)}})
r = pg.search(objective, space, metric="val_loss", budget=int(sys.argv[2]),
              early_stopping={{"name": "asha", "promotion": True}}, seed=5, strategy="random",
              run_dir=sys.argv[1], ranks_per_worker=int(sys.argv[3]))
print("RESULT", len(r), sum(x.paused for x in r.records), sum(x.promoted for x in r.records))
"""


def _run(tmp_path: Path, ranks: int, per_worker: int, budget: int, kill_after: int | None):
    """Run the search script; ``kill_after``: kill -9 it after that many more calls."""
    args = [str(tmp_path / "run"), str(budget), str(per_worker)]
    env = {"PAUSED_SLEEP": "0.01", "PAUSED_TRACE": str(tmp_path / "trace")}
    return run_traced(tmp_path, SCRIPT, ranks, args, env, kill_after)


@pytest.mark.timeout(400)
def test_checkpoints_survive_kill_9_and_resume_continues_paused_trainings(tmp_path):
    code, out = _run(tmp_path, 3, 1, 90, kill_after=None)
    assert code == 0, out[-3000:]
    first = pg.load(tmp_path / "run")
    paused = {r.id for r in first.records if r.paused}
    assert paused
    # a second session with more budget: it is killed while it works, then run again
    code, out = _run(tmp_path, 3, 1, 150, kill_after=20)
    assert code == -signal.SIGKILL or code != 0, out[-3000:]
    killed = pg.load(tmp_path / "run")
    assert len(first) < len(killed) < 150
    code, out = _run(tmp_path, 3, 1, 150, kill_after=None)
    assert code == 0, out[-3000:]
    final = pg.load(tmp_path / "run")
    assert len(final) == 150
    ckpt = Checkpoints(tmp_path / "run" / "checkpoints")
    for record in final.records:
        steps = [s for s, _ in record.intermediate]
        assert steps == list(range(1, len(steps) + 1)), (record.id, steps)
        if record.paused:
            assert (
                ckpt.complete(record.id, 1)
                and (ckpt.root / str(record.id) / "paused.json").exists()
            )
    assert set(ckpt.stored()) == {r.id for r in final.records if r.paused}
    calls = traced_calls(tmp_path)
    # trainings paused in the first session were resumed in a later one, from their state
    later = {c["id"] for c in calls if c["resumed"] and c["id"] in paused}
    assert later, "no training paused in the first session was resumed later"


@pytest.mark.timeout(300)
def test_every_rank_of_a_worker_pauses_and_resumes_together_from_its_own_shard(tmp_path):
    code, out = _run(tmp_path, 4, 2, 40, kill_after=None)
    assert code == 0, out[-3000:]
    calls = traced_calls(tmp_path)
    by_call: dict = {}
    for c in calls:
        key = (c["id"], c["resumed"])
        by_call.setdefault(key, {})[c["rank"]] = c
    assert any(resumed for _, resumed in by_call)
    for (record_id, resumed), ranks in by_call.items():
        assert sorted(ranks) == [0, 1], (record_id, ranks)
        a, b = ranks[0], ranks[1]
        assert a["ran"] == b["ran"] and a["stopped"] == b["stopped"]
        if resumed:  # each rank restored its own shard
            assert a["restored"][1] == 0 and b["restored"][1] == 1


def test_the_report_counts_paused_promoted_and_promoted_in_the_top_ten(tmp_path):
    from propagator.results.report import promotion_counts, step_counts

    result = _search(tmp_path, 60)
    paused, resumed, top = promotion_counts(result)
    records = result.records
    promoted = [r for r in records if r.promoted]
    assert resumed == len(promoted) > 0
    assert paused == len(promoted) + sum(r.paused for r in records)
    best10 = sorted((r for r in records if r.ok), key=lambda r: r.value)[:10]
    assert top == sum(r.promoted for r in best10)
    spent, saved = step_counts(result)
    assert spent == sum(len(r.intermediate) for r in records)
    assert saved == round(sum(EPOCHS - len(r.intermediate) for r in records if not r.ok))


@pytest.mark.mpi
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "scenario",
    [
        Scenario(ranks_per_worker=2, early_stopping="promotion", repeats=2, collective=True),
        Scenario(ranks_per_worker=2, early_stopping="promotion", fail_on="follower", kill_at=1.5),
    ],
    ids=["two-ranks-repeats-collectives", "killed-follower-fails"],
)
def test_promotion_composes_with_repeats_ranks_step_budgets_failures_and_kills(scenario, tmp_path):
    """The combination test's invariants (budgets, records, ranks' agreement, checkpoints of
    paused trainings only) hold with promotion among the other features."""
    runs = play(scenario, tmp_path, {})
    check(scenario, tmp_path, runs)
    records = pg.load(tmp_path / "run").records
    assert any(r.paused or r.promoted for r in records), [r.status for r in records]


def test_a_warm_start_from_a_run_with_paused_trainings_takes_them_as_pruned(tmp_path):
    _search(tmp_path, 30, run_dir=tmp_path / "first")
    first = pg.load(tmp_path / "first")
    assert any(r.paused for r in first.records)
    seen = []

    def plain(params, trial):
        seen.append(params)
        return float(params["x"])

    result = pg.search(plain, SPACE, budget=5, warm_start=str(tmp_path / "first"), seed=2)
    assert len(result) == 5 and len(seen) == 5
