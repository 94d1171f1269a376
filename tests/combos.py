"""Searches drawn from the product of the features, run as a user runs them (``mpiexec -n K
propagate search.yaml``, killed with SIGKILL at a random moment, run again until the budget is
spent), and the invariants every such run must keep. Used by ``tests/test_combinations.py``
and by ``jobs/bench/kill_resume.py``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from propagator.store.checkpoints import Checkpoints

DATA = Path(__file__).parent / "data"
RUN_TIMEOUT = 90  # seconds one run of the command may take before it counts as a hang
MAX_RUNS = 8  # runs of the command (the first, killed or not, and resumes) before giving up
_PROPAGATE = [
    sys.executable,
    "-c",
    "import sys; from propagator._entry import main; sys.exit(main())",
]


@dataclass(frozen=True)
class Scenario:
    """One combination of features (see :func:`search_file` for what each means)."""

    ranks_per_worker: int = 1
    islands: int = 1
    workers_per_island: int = 1
    repeats: int = 1
    early_stopping: str = "none"  # none, asha, median, promotion (asha that pauses)
    pbt: bool = False  # population-based training of x, in segments of 2 epochs
    budget: str = "evaluations"  # evaluations, steps, time
    objectives: int = 1
    warm: str = "none"  # none, run, csv, optuna
    initial: int = 0  # initial configurations
    fail_on: str = "none"  # none, leader, follower, all: ranks that raise where x > 0.75
    none_on_followers: bool = False
    collective: bool = False  # an all-reduce on trial.comm every epoch
    strategy: str = "ga"
    kill_at: float | None = None  # seconds after the start of the first run
    seed: int = 0
    amount: float | None = None  # the budget's size (default: a small one per kind)

    @property
    def ranks(self) -> int:
        return self.ranks_per_worker * self.islands * self.workers_per_island

    @property
    def refused(self) -> bool:
        """A combination the search file must refuse with a one-line error."""
        several = self.objectives > 1
        clash = self.early_stopping != "none" or self.repeats > 1 or several
        return (several and self.early_stopping != "none") or (self.pbt and clash)

    @property
    def budget_value(self) -> float:
        return self.amount or {"evaluations": 12, "steps": 30, "time": 2.5}[self.budget]


def search_file(s: Scenario, folder: Path, sources: dict[str, str]) -> Path:
    """Write the scenario's search file into ``folder`` (its run goes to ``folder/run``)."""
    (folder / "trace").mkdir(parents=True, exist_ok=True)
    config: dict = {
        "objective": f"{DATA / 'combo_objective.py'}:objective",
        "space": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "k": {"type": "int", "low": 1, "high": 4},
            "act": {"type": "categorical", "choices": ["a", "b", "c"]},
        },
        "fixed": {
            "epochs": 4,
            "epoch_s": 0.01,
            "fail_on": s.fail_on,
            "none_on_followers": s.none_on_followers,
            "collective": s.collective,
            "trace": str(folder / "trace"),
        },
        "metric": "loss" if s.objectives == 1 else ["loss", "size"],
        "budget": {s.budget: s.budget_value},
        "islands": s.islands,
        "ranks_per_worker": s.ranks_per_worker,
        "strategy": s.strategy,
        "run_dir": str(folder / "run"),
        "seed": s.seed,
        "repeats": s.repeats,
        "failure_grace": "5s",
        "max_initial_failures": 50,  # a failing corner must not look like a broken objective
    }
    if s.early_stopping != "none":
        name, promotion = s.early_stopping, s.early_stopping == "promotion"
        config["early_stopping"] = {"name": "asha" if promotion else name, "min_step": 1}
        config["early_stopping"] |= {"reduction": 2, "promotion": True} if promotion else {}
    if s.pbt:
        config["pbt"] = {"mutable": ["x"], "interval": 2}
    if s.initial:
        config["initial"] = [{"x": 0.1 * (i + 1), "k": 1 + i, "act": "a"} for i in range(s.initial)]
    if s.warm != "none":
        config["warm_start"] = sources[f"{s.warm}-{s.objectives}"]
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Run:
    code: int
    output: str
    seconds: float
    started: float  # epoch seconds


