"""Checkpoints of trainings: what ``trial.save`` writes and ``trial.restore`` reads.

One file per evaluation and rank of its worker, ``<root>/<id>/rank-<r>.ckpt``, so that each
rank of a multi-rank worker saves and restores its own shard. The root is the run
directory's ``checkpoints/`` (found again when the run is resumed, whichever worker resumes
the training), or a temporary directory for a search without a run directory.

A file is written to a temporary name, flushed to disk and renamed over the old one, so a
job killed in the middle of a save leaves the previous checkpoint intact, never half of one.
States are pickled (protocol 5, which stores tensors' and arrays' buffers as they are);
trainers save CPU copies so that a training can be resumed on another GPU.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

_SUFFIX = ".ckpt"
CHECKPOINTS = "checkpoints"  # the folder of a run directory that holds them


class Checkpoints:
    """The checkpoints under ``root`` (created on the first save).

    Args:
        root: the directory that holds one folder per evaluation.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, record_id: int, rank: int) -> Path:
        """The file of rank ``rank``'s shard of evaluation ``record_id``."""
        return self.root / str(record_id) / f"rank-{rank}{_SUFFIX}"

    def save(self, record_id: int, rank: int, state: Any) -> int:
        """Write ``state`` atomically; returns its size in bytes.

        Raises:
            TypeError, pickle.PicklingError: ``state`` cannot be pickled (a lambda, an open
                file); the previous checkpoint is kept.
        """
        path = self.path(record_id, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            with open(scratch, "wb") as f:
                pickle.dump(state, f, protocol=5)
                f.flush()
                os.fsync(f.fileno())
            os.replace(scratch, path)
        finally:
            scratch.unlink(missing_ok=True)
        return path.stat().st_size

    def load(self, record_id: int, rank: int) -> Any | None:
        """Rank ``rank``'s last saved state of evaluation ``record_id``; ``None`` if none."""
        try:
            with open(self.path(record_id, rank), "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None

    def link(self, source: int, target: int, ranks: int) -> bool:
        """Give ``target`` the checkpoint of ``source`` (every one of ``ranks`` shards), as
        hard links (no bytes copied; a later save of either replaces its own file only) or
        copies where links are not supported; ``False``, and nothing given, when a shard of
        ``source`` is missing (deleted meanwhile by the training that owns it)."""
        (self.root / str(target)).mkdir(parents=True, exist_ok=True)
        for rank in range(ranks):
            theirs, ours = self.path(source, rank), self.path(target, rank)
            ours.unlink(missing_ok=True)
            try:
                _link_or_copy(theirs, ours)
            except FileNotFoundError:
                self.remove(target)
                return False
        return True

    def complete(self, record_id: int, ranks: int) -> bool:
        """Whether every one of the worker's ``ranks`` ranks has a shard of ``record_id``."""
        return all(self.path(record_id, r).is_file() for r in range(ranks))

    def size(self, record_id: int) -> int:
        """Bytes the checkpoint of ``record_id`` takes (all its shards)."""
        folder = self.root / str(record_id)
        if not folder.is_dir():
            return 0
        return sum(p.stat().st_size for p in folder.iterdir() if p.name.endswith(_SUFFIX))

    def remove(self, record_id: int) -> None:
        """Delete the checkpoint of ``record_id`` (nothing if it has none)."""
        shutil.rmtree(self.root / str(record_id), ignore_errors=True)

    def keep_only(self, record_ids: set[int]) -> list[int]:
        """Delete every checkpoint but those of ``record_ids``; returns the ids deleted. A
        resumed run keeps its paused trainings' and drops those of evaluations a kill cut
        short (their ids are given out again, or never)."""
        gone = [i for i in self.stored() if i not in record_ids]
        for record_id in gone:
            self.remove(record_id)
        return gone

    def stored(self) -> list[int]:
        """The evaluations that have a checkpoint folder."""
        if not self.root.is_dir():
            return []
        return sorted(int(p.name) for p in self.root.iterdir() if p.name.isdigit())


def _link_or_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(source)
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)
