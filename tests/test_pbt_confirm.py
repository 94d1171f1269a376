"""PBT's winners confirmed (issue 20): the best members' schedules trained again from scratch
on fresh seeds, stretch by stretch, by workers of one and of two ranks, and after kill -9.

The objective (tests/data/pbt_objective.py) is deterministic given its schedule, so a replay
must end at exactly the member's value: any step trained with other params, or any copy of
another training, would show.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_traced, traced_calls

import propagator as pg
from propagator.cli import main
from propagator.engine.confirm import replay_stretches, schedule_tasks
from propagator.engine.records import Kind, Status, wire_dtype
from propagator.results.replay import stretches
from propagator.settings import Confirm

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from pbt_objective import EPOCHS  # noqa: E402

SPACE = pg.Space({"lr": pg.Float(0.0, 1.0), "tag": pg.Int(0, 9)})


# --- the tasks ----------------------------------------------------------------------------------
def _segments(chains: list[list[tuple[float, int, int]]], values: list[float]) -> np.ndarray:
    """Records of members, each a chain of ``(lr gene, last step, status)`` segments, the
    last segment of member ``k`` with value ``values[k]`` (earlier ones 9.0)."""
    rows = []
    for chain, value in zip(chains, values, strict=True):
        member = len(rows)
        for k, (lr, step, status) in enumerate(chain):
            rows.append((len(rows), member, lr, step, status, value if k == len(chain) - 1 else 9))
    out = np.zeros(len(rows), wire_dtype(SPACE.dim, lineage=True))
    for i, (rid, member, lr, step, status, value) in enumerate(rows):
        out[i]["id"], out[i]["member"], out[i]["step"], out[i]["status"] = rid, member, step, status
        out[i]["parent"] = rid - 1 if rid != member else -1
        out[i]["genes"] = (lr, 0.5)
        out[i]["values"][0] = value
        out[i]["kind"] = Kind.EVALUATED
    return out


P, OK = int(Status.PAUSED), int(Status.OK)


def test_a_schedule_is_its_stretches_of_unchanged_genes_to_the_last_step():
    rows = _segments([[(0.9, 3, P), (0.9, 6, P), (0.2, 9, P), (0.2, 12, P), (0.2, -1, OK)]], [1.0])
    by_id = {int(r["id"]): r for r in rows}
    got = [(float(g[0]), last) for g, last in replay_stretches(by_id, 4)]
    # a last segment that reported nothing (the training had ended) adds no stretch
    assert got == [(0.9, 6), (0.2, 12)]


def test_tasks_replay_the_best_distinct_members_with_fresh_ids_and_pauses_at_stretch_ends():
    rows = _segments(
        [[(0.9, 4, P), (0.3, 8, OK)], [(0.5, 8, OK)], [(0.9, 4, P), (0.1, 8, OK)]], [2.0, 1.0, 3.0]
    )
    tasks = schedule_tasks(rows, Confirm(top=2, seeds=2), 1.0, SPACE, first_id=100)
    assert len(tasks) == 4  # the best two members, twice each, best first
    ids = [s.record_id for task in tasks for s in task]
    assert ids == list(range(100, 100 + len(ids)))  # one fresh id per stretch
    first, second = tasks[0], tasks[2]
    assert [(float(s.genes[0]), s.until) for s in first] == [(0.5, None)]
    assert [(float(s.genes[0]), s.until) for s in second] == [(0.9, 4), (0.3, None)]
    # a member confirmed before (its last stretch recorded, here once) is replayed the rest
    done = rows[rows["member"] == 0][-1:].copy()
    done["id"], done["kind"], done["parent"] = 200, Kind.CONFIRMATION, -1
    tasks = schedule_tasks(np.concatenate([rows, done]), Confirm(2, 2), 1.0, SPACE, 300)
    assert [len(t) for t in tasks] == [1, 1, 2]


# --- whole searches -----------------------------------------------------------------------------
SCRIPT = f"""
import sys
sys.path.insert(0, {str(DATA)!r})
import propagator as pg
from propagator.cli import main
from pbt_objective import objective
space = pg.Space({{"lr": pg.Float(0.01, 1.0, log=True), "tag": pg.Int(0, 9)}})
r = pg.search(objective, space, metric="loss", budget=int(sys.argv[2]), seed=5,
              pbt={{"mutable": ["lr"], "interval": 3, "quantile": 0.5, "resample": 0.0}},
              confirm={{"top": 2, "seeds": 2}},
              run_dir=sys.argv[1], ranks_per_worker=int(sys.argv[3]))
