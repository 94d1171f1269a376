"""MPI scenarios for the test suite: ``mpiexec -n N python scenarios.py NAME OUT [ARGS]``.

Each rank runs the scenario and writes ``OUT/rank{r}.json``; the tests read and judge them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mpi4py import MPI

import propagator as pg
from propagator.pruners import PrunerSpec
from propagator.strategies import Breeder

WORLD = MPI.COMM_WORLD


def summary(result: pg.Result) -> dict:
    """What every test wants to know about a result, plus a digest to compare ranks."""
    rows = result.rows
    return {
        "n": len(result),
        "ids": rows["id"].tolist(),
        "islands": rows["island"].tolist(),
        "workers": rows["worker"].tolist(),
        "status": [r.status for r in result.records],
        "errors": [r.error for r in result.records],
        "values": [None if np.isnan(v) else float(v) for v in result.values],
        "start": rows["start"].tolist(),
        "end": rows["end"].tolist(),
        "info": result.info.__dict__,
        "digest": hashlib.sha256(rows.tobytes()).hexdigest(),
    }


def sphere(params: dict, trial: pg.Trial) -> float:
    return float(sum(v**2 for k, v in params.items() if k.startswith("x")))


def sleepy_sphere(params: dict, trial: pg.Trial) -> float:
    """Sphere after a random sleep of up to ``params['max_sleep']`` seconds."""
    time.sleep(np.random.default_rng(trial.seed).uniform(0.0, params["max_sleep"]))
    return sphere(params, trial)


def space2(max_sleep: float = 0.0) -> pg.Space:
    return pg.Space({"x0": pg.Float(-5, 5), "x1": pg.Float(-5, 5), "max_sleep": max_sleep})


class _SpyBreeder(Breeder):
    """The GA's breeder, noting which islands the parents' pool came from at every ask."""

    def __init__(self, inner: Breeder, seen: set[int]) -> None:
        self._inner, self._seen = inner, seen
        self.pool_size = inner.pool_size

    def ask(self, pool, rng):
        self._seen.update(int(i) for i in pool.rows["island"])
        return self._inner.ask(pool, rng)


@dataclass(frozen=True)
class SpyGA(pg.GA):
    name = "spy_ga"
    seen: set = field(default_factory=set, compare=False)

    def create(self, space: pg.Space, island_workers: int) -> Breeder:
        return _SpyBreeder(super().create(space, island_workers), self.seen)


def islands(args: list[str]) -> dict:
    """Islands with migration or pollination: ``n_islands pollination probability budget``."""
    n_islands, pollination, probability, budget = (
        int(args[0]),
        args[1] == "1",
        float(args[2]),
        int(args[3]),
    )
    migration = pg.Migration(probability=probability, pollination=pollination, migrants=2)
    spy = SpyGA(population=4)
    result = pg.search(
        sleepy_sphere,
        space2(0.002),
        budget=budget,
        islands=n_islands,
        migration=migration,
        seed=3,
        strategy=spy,
    )
    out = summary(result)
    out["pool_islands"] = sorted(spy.seen)
    return out


def multirank(args: list[str]) -> dict:
    """Workers of k ranks: every rank of a worker gets the same params and a k-rank comm;
    only the worker's first rank's value counts."""
    k, budget = int(args[0]), int(args[1])
    seen: list[dict] = []

    def objective(params: dict, trial: pg.Trial) -> float:
        everyone = trial.comm.allgather((params, trial.id, trial.seed))
        same = all(e == everyone[0] for e in everyone)
        seen.append({"size": trial.comm.size, "rank": trial.rank, "same": same, "id": trial.id})
        value = sphere(params, trial)
        return value if trial.rank == 0 else value + 1000.0 * (trial.rank + 1)

    result = pg.search(objective, space2(), budget=budget, ranks_per_worker=k, islands=2, seed=5)
    out = summary(result)
    out["seen"] = seen
    out["expected"] = [sphere(r.params, None) for r in result.records]
    return out


def termination(args: list[str]) -> dict:
    """Random evaluation times: ``evaluations max_sleep islands [time_budget]``."""
    budget = pg.Budget(
        evaluations=int(args[0]) if args[0] != "none" else None,
        time=float(args[3]) if len(args) > 3 else None,
    )
    t = time.perf_counter()
    # The GA starts at once: these tests time the engine, not a strategy's imports.
    space = space2(float(args[1]))
    result = pg.search(sleepy_sphere, space, budget=budget, islands=int(args[2]), strategy="ga")
    out = summary(result)
    out["elapsed"] = time.perf_counter() - t
    return out


def failures(args: list[str]) -> dict:
    """An objective that raises, returns NaN/inf or misses the metric in parts of the space."""

    def objective(params: dict, trial: pg.Trial) -> dict:
        x = params["x0"]
        if x > 3:
            raise ValueError(f"x0={x} is too large")
        if x < -3:
            return {"loss": float("nan")}
        if abs(params["x1"]) > 4:
            return {"other": 1.0}
        return {"loss": sphere(params, trial), "extra": 1.0}

    # one configuration in each failing region first: which ones the search itself visits
    # depends on the workers' timing
    initial = [{"x0": 4.0, "x1": 0.0}, {"x0": -4.0, "x1": 0.0}, {"x0": 0.0, "x1": 4.5}]
    result = pg.search(
        objective,
        space2(),
        metric="loss",
        budget=int(args[0]),
        islands=2,
        initial=initial,
        seed=11,
    )
    return summary(result)


def broken(args: list[str]) -> dict:
    """An objective that always raises: the search must stop early on every rank."""

    def objective(params: dict, trial: pg.Trial) -> float:
        raise RuntimeError("the objective is broken")

    try:
        pg.search(objective, space2(), budget=int(args[0]), ranks_per_worker=int(args[1]))
    except pg.ObjectiveError as exc:
        return {"raised": "ObjectiveError", "message": str(exc)}
    return {"raised": None}


def bigspace(args: list[str]) -> dict:
    """10,000 float genes: records far beyond MPI's eager limit must not deadlock."""
    dim = int(args[0])
    space = pg.Space({f"x{i}": pg.Float(-1, 1) for i in range(dim)})

    def objective(params: dict, trial: pg.Trial) -> float:
        return float(np.sum(np.fromiter(params.values(), float, dim) ** 2))

    migration = pg.Migration(probability=1.0, migrants=3, pollination=False)
    result = pg.search(
        objective,
        space,
        budget=int(args[1]),
        islands=2,
        migration=migration,
        seed=2,
        strategy={"name": "ga", "population": 4},
    )
    return summary(result)


