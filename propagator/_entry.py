"""The ``propagate`` console script: sizes thread pools, then hands over to :mod:`.cli`.

Ranks that share a node each get their share of its cores for BLAS and OpenMP thread pools,
unless the user set them: full-size pools in every rank fight over the cores (the quick start
ran 3x slower on 2 cores). The variables only work if set before numpy is imported, hence
this module, which imports nothing heavy itself.
"""

from __future__ import annotations

import os

_POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Ranks on this node, as MPICH/Hydra, Open MPI and SLURM report them.
_LOCAL_RANKS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE")


def share_cores() -> None:
    """Set each unset thread-pool variable to this rank's share of the node's cores."""
    local = next((os.environ[v] for v in _LOCAL_RANKS if os.environ.get(v, "").isdigit()), "1")
    if int(local) <= 1:
        return
    threads = str(max(1, (os.cpu_count() or 1) // int(local)))
    for var in _POOLS:
        os.environ.setdefault(var, threads)


def main() -> int:
    share_cores()
    from .cli import main as cli_main

    return cli_main()
