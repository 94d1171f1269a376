"""The two designs for ``propagate dashboard``'s storage, measured on one run.

    python jobs/bench/dashboard_storage.py      # the run of optuna_export.py (made if missing)

(a) :class:`propagator.results.run_storage.RunStorage`, the one shipped: a read-only
``BaseStorage`` over the run directory whose trials are a list, converted record by record
when the dashboard asks and the store has grown. (b) Optuna's ``InMemoryStorage`` kept in
step by appending each new record with ``create_new_trial`` (as a background thread would).
Both convert with the same :func:`frozen_trial` and read the run with the same ``open_run``
(timed on its own), so the difference is what each does with the trials. Timed: the first
view (every record), a refresh after the last ``--new`` records land, one
``get_all_trials`` (what optuna-dashboard asks for at each poll) and the dashboard's whole
answer for the study (``/api/studies/0``), each the median of ``--repeat``; and the memory
each holds (tracemalloc).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

sys.path.insert(0, str(Path(__file__).parent))
import optuna_export  # makes the run


def _median(f: Callable[[Any], Any], repeat: int, setup: Callable[[], Any] = lambda: None) -> float:
    """Median seconds of ``f(setup())`` over ``repeat`` calls, ``setup`` untimed."""
    times = []
    for _ in range(repeat):
        state = setup()
        t = time.perf_counter()
        f(state)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _prefix(run: Any, n: int) -> Any:
    """``run`` as it was when it held its first ``n`` records (a new ``Result``: its records
    are built again, as after a new read)."""
    from propagator.results.result import Result

    r = run.result
    head = Result(
        r.space, list(r.objectives), list(r.directions), r.rows[:n], r._metrics, r._errors,
        r._reports, r.info,
    )  # fmt: skip
    return dataclasses.replace(run, result=head)


class InMemory:
    """Design (b): an ``InMemoryStorage`` to which each new record is appended."""

    def __init__(self, run: Any) -> None:
        import optuna

        from propagator.results.optuna_study import distributions

        self.storage = optuna.storages.InMemoryStorage()
        directions = [optuna.study.StudyDirection[d.upper()] for d in run.result.directions]
        self.study = self.storage.create_new_study(directions, "run")
        self._space, self._origin, self._seen = distributions(run.result.space), run.origin, 0
        self.update(run)

    def update(self, run: Any) -> None:
        from propagator.results.optuna_study import frozen_trial

        for record in run.result.records[self._seen :]:
            trial = frozen_trial(record, 0, self._space, self._origin)
            self.storage.create_new_trial(self.study, template_trial=trial)
        self._seen = len(run.result)


def _answer(app: Any) -> int:
    """The bytes of optuna-dashboard's answer for the whole study (a browser's first poll)."""
    environ = {"PATH_INFO": "/api/studies/0", "QUERY_STRING": "after=0"}
    setup_testing_defaults(environ)
    statuses = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    size = sum(len(b) for b in body)
    assert statuses == ["200 OK"], statuses
    return size


def _held(build: Callable[[], Any]) -> float:
    """MiB that what ``build`` returns holds."""
    tracemalloc.start()
    kept = build()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return size / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/propagate-bench-optuna/run"))
    parser.add_argument("--new", type=int, default=100, help="records landing between views")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not args.run_dir.exists():
        optuna_export.launch(optuna_export.__file__, 2, ["--run-dir", str(args.run_dir)])

    import optuna
    import optuna_dashboard

    from propagator.results.report import open_run
    from propagator.results.run_storage import RunStorage, RunTrials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = open_run(args.run_dir)
    n = len(run.result)
    before = _prefix(run, n - args.new)  # and _prefix(run, n): the run as read anew
    reading = _median(lambda _: open_run(args.run_dir), args.repeat)
    print(f"{len(run.result)} records; reading the run (both designs): {reading * 1e3:.0f} ms")
    a, b = RunStorage(args.run_dir, refresh=math.inf), InMemory(run)  # reading: timed above
    apps = [optuna_dashboard.wsgi(a), optuna_dashboard.wsgi(b.storage)]
    rows = [  # label, (a) and (b): each a function of its setup's result, and the setup
        ("first view", (lambda _: RunTrials(run), None), (lambda _: InMemory(run), None)),
        (
            f"{args.new} new records",
            (lambda s: s[0].update(s[1]), lambda: (RunTrials(before), _prefix(run, n))),
            (lambda s: s[0].update(s[1]), lambda: (InMemory(before), _prefix(run, n))),
        ),
        (
            "get_all_trials",
            (lambda _: a.get_all_trials(0, deepcopy=False), None),
            (lambda _: b.storage.get_all_trials(b.study, deepcopy=False), None),
        ),
        (
            "/api/studies/0",
            (lambda _: _answer(apps[0]), None),
            (lambda _: _answer(apps[1]), None),
        ),
    ]
    print(f"{'':<18} {'(a) read-only':>14} {'(b) in-memory':>14}")
    for label, (fa, sa), (fb, sb) in rows:
        ta = _median(fa, args.repeat, sa or (lambda: None))
        tb = _median(fb, args.repeat, sb or (lambda: None))
        print(f"{label:<18} {ta * 1e3:>11.1f} ms {tb * 1e3:>11.1f} ms")
    held_a, held_b = _held(lambda: RunTrials(run)), _held(lambda: InMemory(run))
    print(f"{'memory held':<18} {held_a:>10.1f} MiB {held_b:>10.1f} MiB")


if __name__ == "__main__":
    main()