def strategies(args: list[str]) -> dict:
    """A strategy on 2 islands with migration, on a mixed conditional space: ``strategy budget``
    (the strategy as JSON: a name, a mapping, or a list of one per island)."""
    # Imported before the search starts (cmaes loads scipy.stats, about a second): otherwise
    # the workers that finish importing first may spend the whole budget.
    import cmaes  # noqa: F401
    import optuna  # noqa: F401

    space = pg.Space(
        {
            "x0": pg.Float(-5, 5),
            "x1": pg.Float(-5, 5),
            "n": pg.Int(1, 6),
            "act": pg.Categorical(["relu", "tanh"]),
            "slope": pg.Float(1e-3, 0.3, log=True, when="act == 'relu'"),
            "max_sleep": 0.01,
        }
    )
    migration = pg.Migration(probability=0.9, pollination=True)
    result = pg.search(
        sleepy_sphere,
        space,
        budget=int(args[1]),
        islands=2,
        migration=migration,
        seed=7,
        strategy=json.loads(args[0]),
    )
    out = summary(result)
    out["params"] = [r.params for r in result.records]
    return out


def _bowl(p: dict) -> float:
    """A rotated, ill-conditioned quadratic with its minimum 0 at (1, -2)."""
    a, b = p["x0"] - 1.0, p["x1"] + 2.0
    return a * a + 30.0 * b * b + 5.0 * a * b


