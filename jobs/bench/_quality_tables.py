"""The tables ``quality.py`` prints from its results file: regret, duplicates, wins."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from problems import Problem, ProblemSet

_W = 15  # column width: the longest label, optuna-cmaes-2w
_FUNCTIONS, _TARGET = 14, 10  # issue 10: win on >= 10 of the 14 functions

Runs = Mapping[str, Mapping[str, Any]]


def _found(runs: Runs, label: str, problem: str, budget: int, seeds: int) -> list[Any]:
    found = [runs.get(f"{label}|{problem}|{budget}|{s}") for s in range(seeds)]
    return [r for r in found if r is not None]


def _regrets(found: Sequence[Any]) -> list[float]:
    """Each run's regret, a failed run's as inf."""
    return [math.inf if r["regret"] is None else r["regret"] for r in found]


def _medians(
    runs: Runs, label: str, problem: Problem, budget: int, seeds: int
) -> tuple[float | None, float | None, int]:
    """Median regret, median duplicates and runs found."""
    found = _found(runs, label, problem.name, budget, seeds)
    if not found:
        return None, None, 0
    dups = [r["duplicates"] for r in found]
    return statistics.median(_regrets(found)), statistics.median(dups), len(found)


def _significant(
    runs: Runs,
    problems: Sequence[str],
    ours: Sequence[str],
    labels: Sequence[str],
    budget: int,
    seeds: int,
) -> None:
    """Per pair, on how many problems our strategy's regrets over the seeds are significantly
    smaller and larger (one-sided Mann-Whitney, p < 0.05): ten seeds leave a median's
    wins-ties-losses noisy (two runs of one setting differed by 3 either way)."""
    from scipy.stats import mannwhitneyu

    print("significantly better / worse (Mann-Whitney over the seeds, p < 0.05), per column:")
    print(f"{'':<12} " + " ".join(f"{lb:>{_W}}" for lb in labels))
    for mine in ours:
        cells = []
        for other in labels:
            better = worse = 0
            for p in problems if other != mine else ():
                a = _regrets(_found(runs, mine, p, budget, seeds))
                b = _regrets(_found(runs, other, p, budget, seeds))
                if len(a) > 1 and len(b) > 1 and sorted(a) != sorted(b):
                    better += mannwhitneyu(a, b, alternative="less").pvalue < 0.05
                    worse += mannwhitneyu(a, b, alternative="greater").pvalue < 0.05
            cells.append(f"{'' if other == mine else f'{better} / {worse}':>{_W}}")
        print(f"{mine:<12} " + " ".join(cells))


def _cell(value: float | None, complete: bool) -> str:
    if value is None:
        return f"{'-':>{_W}}"
    return f"{f'{value:.3g}' + ('' if complete else '*'):>{_W}}"


def _table(title: str, rows: list[tuple[str, list[str]]], labels: Sequence[str]) -> None:
    print(f"\n{title}")
    print(f"{'problem':<12} {'genes':>5} " + " ".join(f"{lb:>{_W}}" for lb in labels))
    for head, cells in rows:
        print(f"{head} " + " ".join(cells))


def _wins(
    regret: dict[tuple[str, str], float | None], ours: Sequence[str], labels: Sequence[str]
) -> None:
    problems = sorted({p for _, p in regret})
    print("wins-ties-losses of our strategies (strictly smaller median regret), per column:")
    print(f"{'':<12} " + " ".join(f"{lb:>{_W}}" for lb in labels))
    for mine in ours:
        cells = []
        for other in labels:
            pairs = [(regret[mine, p], regret[other, p]) for p in problems]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            w, losses = sum(a < b for a, b in pairs), sum(a > b for a, b in pairs)
            text = "" if other == mine else f"{w}-{len(pairs) - w - losses}-{losses}"
            cells.append(f"{text:>{_W}}")
        print(f"{mine:<12} " + " ".join(cells))


def _targets(regret: dict[tuple[str, str], float | None], default: str | None) -> None:
    """Issue 10's targets on the 14 functions: GA vs Propulate, the default vs every peer."""
    problems = sorted({p for _, p in regret})
    labels = {label for label, _ in regret}
    if len(problems) != _FUNCTIONS:
        print(f"(the targets are on all {_FUNCTIONS} functions; {len(problems)} were run)")
        return
    goals = [("ga", "propulate")] + [
        (default, peer)
        for peer in ("propulate", "optuna-tpe", "optuna-cmaes", "optuna-tpe-2w", "optuna-cmaes-2w")
    ]
    for mine, other in dict.fromkeys(goals):
        if mine in labels and other in labels:
            pairs = [(regret[mine, p], regret[other, p]) for p in problems]
            n = sum(a is not None and b is not None and a < b for a, b in pairs)
            verdict = "met" if n >= _TARGET else "NOT met"
            print(f"target: {mine} beats {other} on >= {_TARGET} of {_FUNCTIONS}: {n}, {verdict}")


def print_tables(
    runs: Runs,
    problem_set: ProblemSet,
    labels: Sequence[str],
    ours: Sequence[str],
    seeds: int,
    default: str | None,
) -> None:
    """Print one problem set's tables (one group per budget) from the results file's runs.

    Args:
        runs: the results file's ``runs`` (key -> raw result).
        problem_set: the problems and budgets to show.
        labels: the tools, in column order.
        ours: which of ``labels`` are our strategies (rows of the wins table).
        seeds: seeds 0 .. seeds-1 make a median; a ``*`` marks a median over fewer.
        default: the label of ``pg.search``'s default strategy (for the targets), if run.
    """
    for budget in problem_set.budgets:
        regret: dict[tuple[str, str], float | None] = {}
        rows_r, rows_d, partial = [], [], False
        for p in problem_set.problems:
            cells_r, cells_d = [], []
            for label in labels:
                r, d, n = _medians(runs, label, p, budget, seeds)
                regret[label, p.name] = r
                cells_r.append(_cell(r, n == seeds))
                cells_d.append(_cell(d, n == seeds))
                partial |= 0 < n < seeds
            head = f"{p.name:<12} {p.space.dim:>5}"
            rows_r.append((head, cells_r))
            rows_d.append((head, cells_d))
        what = f"{problem_set.name}, {budget} evaluations in total, median over {seeds} seeds"
        _table(f"{what}: regret (best found - optimum)", rows_r, labels)
        _table(f"{what}: duplicate evaluations per run", rows_d, labels)
        if partial:
            print("(* median over fewer seeds: runs missing)")
        _wins(regret, ours, labels)
        names = [p.name for p in problem_set.problems]
        _significant(runs, names, ours, labels, budget, seeds)
        if problem_set.name == "functions":
            _targets(regret, default)
