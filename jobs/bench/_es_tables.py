"""The early-stopping benchmark's arithmetic and tables (``early_stopping.py``): a search's
best value against the epochs it spent, medians over seeds, and the verdict on the target.

A search is a list of evaluations, each with the time it ended, the epochs it reported, its
status, its value (the optimized metric) and a score: the value by which the search's result
is judged (the value itself, or for the synthetic curves the noiseless final loss of the
configuration). The *incumbent* after some evaluations is the completed evaluation with the
best value so far, and its score is what the search would hand over then: pruned evaluations
never win (their value is that of a model trained for fewer epochs).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LABELS = {
    "none": "no early stopping",
    "asha": "ASHA, same evaluations",
    "asha-steps": "ASHA, same epochs",
}
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)  # checkpoints, shares of the reference's epochs


@dataclass(frozen=True)
class Search:
    """One search's evaluations (from the ``--run`` half's JSON), in the order they ended.

    Attributes:
        seed: the search's seed.
        wall: seconds the search took.
        steps: epochs each evaluation reported.
        ok: whether each evaluation completed (not pruned, not failed).
        value: each evaluation's optimized metric (minimised; NaN when it failed).
        score: each evaluation's score (see the module docstring).
    """

    seed: int
    wall: float
    steps: np.ndarray
    ok: np.ndarray
    value: np.ndarray
    score: np.ndarray

    @classmethod
    def from_json(cls, data: Mapping) -> Search:
        """From ``{"seed", "wall", "records": [[end, steps, status, value, score], ...]}``."""
        rows = sorted(data["records"], key=lambda r: r[0])
        column = list(zip(*rows, strict=True)) if rows else [()] * 5
        return cls(
            seed=int(data["seed"]),
            wall=float(data["wall"]),
            steps=np.array(column[1], dtype=np.int64),
            ok=np.array([s == "ok" for s in column[2]], dtype=bool),
            value=np.array(column[3], dtype=float),
            score=np.array(column[4], dtype=float),
        )

    @property
    def epochs(self) -> int:
        """Epochs reported by all evaluations together."""
        return int(self.steps.sum())

    @property
    def pruned(self) -> int:
        """Evaluations stopped early (or failed)."""
        return int(np.count_nonzero(~self.ok))

    def pruned_at_end(self, epochs: int) -> int:
        """Evaluations recorded as pruned although they reported all ``epochs`` epochs."""
        return int(np.count_nonzero(~self.ok & (self.steps >= epochs)))

    def trajectory(self) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative epochs after each evaluation, and the incumbent's score then (NaN
        before the first completed evaluation)."""
        out, best, current = np.full(len(self.value), np.nan), math.inf, math.nan
        for i, (ok, value) in enumerate(zip(self.ok, self.value, strict=True)):
            if ok and value < best:
                best, current = value, self.score[i]
            out[i] = current
        return np.cumsum(self.steps), out

    @property
    def best(self) -> float:
        """The score of the search's winner (NaN when nothing completed)."""
        return float(self.trajectory()[1][-1]) if len(self.value) else math.nan

    def at(self, epochs: float) -> float:
        """The incumbent's score once ``epochs`` epochs were spent (its final one after the
        search ended; NaN before anything completed)."""
        spent, scores = self.trajectory()
        done = np.flatnonzero(spent <= epochs)
        return float(scores[done[-1]]) if len(done) else math.nan

    def reaches(self, target: float) -> float:
        """The epochs spent when the incumbent's score first was ``<= target`` (inf: never)."""
        spent, scores = self.trajectory()
        hit = np.flatnonzero(scores <= target)
        return float(spent[hit[0]]) if len(hit) else math.inf


def spread(values: Sequence[float]) -> float:
    """Max minus min: the seeds' spread of a result."""
    return max(values) - min(values)


@dataclass(frozen=True)
class Verdict:
    """The target (the same best within the seeds' spread with >= 2x fewer epochs), for one
    ASHA variant against the searches without early stopping.

    Attributes:
        label: which comparison.
        reference_best: median best score without early stopping.
        target: the reference's median best plus its seeds' spread.
        best: ASHA's median best score.
        ratio: the reference's median epochs over ASHA's (median) epochs for the comparison.
        met: whether the target is met.
        how: one line on how the ratio was read.
    """

    label: str
    reference_best: float
    target: float
    best: float
    ratio: float
    met: bool
    how: str