def batching(args: list[str]) -> dict:
    """One island: ``strategy budget [bowl]`` (a no-op objective, or :func:`_bowl`)."""
    import cmaes  # noqa: F401  (as in ``strategies``: imported before the search starts)

    space = pg.Space({"x0": pg.Float(-5, 5), "x1": pg.Float(-5, 5)})
    objective = _bowl if args[2:] == ["bowl"] else (lambda p: 0.0)
    result = pg.search(objective, space, budget=int(args[1]), strategy=json.loads(args[0]))
    out = summary(result)
    out["params"] = [r.params for r in result.records]
    return out


def badlayout(args: list[str]) -> dict:
    """A world size that ranks_per_worker does not divide: a ConfigError on every rank."""
    try:
        pg.search(sphere, space2(), budget=10, ranks_per_worker=int(args[0]))
    except pg.ConfigError as exc:
        return {"raised": "ConfigError", "message": str(exc)}
    return {"raised": None}


def trainer(args: list[str]) -> dict:
    """One evaluation of a registered trainer on a worker of all ranks, one thread each:
    ``name backend k``."""
    import torch

    from propagator.config import load_objective

    torch.set_num_threads(1)

    name, backend, k = args[0], args[1], int(args[2])
    params = json.loads(args[3]) if len(args) > 3 else {}
    objective = load_objective(name)
    # params in the search-file form ({type: float, ...}) are searched; lr is, where the
    # trainer takes it and the params do not set it (several workers need a gene each)
    free_lr = "lr" in objective.table and "lr" not in params
    gene = {"lr": {"type": "float", "low": 0.049, "high": 0.051}} if free_lr else {}
    space = pg.Space.from_dict({**gene, **params, "backend": backend})
    result = pg.search(
        objective,
        space,
        metric="val_loss",
        budget=WORLD.size // k,
        ranks_per_worker=k,
        strategy="ga",  # the trainer is under test: no strategy library to import per rank
        seed=0,
    )
    return {
        "records": [
            {
                "status": r.status,
                "error": r.error,
                "metrics": r.metrics,
                "params": r.params,
                "reports": r.intermediate,
            }
            for r in result.records
        ]
    }


def chain(args: list[str]) -> dict:
    """The layer-parallel chain on all ranks: ``backend stages``. Every stage sends its index
    forwards and backwards twice (FIFO order), then a model split into ``stages`` groups is
    evaluated layer-serially through the chain."""
    import torch

    from trainers.data import load_data
    from trainers.framework import setup
    from trainers.layer_parallel import evaluate, split_model

    backend, stages = args[0], int(args[1])
    trial = pg.Trial(0, WORLD, 0, 0, 7)
    ctx = setup({"backend": backend}, trial)
    params = {"depth": 3, "width": 8, "modules": stages}
    data = load_data({"dataset": "digits"})
    split = split_model(ctx, params, data, ["ping"])
    got = []
    for s in split.chain.mine:
        for step in range(2):
            for d in (s - 1, s + 1):
                if 0 <= d < stages:
                    split.chain.send("ping", s, d, torch.tensor([100.0 * s + step]))
    for s in split.chain.mine:
        for d in (s - 1, s + 1):
            if 0 <= d < stages:
                got += [float(split.chain.recv("ping", d, s, (1,))) for _ in range(2)]
    split.chain.flush()
    loss, acc = evaluate(split, data.x_val, data.y_val, data.task, ctx.device)
    return {
        "mine": split.chain.mine,
        "got": got,
        "loss": loss,
        "acc": acc,
        "bytes": ctx.comm.bytes_sent,
    }


def train(args: list[str]) -> dict:
    """One call of a trainer on a worker of all ranks, one thread each: ``name seed params``
    (``seed`` is the trial's run seed); every rank's metrics."""
    import torch

    from propagator.config import load_objective

    torch.set_num_threads(1)
    name, seed, params = args[0], int(args[1]), json.loads(args[2])
    return load_objective(name)(params, pg.Trial(0, WORLD, 0, 0, seed))


