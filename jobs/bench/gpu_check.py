"""Every trainer for a few steps on 1, 2 and 4 GPUs (one per rank) with both collectives
backends (``mpi``: mpi4py through host memory; ``torch``: NCCL), each run checked against the
same run on the CPU: the validation loss after the run within ``--rtol``, the bytes sent
exactly, and every declared metric returned. Prints a table (with the seconds per epoch of
each run) and exits 1 on a mismatch or a failure.

    python jobs/bench/gpu_check.py                        # CUDA; one mpiexec per rank count
    python jobs/bench/gpu_check.py --device cpu           # the same comparisons on the CPU
    python jobs/bench/gpu_check.py --ranks 2 --trainers baseline mac --json out.json

With ``--device cpu`` the device runs are CPU runs too (gloo for the torch backend), so the
script checks itself, the backends against each other and the declarations against what the
trainers return, on any machine. On CUDA the comparisons run with TF32 off (cuDNN uses it for
convolutions by default, a 1e-3 error), and the torch backend is skipped where a node has fewer
GPUs than ranks (NCCL takes one rank per GPU); the mpi backend then shares the GPUs.

Each rank count is one ``mpiexec`` whose ranks form one worker (``trial.comm`` is the world).
Every run is a fresh trainer call with the same trial seed, so the CPU reference and the device
runs start from the same weights and see the same batches.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TRAINERS = ("baseline", "easgd", "daso", "oialr", "ab", "mac", "auxnet", "ddg", "fr")
BACKENDS = ("mpi", "torch")
SEED = 1
MLP = {"dataset": "classification", "n_samples": 256, "depth": 2, "width": 16, "epochs": 2}


def cases(ranks: int, images: str) -> dict[str, dict[str, Any]]:
    """A few steps of each trainer on ``ranks`` ranks (``images``: a small .npz of images);
    the layer-parallel ones in as many modules as ranks (at least 2), one per rank."""
    modules = max(2, ranks)
    return {
        "baseline": {**MLP, "batch_size": 64, "momentum": 0.9},
        "easgd": {**MLP, "batch_size": 32, "tau": 2},
        "daso": {
            **MLP,
            "batch_size": 64,
            "node_size": 2 if ranks >= 4 else 1,  # 2 global groups of 2 on 4 ranks
            "global_sync_period": 2,
            "warmup_epochs": 0,
        },
        "oialr": {**MLP, "batch_size": 32, "delay": 2, "frequency": 2},
        "ab": {**MLP, "batch_size": 32, "ab_steps": 0.2, "ab_cutoff": 0.1},
        "mac": {**MLP, "depth": 3, "modules": modules, "w_iters": 1, "w_batch": 64, "z_lr": 1e-2},
        "auxnet": {
            "dataset": images,
            "filters": 4,
            "blocks": 4,
            "modules": modules,
            "batch_size": 64,
            "epochs": 2,
            "lr": 0.05,
        },
        "ddg": {**MLP, "depth": 3, "modules": modules, "batch_size": 64},
        "fr": {**MLP, "depth": 3, "modules": modules, "batch_size": 64},
    }


def write_images(path: Path) -> None:
    """256 random 1x8x8 images whose class is the brightest quadrant (for the ResNet)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 1, 8, 8)).astype(np.float32)
    quadrants = x.reshape(256, 2, 4, 2, 4).mean(axis=(2, 4)).reshape(256, 4)
    np.savez(path, x=x, y=quadrants.argmax(1).astype(np.int64))


@dataclass
class Run:
    """One trainer call on one rank count, as rank 0 saw it."""

    trainer: str
    ranks: int
    device: str
    backend: str
    val_loss: float = math.nan
    bytes_sent: float = math.nan
    epoch_seconds: float = math.nan
    missing: list[str] | None = None  # declared metrics it did not return
    error: str | None = None  # the failure, or why the run was skipped
    skipped: bool = False


# --- the mpiexec half: every rank runs every case -----------------------------------------------


def _worker(args: argparse.Namespace) -> None:
    import torch
    from mpi4py import MPI

    import propagator as pg
    from propagator.config import load_objective

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    world = MPI.COMM_WORLD
    runs = []
    for name in args.trainers:
        trainer = load_objective(name)
        params = cases(world.size, args.images)[name]
        trainer.check_space(pg.Space(params))
        plan = [("cpu", "mpi"), *((args.device, b) for b in BACKENDS)]
        for device, backend in plan:
            run = Run(name, world.size, device, backend)
            why = _unsupported(device, backend, world)
            if why:
                run.error, run.skipped = why, True
            else:
                _call(run, trainer, {**params, "device": device, "backend": backend})
            runs.append(run)
            world.Barrier()
    if world.rank == 0:
        Path(args.out).write_text(json.dumps([asdict(r) for r in runs]))