def run_once(s: Scenario, path: Path, kill_at: float | None = None) -> Run:
    """One ``mpiexec -n K propagate PATH``, killed with SIGKILL ``kill_at`` s after its start
    (the whole process group, as a batch system's kill). A hang fails."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = ["mpiexec", "-n", str(s.ranks), *_PROPAGATE, str(path), "--progress", "none"]
    began, started = time.monotonic(), time.time()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
        cwd=path.parent,
    )
    try:
        output, _ = proc.communicate(timeout=kill_at if kill_at is not None else RUN_TIMEOUT)
        return Run(proc.returncode, output, time.monotonic() - began, started)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    if kill_at is None:
        (path.parent / "hung.log").write_text(output)  # kept for a look: the test fails
        raise AssertionError(f"{s}: a run hung for {RUN_TIMEOUT} s:\n{output[-3000:]}")
    return Run(-9, output, time.monotonic() - began, started)


def play(s: Scenario, folder: Path, sources: dict[str, str]) -> list[Run]:
    """Run the scenario to its end: the first run (killed at ``s.kill_at``), then again until
    a run finds the budget spent. Returns every run; checks each as it goes."""
    path = search_file(s, folder, sources)
    runs = [run_once(s, path, None if s.refused else s.kill_at)]
    if s.refused:
        first = runs[0]
        errors = [line for line in first.output.splitlines() if line.startswith("propagate: error")]
        assert first.code == 2 and len(errors) == 1, f"{s}: not refused cleanly:\n{first.output}"
        assert "Traceback" not in first.output, f"{s}:\n{first.output}"
        return runs
    while True:
        last = runs[-1]
        assert "Traceback" not in last.output, f"{s}: a run printed a traceback:\n{last.output}"
        assert last.code in (0, -9), f"{s}: a run exited {last.code}:\n{last.output[-3000:]}"
        if _spent(last):
            return runs
        assert len(runs) < MAX_RUNS, f"{s}: the budget is not spent after {len(runs)} runs"
        runs.append(run_once(s, path))


def _spent(r: Run) -> bool:
    return r.code == 0 and re.search(r"budget of .* is spent", r.output) is not None


def check(s: Scenario, folder: Path, runs: list[Run]) -> None:
    """The invariants of a finished scenario (see the module docstring of the test)."""
    if s.refused:
        return
    import propagator as pg
    from propagator.store.hdf5 import read_meta
    from propagator.store.load import stored_dtype
    from propagator.store.run_store import read_run

    run_dir = folder / "run"
    meta, _ = read_meta(run_dir / "run.h5")
    stored = read_run(run_dir, stored_dtype(meta))
    duplicated = [p for p in stored.problems if "duplicate" in p]
    assert not duplicated, f"{s}: {duplicated}"
    result = pg.load(run_dir)
    records = [r for r in result.records if not r.confirmation]
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)), f"{s}: ids repeat"
    _check_budget(s, records)
    for r in records:
        _check_record(s, r)
    _check_unique(s, records)
    _check_checkpoints(s, run_dir, records)
    _check_lineage(s, records)
    _check_ranks(s, folder, records)


def _check_budget(s: Scenario, records: list) -> None:
    if s.budget == "evaluations":
        assert len(records) == s.budget_value, f"{s}: {len(records)} evaluations stored"
    elif s.budget == "steps":
        steps = sum(len(r.intermediate) for r in records)
        assert steps <= s.budget_value, f"{s}: {steps} steps stored of {s.budget_value}"


def _check_record(s: Scenario, r) -> None:
    where = f"{s}: record {r.id} ({r.status}, {r.error!r})"
    if r.intermediate:
        assert r.step == r.intermediate[-1][0], where
    # a PBT segment holds its own steps, after its parent's
    first = 1 if r.parent is None else r.step - len(r.intermediate) + 1
    if r.status == "ok":
        assert r.error is None, where
        if s.pbt:
            assert r.step == 4 and [t for t, _ in r.intermediate] == list(range(first, 5)), where
        else:
            assert len(r.intermediate) == 4 * s.repeats, where  # every epoch of every repeat
    elif r.status == "paused":
        assert s.early_stopping == "promotion" or s.pbt, where
        assert r.error.startswith("paused"), where
        assert [step for step, _ in r.intermediate] == list(range(first, r.step + 1)), where
    elif r.status == "pruned":
        assert r.error.startswith("stopped early"), where
        assert s.early_stopping != "none" or s.budget == "steps", where
        at = re.search(r"at step (\d+)", r.error)
        assert at is None or int(at.group(1)) == r.step, where
        if s.repeats == 1:
            assert r.value == r.intermediate[-1][1], where
    else:
        assert r.error, where
        assert s.fail_on != "none", where
        assert r.params["x"] > 0.75, where


def _check_checkpoints(s: Scenario, run_dir: Path, records: list) -> None:
    """Paused trainings keep a checkpoint of every rank; no other evaluation keeps one. With
    PBT, a member's earlier segments may have lost theirs (only its latest is continued)."""
    checkpoints = Checkpoints(run_dir / "checkpoints")
    paused = {r.id for r in records if r.paused}
    stored = set(checkpoints.stored())
    if s.pbt:
        latest = {r.member: r for r in sorted(records, key=lambda r: (r.end, r.id))}
        paused = {r.id for r in latest.values() if r.paused}
        assert paused <= stored <= {r.id for r in records if r.paused}, f"{s}: {stored}"
    else:
        assert stored == paused, f"{s}: checkpoints {sorted(stored)}"
    for record_id in paused:
        assert checkpoints.complete(record_id, s.ranks_per_worker), f"{s}: {record_id}"