@dataclass(frozen=True)
class FirstOnly(PrunerSpec):
    """A pruner for tests: an evaluation goes on past a rung only when no other has reached
    it, so with one worker the first evaluation runs to its end and every later one stops at
    its first rung (step 1), whatever its loss."""

    name = "first_only"

    def keeps(self, loss: float, others: np.ndarray) -> bool:
        return len(others) == 0


def trainer_stopping(args: list[str]) -> dict:
    """A trainer stopped early on one worker of all ranks, one thread each: ``name rule
    params``. ``rule`` ``first_only``: two evaluations under :class:`FirstOnly` (the second
    stops after its first epoch); ``steps:N``: a step budget of N. ``params`` in the
    search-file form, with a searched one (the two evaluations must differ). Every rank notes
    what its trial saw: the steps it reported, why it stopped, what the trainer returned."""
    import torch

    from propagator.config import load_objective

    torch.set_num_threads(1)
    name, rule, params = args[0], args[1], json.loads(args[2])
    trainer = load_objective(name)
    seen = []

    def spy(p: dict, trial: pg.Trial) -> dict:
        metrics = trainer(p, trial)
        steps = [step for step, _ in trial.reports]
        seen.append({"id": trial.id, "steps": steps, "stopped": trial.stopped, "metrics": metrics})
        return metrics

    kind, _, steps = rule.partition(":")
    result = pg.search(
        spy,
        pg.Space.from_dict(params),
        metric="val_loss",
        budget={"steps": int(steps)} if kind == "steps" else 2,
        ranks_per_worker=WORLD.size,
        early_stopping=FirstOnly() if kind == "first_only" else None,
        strategy="ga",  # the trainer is under test: no strategy library to import per rank
        seed=0,
    )
    records = [
        {
            "status": r.status,
            "step": r.step,
            "reports": r.intermediate,
            "value": r.value,
            "metrics": r.metrics,
            "error": r.error,
        }
        for r in result.records
    ]
    return {"seen": seen, "records": records}


def discrete_space(seed: int) -> pg.Space:
    """A random small discrete space: ints and categories, some conditional (nested too)."""
    rng = np.random.default_rng(seed)
    params: dict = {"a": pg.Int(0, int(rng.integers(1, 4)))}
    names = ["a"]
    for i in range(int(rng.integers(1, 4))):
        name = f"p{i}"
        when = None
        if rng.random() < 0.5:
            ref = names[int(rng.integers(len(names)))]
            when = f"{ref} != 0" if isinstance(params[ref], pg.Int) else f"{ref} == 'u'"
        if rng.random() < 0.5:
            params[name] = pg.Int(1, int(rng.integers(2, 5)), when=when)
        else:
            params[name] = pg.Categorical(["u", "v", "w"][: int(rng.integers(2, 4))], when=when)
        names.append(name)
    return pg.Space(params)


def dedup(args: list[str]) -> dict:
    """Searches over ``discrete_space(seed)``: ``seeds islands budget k [run_dir]`` (seeds
    comma-separated; budget ``xN`` means N times the space's size); per seed, every record's
    island and params, and whether the space was exhausted."""
    seeds = [int(x) for x in args[0].split(",")]
    n_islands, k = int(args[1]), int(args[3])
    out = {}
    for seed in seeds:
        space = discrete_space(seed)
        budget = args[2]
        if budget.startswith("x"):
            budget = int(budget[1:]) * len(configurations(space))
        result = pg.search(
            lambda params: float(len(str(params))),
            space,
            budget=int(budget),
            islands=n_islands,
            ranks_per_worker=k,
            seed=seed,
            run_dir=args[4] if len(args) > 4 else None,
        )
        out[seed] = {
            "records": [[r.island, r.params] for r in result.records],
            "exhausted": result.info.exhausted,
            "size": len(configurations(space)),
        }
    return out


def configurations(space: pg.Space) -> set[str]:
    """Every distinct configuration of a discrete space, by brute force over its gene grid."""
    from propagator.strategies.base import gene_levels

    grid = itertools.product(*gene_levels(space))
    return {json.dumps(space.decode(np.array(g)), sort_keys=True) for g in grid}