def _unsupported(device: str, backend: str, world: Any) -> str | None:
    """Why a combination cannot run here, if it cannot."""
    if device != "cuda" or backend != "torch":
        return None
    import torch
    from mpi4py import MPI

    from trainers.collectives import local_rank

    on_node = world.allreduce(local_rank(), op=MPI.MAX) + 1
    gpus = torch.cuda.device_count()
    return f"NCCL needs a GPU per rank: {on_node} ranks, {gpus} GPUs" if on_node > gpus else None


def _call(run: Run, trainer: Any, params: dict[str, Any]) -> None:
    """Run the trainer on the world; a failure is recorded, not raised (every rank raises the
    same ConfigError; a failure on one rank only would hang the others until the timeout)."""
    from mpi4py import MPI

    import propagator as pg

    try:
        metrics = trainer(params, pg.Trial(0, MPI.COMM_WORLD, 0, 0, SEED))
    except Exception:
        run.error = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return
    run.val_loss, run.bytes_sent = metrics["val_loss"], metrics["bytes_sent"]
    run.epoch_seconds = metrics.get("epoch_time", metrics["train_time"] / params["epochs"])
    run.missing = sorted(set(trainer.metrics) - set(metrics))


# --- the driver: one mpiexec per rank count, then the comparisons -------------------------------


def launch(ranks: int, args: argparse.Namespace, tmp: Path) -> list[Run]:
    """Rank 0's runs of one ``mpiexec -n ranks``; a crash or a hang fails all its runs."""
    out = tmp / f"ranks{ranks}.json"
    cmd = ["mpiexec", "-n", str(ranks), sys.executable, __file__, "--worker", "--out", str(out)]
    cmd += ["--device", args.device, "--images", str(tmp / "images.npz")]
    cmd += ["--trainers", *args.trainers]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
        failure = None if proc.returncode == 0 else f"mpiexec exited {proc.returncode}"
        detail = proc.stdout[-2000:] + proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        failure, detail = f"mpiexec -n {ranks} ran past {args.timeout} s", ""
    if failure is None:
        return [Run(**r) for r in json.loads(out.read_text())]
    print(f"{failure}\n{detail}", file=sys.stderr)
    plan = [("cpu", "mpi"), *((args.device, b) for b in BACKENDS)]
    return [Run(t, ranks, d, b, error=failure) for t in args.trainers for d, b in plan]


def compare(runs: list[Run], rtol: float) -> list[tuple[Run, Run | None, str]]:
    """(device run, its CPU reference, verdict) for every device run (a run after the first
    of its trainer and rank count): ``ok``, ``skipped: ...`` or what failed."""
    references: dict[tuple[str, int], Run] = {}
    out = []
    for run in runs:
        ref = references.setdefault((run.trainer, run.ranks), run)
        if run is not ref:
            out.append((run, ref, _verdict(run, ref, rtol)))
    return out


def _verdict(run: Run, ref: Run | None, rtol: float) -> str:
    if run.skipped:
        return f"skipped: {run.error}"
    if run.error or ref is None or ref.error:
        return f"FAILED: {run.error or (ref.error if ref else 'no CPU reference')}"
    problems = []
    if not math.isclose(run.val_loss, ref.val_loss, rel_tol=rtol, abs_tol=1e-6):
        problems.append(f"val_loss {run.val_loss:.6g} vs {ref.val_loss:.6g} on the CPU")
    if run.bytes_sent != ref.bytes_sent:
        problems.append(f"bytes {run.bytes_sent:.0f} vs {ref.bytes_sent:.0f} on the CPU")
    if run.missing:
        problems.append(f"declared metrics not returned: {run.missing}")
    return "MISMATCH: " + "; ".join(problems) if problems else "ok"


def print_table(rows: list[tuple[Run, Run | None, str]]) -> None:
    head = f"{'trainer':<9}{'ranks':>6} {'device':<7}{'backend':<8}{'val_loss':>11}"
    print(head + f"{'cpu val_loss':>13}{'bytes':>12}{'s/epoch':>9}  verdict")
    for run, ref, verdict in rows:
        cpu = ref.val_loss if ref else math.nan
        print(
            f"{run.trainer:<9}{run.ranks:>6} {run.device:<7}{run.backend:<8}{run.val_loss:>11.6f}"
            f"{cpu:>13.6f}{run.bytes_sent:>12.0f}{run.epoch_seconds:>9.3f}  {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS))
    parser.add_argument("--rtol", type=float, default=1e-3, help="val_loss tolerance (relative)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mpiexec")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return 0
    if args.device == "cuda" and not _cuda():
        print("CUDA is not available; use --device cpu for the same checks on the CPU")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        write_images(Path(tmp) / "images.npz")
        runs = [run for n in args.ranks for run in launch(n, args, Path(tmp))]
    rows = compare(runs, args.rtol)
    print_table(rows)
    if args.json:
        rows_json = [{**asdict(r), "verdict": v} for r, _, v in rows]
        args.json.write_text(json.dumps(rows_json, indent=1))
    bad = [v for _, _, v in rows if not (v == "ok" or v.startswith("skipped"))]
    print(f"\n{len(bad)} of {len(rows)} device runs failed or differ from the CPU")
    return 1 if bad else 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