def _check_lineage(s: Scenario, records: list) -> None:
    """With PBT, every segment continues a stored one, after its last step."""
    by_id = {r.id: r for r in records}
    for r in records:
        assert (r.member is not None) == s.pbt, f"{s}: record {r.id} member {r.member}"
        if r.parent is not None:
            parent = by_id[r.parent]
            assert parent.paused and r.step > parent.step, f"{s}: record {r.id}"


def _check_unique(s: Scenario, records: list) -> None:
    started = [r for r in records if r.parent is None]  # a PBT segment goes on with its own
    per_island = Counter((r.island, json.dumps(r.params, sort_keys=True)) for r in started)
    twice = [k for k, n in per_island.items() if n > 1]
    assert not twice, f"{s}: evaluated twice on an island: {twice}"
    for i in range(s.initial):
        first = {"x": 0.1 * (i + 1), "k": 1 + i, "act": "a"}
        n = sum(1 for r in started if _same(r.params, first))
        assert n == 1, f"{s}: initial configuration {first} evaluated {n} times"


def _same(params: dict, config: dict) -> bool:
    """The params of a configuration (and the fixed values), floats through the gene
    encoding's rounding."""
    return all(
        abs(params[k] - v) < 1e-9 if isinstance(v, float) else params[k] == v
        for k, v in config.items()
    )


def _check_ranks(s: Scenario, folder: Path, records: list) -> None:
    """Every rank of a worker entered the same repeats of every stored evaluation, and where
    none raised, reported the same steps and heard the same stop decision."""
    # id -> session -> rank -> repeat -> trace; an id in flight when a run was killed is used
    # again by the next run, whose traces are the later ones
    seen: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    latest: dict[int, tuple[float, int]] = {}
    for path in (folder / "trace").glob("rank-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                t = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if t["phase"] != "end":
                continue
            seen[t["id"]][t["session"]][t["rank"]][t["repeat"]] = t
            latest[t["id"]] = max(latest.get(t["id"], (0.0, 0)), (t["time"], t["session"]))
    for r in records:
        ranks = seen[r.id][latest[r.id][1]] if r.id in latest else None
        if not ranks or "did not finish it within" in (r.error or ""):
            continue  # a warm-start or killed-session record traced nowhere, or a stuck worker
        where = f"{s}: record {r.id}"
        assert sorted(ranks) == list(range(s.ranks_per_worker)), f"{where}: ranks {sorted(ranks)}"
        repeats = {rank: sorted(by) for rank, by in ranks.items()}
        assert len({tuple(v) for v in repeats.values()}) == 1, f"{where}: repeats {repeats}"
        for repeat in repeats[0]:
            traces = [ranks[rank][repeat] for rank in ranks]
            if any(t["raised"] for t in traces):
                continue
            assert len({json.dumps((t["steps"], t["stopped"])) for t in traces}) == 1, (
                f"{where}: ranks differ in repeat {repeat}: {traces}"
            )


def describe(s: Scenario) -> str:
    return json.dumps(asdict(s))
