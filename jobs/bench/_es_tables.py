"""The early-stopping benchmark's arithmetic and tables (``early_stopping.py``): a search's
best value against the epochs it spent, what became of its paused trainings, medians over
seeds, and the verdict on the target.

A search is a list of evaluations, each with the time it ended, the epochs it reported, its
status, its value (the optimized metric), a score (the value by which the search's result is
judged: the value itself, or for the synthetic curves the noiseless final loss of the
configuration), whether it was promoted (paused at a rung and resumed later) and whether it
was to be paused but saved no checkpoint (recorded as pruned). A promoted training appears
once, as it ended, with all the epochs it reported before and after its pause(s). The
*incumbent* after some evaluations is the completed evaluation with the best value so far,
and its score is what the search would hand over then: pruned and paused evaluations never
win (their value is that of a model trained for fewer epochs).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LABELS = {
    "none": "no early stopping",
    "asha": "ASHA, stopping",
    "promotion": "ASHA + promotion",
    "brackets": "Hyperband (3 brackets)",
    "curve": "curve extrapolation",
    "asha-curve": "ASHA + curve + promotion",
    "auto": "auto",
    "auto-steps": "auto, same epochs",
    "asha-steps": "ASHA, same epochs",
}
SAME_EPOCHS = ("asha-steps", "auto-steps")  # budget.steps: the epochs "none" spends
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)  # checkpoints, shares of the reference's epochs
TOP = 10  # promoted trainings are counted among this many best completed evaluations


@dataclass(frozen=True)
class Search:
    """One search's evaluations (from the ``--run`` half's JSON), in the order they ended.

    Attributes:
        seed: the search's seed.
        wall: seconds the search took.
        steps: epochs each evaluation reported.
        ok: whether each evaluation completed (not pruned, paused or failed).
        value: each evaluation's optimized metric (minimised; NaN when it failed).
        score: each evaluation's score (see the module docstring).
        paused: whether each evaluation was still paused when the search ended.
        promoted: whether each evaluation was paused and resumed later.
        failed: whether each evaluation failed.
        unsaved: whether each evaluation was to be paused but saved no checkpoint.
    """

    seed: int
    wall: float
    steps: np.ndarray
    ok: np.ndarray
    value: np.ndarray
    score: np.ndarray
    paused: np.ndarray
    promoted: np.ndarray
    failed: np.ndarray
    unsaved: np.ndarray

    @classmethod
    def from_json(cls, data: Mapping) -> Search:
        """From ``{"seed", "wall", "records": [[end, steps, status, value, score, promoted,
        unsaved], ...]}`` (the last two may be left out: false)."""
        rows = sorted(data["records"], key=lambda r: r[0])
        rows = [[*r, False, False][:7] for r in rows]
        column = list(zip(*rows, strict=True)) if rows else [()] * 7
        return cls(
            seed=int(data["seed"]),
            wall=float(data["wall"]),
            steps=np.array(column[1], dtype=np.int64),
            ok=np.array([s == "ok" for s in column[2]], dtype=bool),
            value=np.array(column[3], dtype=float),
            score=np.array(column[4], dtype=float),
            paused=np.array([s == "paused" for s in column[2]], dtype=bool),
            promoted=np.array(column[5], dtype=bool),
            failed=np.array([s == "failed" for s in column[2]], dtype=bool),
            unsaved=np.array(column[6], dtype=bool),
        )

    @property
    def epochs(self) -> int:
        """Epochs reported by all evaluations together."""
        return int(self.steps.sum())

    @property
    def pruned(self) -> int:
        """Evaluations stopped early (or failed); not those still paused at the end."""
        return int(np.count_nonzero(~self.ok & ~self.paused))

    def pruned_at_end(self, epochs: int) -> int:
        """Evaluations recorded as pruned although they reported all ``epochs`` epochs."""
        return int(np.count_nonzero(~self.ok & (self.steps >= epochs)))

    @property
    def n_paused(self) -> int:
        """Trainings paused at least once: those still paused and those promoted."""
        return int(np.count_nonzero(self.paused | self.promoted))

    @property
    def n_promoted(self) -> int:
        """Trainings paused and resumed later."""
        return int(np.count_nonzero(self.promoted))

    def promoted_in_top(self, k: int = TOP) -> int:
        """Promoted trainings among the ``k`` completed evaluations of the best value (the
        first to end of equals first)."""
        done = np.flatnonzero(self.ok)
        best = done[np.argsort(self.value[done], kind="stable")[:k]]
        return int(np.count_nonzero(self.promoted[best]))

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
    """The target for one variant against the searches without early stopping.

    Attributes:
        variant: the variant's name (``asha``, ``auto-steps``, ...).
        label: the variant in words.
        reference_best: median best score without early stopping.
        target: what the variant's median best must not exceed: the reference's median best
            plus its seeds' spread; for ``auto-steps``, which must do better, the reference's
            median best itself (see :attr:`goal`).
        best: the variant's median best score.
        ratio: the reference's median epochs over the variant's (median) epochs for the
            comparison.
        met: whether the target is met.
        how: one line on how the ratio was read.
    """

    variant: str
    label: str
    reference_best: float
    target: float
    best: float
    ratio: float
    met: bool
    how: str

    @property
    def goal(self) -> str:
        """The target on the best, in words."""
        if self.variant in SAME_EPOCHS and self.variant != "asha-steps":
            return f"target < {self.target:.4g}"
        return f"target <= {self.target:.4g}"


def verdicts(runs: Mapping[str, list[Search]], factor: float = 2.0) -> list[Verdict]:
    """The verdict of each variant that ran, in the order of ``runs`` (``none`` is the
    reference and gets none).

    Same evaluations (every variant but those of :data:`SAME_EPOCHS`): a median best within
    the target (the reference's median plus its seeds' spread) with at least ``factor`` times
    fewer epochs in total. ``asha-steps``: the epochs after which its incumbent first reached
    the target (per seed, then the median), at least ``factor`` times fewer. ``auto-steps``:
    at the same epochs, a median best better than the reference's.
    """
    reference = runs["none"]
    bests = [s.best for s in reference]
    ref_best, ref_epochs = statistics.median(bests), statistics.median(s.epochs for s in reference)
    target = ref_best + spread(bests)
    out = []
    for variant, searches in runs.items():
        if variant == "none":
            continue
        best = statistics.median(s.best for s in searches)
        epochs = statistics.median(s.epochs for s in searches)
        goal = target
        if variant == "asha-steps":
            reached = statistics.median(s.reaches(target) for s in searches)
            strict = statistics.median(s.reaches(ref_best) for s in searches)
            ratio = ref_epochs / reached
            how = (
                f"epochs until its best reached the target: {_epochs(reached)} of "
                f"{ref_epochs:.0f}; the reference's median {ref_best:.4g}: {_epochs(strict)}"
            )
            met = ratio >= factor
        elif variant in SAME_EPOCHS:
            ratio = ref_epochs / epochs
            strict = statistics.median(s.reaches(ref_best) for s in searches)
            how = (
                f"{epochs:.0f} epochs of {ref_epochs:.0f}; epochs until its best reached the "
                f"reference's median: {_epochs(strict)}"
            )
            goal, met = ref_best, best < ref_best
        else:
            ratio = ref_epochs / epochs
            how = f"{ref_epochs:.0f} -> {epochs:.0f} epochs in total"
            met = best <= target and ratio >= factor
        label = LABELS.get(variant, variant)
        out.append(Verdict(variant, label, ref_best, goal, best, ratio, met, how))
    return out


def _epochs(spent: float) -> str:
    return f"{spent:.0f}" if math.isfinite(spent) else "never (in the median seed)"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def print_tables(
    runs: Mapping[str, list[Search]],
    what: str,
    epochs: int,
    optimum: float | None = None,
    factor: float = 2.0,
    pausing: Collection[str] | None = None,
) -> list[Verdict]:
    """Print the summary, the best-vs-epochs table and the verdicts; return the verdicts.

    ``what`` names the score, ``epochs`` those of a whole evaluation, ``factor`` the fewer
    epochs the target asks for; with ``optimum`` the regret (score - optimum) is shown too.
    ``pausing``: the variants whose pruner pauses (default: those with a paused or promoted
    training); the others show "-" for the pausing columns.

    Columns (medians over seeds): evaluations, pruned ones, pruned ones that had reported all
    their epochs ("at end"), trainings paused at least once, of those promoted later, of the
    promoted ones among the :data:`TOP` completed evaluations of the best value, epochs in
    total, the reference's epochs over these, wall seconds (the first search of each seed
    includes the imports), and the best's score: median [min, max] and the seeds' spread.
    """
    if pausing is None:
        pausing = {v for v, ss in runs.items() if any(s.n_paused for s in ss)}
    ref_epochs = statistics.median(s.epochs for s in runs["none"])
    head = (
        f"{'evals':>6}{'pruned':>7}{'at end':>7}{'paused':>7}{'promo':>6}{f'top{TOP}':>6}"
        f"{'epochs':>8}{'ratio':>7}{'wall s':>8}"
    )
    print(f"\n{'':26}{head}   {what}: median [min, max] spread")
    for variant, searches in runs.items():
        bests = [s.best for s in searches]

        def med(of: Callable[[Search], float], searches: list[Search] = searches) -> float:
            return _median([of(s) for s in searches])

        if variant in pausing:
            paused = f"{med(lambda s: s.n_paused):7.0f}{med(lambda s: s.n_promoted):6.0f}"
            paused += f"{med(lambda s: s.promoted_in_top()):6.0f}"
        else:
            paused = f"{'-':>7}{'-':>6}{'-':>6}"
        epochs_spent = med(lambda s: s.epochs)
        regret = "" if optimum is None else f"  regret {statistics.median(bests) - optimum:.4g}"
        print(
            f"  {LABELS.get(variant, variant):<24}"
            f"{med(lambda s: len(s.value)):6.0f}"
            f"{med(lambda s: s.pruned):7.0f}"
            f"{med(lambda s: s.pruned_at_end(epochs)):7.0f}"
            f"{paused}"
            f"{epochs_spent:8.0f}"
            f"{ref_epochs / epochs_spent:6.2f}x"
            f"{med(lambda s: s.wall):8.1f}"
            f"   {statistics.median(bests):.4g} [{min(bests):.4g}, {max(bests):.4g}]"
            f" {spread(bests):.2g}{regret}"
        )
    for variant, searches in runs.items():
        failed = sum(int(np.count_nonzero(s.failed)) for s in searches)
        unsaved = sum(int(np.count_nonzero(s.unsaved)) for s in searches)
        if failed:
            print(f"  note: {variant}: {failed} evaluation(s) failed (counted as pruned)")
        if unsaved:
            print(
                f"  note: {variant}: {unsaved} training(s) to be paused saved no checkpoint "
                "(trial.save) and were recorded as pruned"
            )
    marks = [round(ref_epochs * f) for f in FRACTIONS]
    print(f"\n  {what} of the best so far (median over seeds) after this many epochs in total:")
    print(f"  {'':24}" + "".join(f"{m:>10}" for m in marks))
    for variant, searches in runs.items():
        cells = [statistics.median(s.at(m) for s in searches) for m in marks]
        print(f"  {LABELS.get(variant, variant):<24}" + "".join(f"{c:10.4g}" for c in cells))
    print("  (a search that ended earlier keeps its final best in the later columns)")
    results = verdicts(runs, factor)
    for v in results:
        print(
            f"  {v.label}: best {v.best:.4g} vs {v.reference_best:.4g} ({v.goal}); "
            f"{v.ratio:.2f}x fewer epochs ({v.how}): {'met' if v.met else 'NOT met'}"
        )
    return results
