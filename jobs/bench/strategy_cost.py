"""What a strategy costs a worker per ask and per tell, as the told history grows.

    python jobs/bench/strategy_cost.py [--strategies ga random cmaes tpe] [--records 100 1000 10000]

For each strategy (default: every name in ``propagator.strategies.STRATEGIES``), each space
(2 floats; 30 floats; a mixed space of 11 genes with log floats, ints, log ints, categories
and nested conditions) and each history size ``n``, one worker's breeder is told ``n`` random
records at once (as on resume; 10 % failed), then runs ``--steps`` steps of ask, then tell of
the asked point's result, with a full island pool. In one process, no MPI. The table gives:

* ``bulk tell``: the tell of the ``n`` records, in microseconds per record;
* ``1st ask``: the first ask after it (TPE builds its study there), in milliseconds;
* ``ask`` and ``tell``: median and mean over the steps, in milliseconds (CMA-ES's tell
  updates once per generation: its mean is the amortised cost).

BLAS runs on one thread (unless ``OMP_NUM_THREADS`` etc. say otherwise), as on a rank of the
``propagate`` command on a fully used node: a multi-threaded BLAS on busy cores makes CMA-ES's
30 x 30 eigendecompositions ten times slower. The machine's load shows in the numbers: compare
rows of one run, not runs of different days.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import propagator as pg  # noqa: E402
from propagator.engine.records import wire_dtype  # noqa: E402
from propagator.strategies import STRATEGIES, make_strategy  # noqa: E402
from propagator.strategies.pool import Pool  # noqa: E402


def _spaces() -> dict[str, pg.Space]:
    mixed = {
        "lr": pg.Float(1e-5, 1e-1, log=True),
        "wd": pg.Float(1e-6, 1e-2, log=True),
        "depth": pg.Int(1, 6),
        "width": pg.Int(16, 1024, log=True),
        "batch": pg.Categorical([32, 64, 128, 256]),
        "act": pg.Categorical(["relu", "gelu", "tanh"]),
        "opt": pg.Categorical(["sgd", "adam"]),
        "momentum": pg.Float(0.0, 0.99, when="opt == 'sgd'"),
        "nesterov": pg.Categorical([True, False], when="opt == 'sgd' and momentum > 0.5"),
        "width4": pg.Int(8, 256, log=True, when="depth >= 4"),
        "dropout": pg.Float(0.0, 0.5, when="act != 'tanh'"),
        "epochs": 10,
    }
    return {
        "2 floats": pg.Space({f"x{i}": pg.Float(-5, 5) for i in range(2)}),
        "30 floats": pg.Space({f"x{i}": pg.Float(-5, 5) for i in range(30)}),
        "mixed 11": pg.Space(mixed),
    }


def _loss(genes: np.ndarray) -> float:
    """A smooth loss on the genes (the breeders see genes only)."""
    return float(np.sum((genes - 0.3) ** 2))


def _pool(dim: int, capacity: int, rng: np.random.Generator) -> Pool:
    pool = Pool(capacity, wire_dtype(dim))
    rows = np.zeros(capacity, dtype=wire_dtype(dim))
    rows["id"] = np.arange(capacity)
    rows["genes"] = rng.random((capacity, dim))
    for row in rows:
        pool.offer(row, _loss(row["genes"]))
    return pool


def measure(name: str, space: pg.Space, n: int, steps: int) -> dict[str, float]:
    """One strategy on one space after ``n`` told records: bulk tell µs/record, first ask
    ms, median ask and tell ms."""
    rng = np.random.default_rng(0)
    breeder = make_strategy(name).create(space, island_workers=2)
    pool = _pool(space.dim, breeder.pool_size, rng)
    genes = rng.random((n, space.dim))
    ok = rng.random(n) >= 0.1
    loss = np.where(ok, np.sum((genes - 0.3) ** 2, axis=1), np.nan)
    t = time.perf_counter()
    breeder.tell(genes, loss, ok)
    bulk = (time.perf_counter() - t) / n * 1e6
    asks, tells = [], []
    for _ in range(steps + 1):
        t = time.perf_counter()
        candidate = breeder.ask(pool, rng)
        t1 = time.perf_counter()
        breeder.tell(candidate[None, :], np.array([_loss(candidate)]), np.array([True]))
        tells.append(time.perf_counter() - t1)
        asks.append(t1 - t)
    return {
        "bulk": bulk,
        "first": asks[0] * 1e3,
        "ask": statistics.median(asks[1:]) * 1e3,
        "ask_mean": statistics.fmean(asks[1:]) * 1e3,
        "tell": statistics.median(tells[1:]) * 1e3,
        "tell_mean": statistics.fmean(tells[1:]) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=sorted(STRATEGIES))
    parser.add_argument("--records", nargs="+", type=int, default=[100, 1000, 10000])
    parser.add_argument("--steps", type=int, default=30, help="ask/tell steps to time")
    args = parser.parse_args()
    print(
        f"{'strategy':<8} {'space':<10} {'records':>7} {'bulk tell':>10} {'1st ask':>9} "
        f"{'ask':>15} {'tell':>15}"
    )
    print(f"{'':<27} {'µs/record':>10} {'ms':>9} {'ms median/mean':>15} {'ms median/mean':>15}")
    for name in args.strategies:
        for label, space in _spaces().items():
            for n in args.records:
                m = measure(name, space, n, args.steps)
                ask = f"{m['ask']:.3f}/{m['ask_mean']:.3f}"
                tell = f"{m['tell']:.3f}/{m['tell_mean']:.3f}"
                print(
                    f"{name:<8} {label:<10} {n:>7} {m['bulk']:>10.1f} {m['first']:>9.2f} "
                    f"{ask:>15} {tell:>15}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