def _curve(params: dict, trial: pg.Trial, answers: dict | None = None) -> float:
    """A learning curve whose floor x sets; every rank reports and asks at each step, and
    waits for the others in a barrier (a rank that stopped alone would hang the worker)."""
    floor = (params["x"] - 0.3) ** 2 + 0.05
    value = float("inf")
    for t in range(1, 28):
        value = floor + float(np.exp(-t / 3))
        trial.report(t, value)
        trial.comm.Barrier()
        stop = trial.should_stop()
        if answers is not None:
            answers.setdefault(trial.id, []).append(stop)
        if stop:
            break
    return value


def stopping(args: list[str]) -> dict:
    """Workers of ``k`` ranks with ASHA and a step budget: what should_stop said, per trial
    and step, on this rank."""
    answers: dict[int, list[bool]] = {}
    result = pg.search(
        lambda p, t: _curve(p, t, answers),
        {"x": pg.Float(0, 1)},
        budget={"evaluations": 40, "steps": 300},
        ranks_per_worker=int(args[0]),
        early_stopping="asha",
        seed=3,
    )
    return {
        "answers": sorted([k, v] for k, v in answers.items()),
        "records": [{"status": r.status, "step": r.step} for r in result.records],
    }


def stopping_store(args: list[str]) -> dict:
    """ASHA with a run store: ``run_dir budget``; how many evaluations were pruned."""
    result = pg.search(
        _curve,
        {"x": pg.Float(0, 1)},
        budget=int(args[1]),
        early_stopping="asha",
        run_dir=args[0],
        seed=5,
    )
    return {"pruned": sum(r.pruned for r in result.records)}


INITIAL = [{"x": round(0.1 * i, 1), "n": 1 + i % 3} for i in range(6)]


def initial(args: list[str]) -> dict:
    """``run_dir budget``: a search that starts from ``INITIAL``; every record's id and
    params."""
    result = pg.search(
        lambda p: (p["x"] - 0.35) ** 2 + p["n"],
        {"x": pg.Float(0, 1), "n": pg.Int(1, 3)},
        budget=int(args[1]),
        initial=INITIAL,
        run_dir=args[0],
        seed=2,
    )
    return {"records": [[r.id, r.params] for r in result.records]}


def pareto(args: list[str]) -> dict:
    """``run_dir budget``: accuracy (maximized) against bytes (minimized) on two islands that
    move individuals between them; the records' islands, genes and losses, the front and the
    immigrants."""

    def objective(p: dict) -> dict:
        x = np.array([p["x0"], p["x1"], p["x2"]])
        return {"acc": 1.0 - float(((x - 0.3) ** 2).sum()), "bytes": float(x.sum())}

    result = pg.search(
        objective,
        {f"x{i}": pg.Float(0.0, 1.0) for i in range(3)},
        budget=int(args[1]),
        metric=["acc", "bytes"],
        direction=["maximize", "minimize"],
        islands=2,
        migration=pg.Migration(probability=1.0, pollination=False, migrants=2),
        strategy="ga",
        run_dir=args[0],
        seed=4,
    )
    return {
        "n": len(result),
        "ids": result.rows["id"].tolist(),
        "islands": result.rows["island"].tolist(),
        "genes": result.rows["genes"].tolist(),
        "losses": result.losses.tolist(),
        "front": [r.id for r in result.pareto_front],
        "immigrants": WORLD.allreduce(result.info.immigrants_received),
        "objectives": list(result.objectives),
    }


SCENARIOS = {
    f.__name__: f
    for f in (
        pareto,
        initial,
        stopping,
        stopping_store,
        dedup,
        islands,
        multirank,
        termination,
        failures,
        broken,
        bigspace,
        strategies,
        batching,
        badlayout,
        trainer,
        chain,
        train,
        trainer_stopping,
    )
}

if __name__ == "__main__":
    name, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    data = SCENARIOS[name](sys.argv[3:])
    (out / f"rank{WORLD.rank}.json").write_text(json.dumps(data))