print("RESULT", len(r))
"""


def _run(
    tmp_path: Path,
    ranks: int,
    per_worker: int,
    budget: int,
    kill_after: int | None = None,
    sleep: float = 0.02,
):
    """Run the search script (``sleep`` seconds per step); ``kill_after``: kill -9 it after
    that many more calls."""
    args = [str(tmp_path / "run"), str(budget), str(per_worker)]
    env = {"PBT_SLEEP": str(sleep), "PBT_TRACE": str(tmp_path / "trace")}
    return run_traced(tmp_path, SCRIPT, ranks, args, env, kill_after)


def _check_confirmations(result: pg.Result, budget: int) -> None:
    """Two winners, each replayed twice from scratch along its own schedule, ending exactly
    at its value; the search's own records are the budget's."""
    again = [r for r in result.records if r.confirmation]
    assert len(result) - len(again) == budget
    confirmed = result.confirmed
    assert len(confirmed) == 2
    by_id = {r.id: r for r in result.records}
    for c in confirmed:
        assert len(c.values) == 2
        assert c.values == pytest.approx([c.search.value] * 2, abs=1e-12)
        schedule = [(s["step"], s["params"]["lr"]) for s in stretches(result, c.search.id)]
        ends = [r for r in again if r.status == "ok" and r.params == c.params]
        assert len(ends) == 2
        for end in ends:
            chain = [end]
            while chain[-1].parent is not None:
                chain.append(by_id[chain[-1].parent])
            chain.reverse()
            assert all(r.confirmation and r.member == chain[0].id for r in chain)
            assert chain[0].metrics["restored"] == 0.0  # from scratch
            firsts = [1] + [r.step + 1 for r in chain[:-1]]
            assert list(zip(firsts, [r.params["lr"] for r in chain], strict=True)) == schedule
            assert end.step == EPOCHS
    assert result.best.id == confirmed[0].search.id


@pytest.mark.timeout(300)
def test_workers_of_two_ranks_replay_the_winners_schedules_exactly(tmp_path, capsys):
    code, out = _run(tmp_path, 4, 2, 30)
    assert code == 0, out[-3000:]
    result = pg.load(tmp_path / "run")
    _check_confirmations(result, 30)
    # the report counts the replays apart from the population, whose winner is confirmed
    assert main(["report", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    again = sum(r.confirmation for r in result.records)
    members = {r.member for r in result.records if not r.confirmation}
    assert f"evaluations  {len(result)} of 30 + {again} confirming" in shown
    assert f"  members    {len(members)} (" in shown and "  segments   30\n" in shown
    assert f"winning schedule: id {result.best.id} " in shown
    # every rank of a worker trained every stretch (the objective raises on a foreign shard)
    calls = traced_calls(tmp_path)
    again = {r.id for r in result.records if r.confirmation}
    ranks = {}
    for call in calls:
        if call["id"] in again:
            ranks.setdefault(call["id"], set()).add(call["rank"])
    assert set(ranks) == again and all(v == {0, 1} for v in ranks.values())
    # the replays' checkpoints are gone with them
    assert not any(str(i) in {p.name for p in (tmp_path / "run").glob("checkpoints/*")}
                   for i in again)  # fmt: skip


@pytest.mark.timeout(400)
def test_confirmations_cut_by_kill_9_are_finished_by_the_next_run(tmp_path):
    budget = 24
    # the first replay's first stretch traced: the others take 0.15 s or more per stretch
    code, out = _run(tmp_path, 4, 1, budget, kill_after=budget + 1, sleep=0.05)
    assert code != 0, out[-3000:]
    cut = pg.load(tmp_path / "run")
    done = [r for r in cut.records if r.confirmation and r.status == "ok"]
    assert len(cut) - sum(r.confirmation for r in cut.records) == budget
    assert len(done) < 4  # the kill came during the confirmations
    code, out = _run(tmp_path, 4, 1, budget)
    assert code == 0, out[-3000:]
    _check_confirmations(pg.load(tmp_path / "run"), budget)
