"""kill -9 at uniform moments of a 4-rank search, then resume: nothing but in-flight work lost.

    python jobs/bench/kill_resume.py                 # 50 kills, about 8 min on 2 cores
    python jobs/bench/kill_resume.py --kills 10 --evaluations 120

The search (``tests/combos.py``'s objective: a 4-epoch curve of 10 ms epochs, on 2 islands of
2 workers, ``--evaluations`` in all) first runs once uninterrupted to time it (``T``). Then,
for each of ``--kills`` fresh runs, the whole ``mpiexec`` process group gets SIGKILL at
moment ``0.2 + (T - 0.2) (i + 0.5) / kills`` s after its start (uniform over start-up and
search), and the search is run again until it says its budget is spent. Measured per kill:
the evaluations stored when it was killed, those lost (started by the killed run but not
stored by it: in flight when the kill came), how many runs it took to finish (the last run
only finds the budget spent),
and whether the run then holds exactly its budget with unique ids and every invariant of the
combination test. Target: every run exactly its budget; losses never above the 4 workers in
flight. Results in ``runs/bench/kill_resume.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from combos import Scenario, check, play, run_once, search_file  # noqa: E402

WORKERS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--evaluations", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "kill_resume.json")
    args = parser.parse_args()
    base = Scenario(islands=2, workers_per_island=2, amount=args.evaluations, seed=7)
    root = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    whole = _timed(base, root / "whole")
    print(f"uninterrupted: {whole:.1f} s for {args.evaluations} evaluations on 4 ranks")
    rows = []
    for i in range(args.kills):
        at = 0.2 + (whole - 0.2) * (i + 0.5) / args.kills
        rows.append(_one(Scenario(**{**base.__dict__, "kill_at": at}), root / f"kill-{i}"))
        print(json.dumps(rows[-1]), flush=True)
    shutil.rmtree(root)
    _summary(rows, args.evaluations)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"uninterrupted_s": whole, "kills": rows}, indent=1))


def _timed(s: Scenario, folder: Path) -> float:
    path = search_file(s, folder, {})
    began = time.monotonic()
    run = run_once(s, path)
    assert run.code == 0, run.output
    return time.monotonic() - began


def _one(s: Scenario, folder: Path) -> dict:
    import propagator as pg

    runs = play(s, folder, {})
    killed = runs[0].code == -9
    started, later = set(), set()
    if killed:
        started = _started_in(folder, runs[0].started, runs[1].started)
        later = _started_in(folder, runs[1].started, float("inf"))
    check(s, folder, runs)
    records = [r for r in pg.load(folder / "run").records if not r.confirmation]
    # Ids continue after the largest stored one, so an id the killed run started and a later
    # run started again was not stored by the killed run.
    first_session = {r.id for r in records if r.id in started - later}
    return {
        "kill_at": round(s.kill_at, 2),
        "killed": killed,
        "stored_at_kill": len(first_session) if killed else len(records),
        "lost_in_flight": len(started - first_session),
        "runs": len(runs),
        "final": len(records),
        "exact": len(records) == s.budget_value,
    }


def _started_in(folder: Path, since: float, until: float) -> set[int]:
    """Ids whose evaluation started (on its worker's first rank) between two moments."""
    ids = set()
    for path in (folder / "trace").glob("rank-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                t = json.loads(line)
            except json.JSONDecodeError:
                continue  # cut by the kill
            if t["phase"] == "start" and t["rank"] == 0 and since <= t["time"] < until:
                ids.add(t["id"])
    return ids


def _summary(rows: list[dict], budget: int) -> None:
    killed = [r for r in rows if r["killed"]]
    lost = [r["lost_in_flight"] for r in killed]
    print(
        f"{len(rows)} runs, {len(killed)} killed (the rest ended first): "
        f"{sum(r['exact'] for r in rows)} hold exactly {budget} evaluations after resuming; "
        f"lost in flight per kill: max {max(lost, default=0)}, "
        f"mean {sum(lost) / max(1, len(lost)):.2f} (target <= {WORKERS}); "
        f"runs to finish: max {max(r['runs'] for r in rows)}"
    )


if __name__ == "__main__":
    main()