def verdicts(runs: Mapping[str, list[Search]]) -> list[Verdict]:
    """The verdict of each ASHA variant that ran.

    Same evaluations: the epochs spent in total, and the final best. Same epochs: the epochs
    after which ASHA's incumbent first reached the target (per seed, then the median).
    """
    reference = runs["none"]
    bests = [s.best for s in reference]
    ref_best, ref_epochs = statistics.median(bests), statistics.median(s.epochs for s in reference)
    target = ref_best + spread(bests)
    out = []
    if "asha" in runs:
        asha = runs["asha"]
        best = statistics.median(s.best for s in asha)
        epochs = statistics.median(s.epochs for s in asha)
        ratio = ref_epochs / epochs
        how = f"{ref_epochs:.0f} -> {epochs:.0f} epochs in total"
        met = best <= target and ratio >= 2
        out.append(Verdict(LABELS["asha"], ref_best, target, best, ratio, met, how))
    if "asha-steps" in runs:
        asha = runs["asha-steps"]
        best = statistics.median(s.best for s in asha)
        reached = statistics.median(s.reaches(target) for s in asha)
        strict = statistics.median(s.reaches(ref_best) for s in asha)
        ratio = ref_epochs / reached
        how = (
            f"epochs until its best reached the target: {_epochs(reached)} of "
            f"{ref_epochs:.0f}; the reference's median {ref_best:.4g}: {_epochs(strict)}"
        )
        met = ratio >= 2
        out.append(Verdict(LABELS["asha-steps"], ref_best, target, best, ratio, met, how))
    return out


def _epochs(spent: float) -> str:
    return f"{spent:.0f}" if math.isfinite(spent) else "never (in the median seed)"


def print_tables(
    runs: Mapping[str, list[Search]], what: str, epochs: int, optimum: float | None = None
) -> list[Verdict]:
    """Print the summary, the best-vs-epochs table and the verdicts; return the verdicts.

    ``what`` names the score, ``epochs`` those of a whole evaluation; with ``optimum`` the
    regret (score - optimum) is shown too. Columns: evaluations, pruned ones, pruned ones
    that had reported all their epochs ("at end"), epochs in total, wall seconds (the first
    search of a problem includes the imports), the best's score.
    """
    head = f"{'evals':>7}{'pruned':>8}{'at end':>8}{'epochs':>8}{'wall s':>8}"
    print(f"\n{'':26}{head}   {what}: median [min, max]")
    for variant, searches in runs.items():
        bests = [s.best for s in searches]
        regret = "" if optimum is None else f"  regret {statistics.median(bests) - optimum:.4g}"
        print(
            f"  {LABELS[variant]:<24}"
            f"{statistics.median(len(s.value) for s in searches):7.0f}"
            f"{statistics.median(s.pruned for s in searches):8.0f}"
            f"{statistics.median(s.pruned_at_end(epochs) for s in searches):8.0f}"
            f"{statistics.median(s.epochs for s in searches):8.0f}"
            f"{statistics.median(s.wall for s in searches):8.1f}"
            f"   {statistics.median(bests):.4g} [{min(bests):.4g}, {max(bests):.4g}]{regret}"
        )
    total = statistics.median(s.epochs for s in runs["none"])
    marks = [round(total * f) for f in FRACTIONS]
    print(f"\n  {what} of the best so far (median over seeds) after this many epochs in total:")
    print(f"  {'':24}" + "".join(f"{m:>10}" for m in marks))
    for variant, searches in runs.items():
        cells = [statistics.median(s.at(m) for s in searches) for m in marks]
        print(f"  {LABELS[variant]:<24}" + "".join(f"{c:10.4g}" for c in cells))
    print("  (a search that ended earlier keeps its final best in the later columns)")
    results = verdicts(runs)
    for v in results:
        print(
            f"  {v.label}: best {v.best:.4g} vs {v.reference_best:.4g} (target <= {v.target:.4g}); "
            f"{v.ratio:.2f}x fewer epochs ({v.how}): {'met' if v.met else 'NOT met'}"
        )
    return results
