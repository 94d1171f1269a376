"""Shared by the trainer benchmarks: train registered trainers side by side on one worker of
all ranks and collect their metrics.

``compare(runs, ranks, seeds)`` launches one ``mpiexec -n ranks`` per (run, seed), each a
single evaluation of the trainer on a worker of all ``ranks`` ranks, and returns the metrics.
Running as ``python _trainers.py --run NAME JSON --out FILE`` is the mpiexec half.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Run = tuple[str, dict[str, Any]]  # (trainer name, params)


def train_once(name: str, params: dict[str, Any], ranks: int, timeout: float = 900) -> dict:
    """The metrics of one evaluation of trainer ``name`` on a worker of ``ranks`` ranks."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = ["mpiexec", "-n", str(ranks), sys.executable, __file__, "--run", name]
        cmd += [json.dumps(params), "--out", str(out)]
        subprocess.run(cmd, check=True, timeout=timeout)
        return json.loads(out.read_text())


def compare(
    runs: Mapping[str, Run], ranks: int, seeds: list[int], keys: list[str]
) -> dict[str, dict[str, list[float]]]:
    """``{label: {key: [value per seed]}}`` for each labelled run; prints a table as it goes."""
    table: dict[str, dict[str, list[float]]] = {label: {k: [] for k in keys} for label in runs}
    for seed in seeds:
        for label, (name, params) in runs.items():
            metrics = train_once(name, {**params, "seed": seed}, ranks)
            for k in keys:
                table[label][k].append(metrics[k])
            shown = "  ".join(f"{k}={metrics[k]:.4g}" for k in keys)
            print(f"seed {seed}  {label:<28} {shown}", flush=True)
    return table


def print_medians(table: Mapping[str, Mapping[str, list[float]]]) -> None:
    """One line per run: the median of each key over the seeds."""
    print("\nmedian over seeds:")
    for label, columns in table.items():
        shown = "  ".join(f"{k}={statistics.median(v):.4g}" for k, v in columns.items())
        print(f"  {label:<28} {shown}")


def _run(name: str, params: dict[str, Any], out: str) -> None:
    from mpi4py import MPI

    import propagator as pg
    from propagator.config import load_objective

    seed = int(params.pop("seed", 0))
    trainer = load_objective(name)
    space = pg.Space(params or {"epochs": trainer.table["epochs"].default})
    ranks = MPI.COMM_WORLD.size
    result = pg.search(
        trainer, space, metric="val_loss", budget=1, ranks_per_worker=ranks, seed=seed
    )
    record = result.records[0]
    if not record.ok:
        raise SystemExit(f"{name} failed: {record.error}")
    if MPI.COMM_WORLD.rank == 0:
        Path(out).write_text(json.dumps(record.metrics))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", nargs=2, metavar=("NAME", "JSON"))
    parser.add_argument("--out")
    args = parser.parse_args()
    _run(args.run[0], json.loads(args.run[1]), args.out)
