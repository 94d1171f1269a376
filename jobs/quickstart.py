"""Quick start: tune a small numpy MLP on a synthetic two-spirals problem.

    mpirun -n 4 python jobs/quickstart.py        # about a minute on a 2-core laptop

Searches learning rate (log scale), depth, per-layer widths that exist only when the network
is that deep (conditional parameters), activation and L2 penalty, with 2 islands of
asynchronous genetic search, and prints the best configurations.
"""

from __future__ import annotations

import os
from itertools import pairwise

# Several ranks share this machine's cores: one BLAS thread per rank, or the ranks' thread
# pools fight over the cores (15x slower here). Must be set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import propagator as pg  # noqa: E402

SPACE = pg.Space(
    {
        "lr": pg.Float(1e-3, 1.0, log=True),
        "depth": pg.Int(1, 3),
        "width1": pg.Int(4, 64, log=True),
        "width2": pg.Int(4, 64, log=True, when="depth >= 2"),
        "width3": pg.Int(4, 64, log=True, when="depth >= 3"),
        "activation": pg.Categorical(["tanh", "relu"]),
        "l2": pg.Float(1e-6, 1e-1, log=True),
        "epochs": 150,
    }
)


def spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals with a little noise; labels 0/1."""
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * np.pi
    label = rng.integers(0, 2, n)
    sign = np.where(label == 1, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (3 * np.pi)
    return x + rng.normal(0, 0.03, x.shape), label


def train(params: dict, trial: pg.Trial) -> dict:
    """Full-batch gradient descent on a tanh/ReLU MLP; returns validation loss and accuracy."""
    rng = np.random.default_rng(trial.seed)
    data = np.random.default_rng(0)
    x, y = spirals(600, data)
    xv, yv = spirals(400, data)
    widths = [params[f"width{i}"] for i in range(1, params["depth"] + 1)]
    sizes = [2, *widths, 1]
    weights = [rng.normal(0, 1 / np.sqrt(a), (a, b)) for a, b in pairwise(sizes)]
    biases = [np.zeros(b) for b in sizes[1:]]
    act, dact = (
        (np.tanh, lambda h: 1 - h**2)
        if params["activation"] == "tanh"
        else (lambda z: np.maximum(z, 0), lambda h: (h > 0).astype(float))
    )

    def forward(inputs: np.ndarray) -> list[np.ndarray]:
        hs = [inputs]
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            hs.append(act(hs[-1] @ w + b))
        hs.append(1 / (1 + np.exp(-(hs[-1] @ weights[-1] + biases[-1]))))
        return hs

    for epoch in range(params["epochs"]):
        hs = forward(x)
        grad = (hs[-1][:, 0] - y)[:, None] / len(y)
        for i in range(len(weights) - 1, -1, -1):
            gw = hs[i].T @ grad + params["l2"] * weights[i]
            gb = grad.sum(axis=0)
            if i:
                grad = (grad @ weights[i].T) * dact(hs[i])
            weights[i] -= params["lr"] * 10 * gw
            biases[i] -= params["lr"] * 10 * gb
        if epoch % 50 == 49:
            p = np.clip(forward(xv)[-1][:, 0], 1e-7, 1 - 1e-7)
            trial.report(epoch, float(-np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p))))
    p = np.clip(forward(xv)[-1][:, 0], 1e-7, 1 - 1e-7)
    loss = float(-np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p)))
    return {"val_loss": loss, "val_acc": float(np.mean((p > 0.5) == yv))}


def main() -> None:
    from mpi4py import MPI

    result = pg.search(
        train,
        SPACE,
        metric="val_loss",
        budget=pg.Budget(evaluations=800, time="3m"),
        islands=2 if MPI.COMM_WORLD.size >= 2 else 1,
        seed=0,
    )
    if MPI.COMM_WORLD.rank == 0:
        print(f"{len(result)} evaluations, {result.n_failed} failed, {result.info.wall_time:.1f} s")
        for r in result.top(3):
            print(f"val_loss {r.value:.4f}  val_acc {r.metrics['val_acc']:.3f}  {r.params}")


if __name__ == "__main__":
    main()
