"""Scale on this machine (issue 17): a no-op search at 2-128 oversubscribed ranks, side by side
with an older checkout.

    python jobs/bench/scale.py                                  # 2 8 32 64 128 ranks
    python jobs/bench/scale.py --ranks 2 32 --islands 1 16 --before /tmp/scale_before
    python jobs/bench/scale.py --ranks 2 8 --strategies ga portfolio --settings all gossip

One ``mpiexec`` per row, every rank a one-rank worker, a no-op objective on two floats,
``--evaluations`` in all. Per row:

* ``evals/s``: evaluations over the time from the first evaluation to the last, whoever ran
  them (so the start-up and the final gather, timed by ``startup.py`` and ``memory.py``,
  are left out);
* ``msgs/eval``, ``bytes/eval``: record messages between worker leaders and their bytes,
  migrants included (``result.info``), per evaluation;
* ``cpu ms/eval``: each rank's CPU time (``time.process_time``, its threads included) from
  its first evaluation to its last, over the evaluations between them: with a no-op
  objective all of it is the control plane (breeding, learning, messages, tickets, claims,
  polling). The median over ranks, and the largest;
* ``RSS MB``: the largest peak resident set of any rank (``ru_maxrss``), the final gather
  of the whole result to every rank included.

``--islands 1 16``: a number of islands; ``half`` means ranks / 2 (islands of 2 workers).
``--before DIR`` also runs each row with ``PYTHONPATH=DIR`` (an older commit, e.g.
``git worktree add --detach /tmp/scale_before a672061``, today's main when issue 17 was
filed), alternating with this tree, so that both meet about the same load; rows of a
setting the older tree does not have are skipped there.

Measured on this machine's 2 cores, shared with a simulator run (load 4-7 before the larger
rows, 120-130 while 128 ranks ran). Columns: evaluations/s, messages and bytes per
evaluation, CPU ms per evaluation (median/largest rank), peak RSS MB of the largest rank.
``before``: a672061 (main when issue 17 was filed); ``now``: f199f98 for 1 island, and for
ranks / 2 islands 7cd948a (``migration.targets``) against f199f98 as ``before``
(``--before``; the 1-island rows of f199f98 and a672061 show the same, as the islands' rows
of the two trees did, within the load's noise)::

    ranks isl. strategy  setting  tree     ev/s  msg/ev  B/ev   cpu ms    RSS
        2   1  ga        all      now    16,216    0.07    74  0.068      84
        2   1  ga        all      before 15,693    0.07    74  0.066     126
        2   1  portfolio all      now     3,219    1.00    74  0.401     154
        8   1  ga        all      now    14,225    0.85   518  0.122      87
        8   1  ga        gossip   now    15,808    0.16    78  0.117      86
        8   1  portfolio all      now     1,571    7.00   518  1.115     158
        8   1  portfolio gossip   now     4,067    1.01    75  0.425     152
       32   1  ga        all      now     4,714   10.17 2,294  0.415     106
       32   1  ga        all      before  4,646    9.35 2,294  0.396     148
       32   1  ga        gossip   now     9,856    1.75   203  0.190     100
       32   1  portfolio all      now       694   31.00 2,294  2.692     199
       32   1  portfolio gossip   now     3,882    1.04    78  0.498     162
       64   1  ga        all      now     3,848   20.78 4,662  0.490     127
       64   1  ga        gossip   now     9,175    2.73   296  0.185     117
       64   1  portfolio all      now       698   63.00 4,662  2.767     225
       64   1  portfolio gossip   now     3,647    1.08    83  0.563     175
      128   1  ga        all      now     1,261   76.79 9,398  1.503     179
      128   1  ga        gossip   now     5,008    2.24   296  0.374     143
      128   1  portfolio all      now       499  127.00 9,398  3.844     268
      128   1  portfolio gossip   now     2,589    1.18    94  0.797     201
       32  16  ga        all      now     6,377    2.98   276  0.285     101
       32  16  ga        all      before  1,296   14.26 1,083  1.482     103
       32  16  portfolio all      now     3,046    3.72   275  0.631     166
       32  16  portfolio all      before  1,065   14.63 1,083  1.792     167
       64  32  ga        all      now     7,613    2.95   275  0.238     118
       64  32  ga        all      before    662   28.56 2,133  2.905     126
       64  32  portfolio all      now     2,115    3.73   276  0.930     183
       64  32  portfolio all      before    457   28.84 2,134  4.145     190
      128  64  ga        all      now     3,474    3.07   273  0.518     144
      128  64  ga        all      before    271   57.96 4,302  7.078     166
      128  64  portfolio all      now     1,876    3.68   272  1.033     210
      128  64  portfolio all      before    217   58.26 4,311  8.418     231

Commands: ``python jobs/bench/scale.py --settings default gossip --before A672061_TREE``
(from a worktree of f199f98) and ``python jobs/bench/scale.py --ranks 32 64 128 --islands
half --before F199F98_TREE`` (from one of 7cd948a). The GA's rate at 32 ranks against 2
(16,216-18,942/s over the two 2-rank runs): 0.52-0.61x with gossip in 1 island, 0.25-0.29x
with ``all``; 0.34-0.39x in 16 islands, 0.07x before the bounded migration fan-out.

Copies sent to an island only where they changed since the sender's last copies to it
(``before`` 1c8acb7, ``now`` its successor; other benchmarks ran alongside, load 4-43, so
compare the two trees' rows of one size, not the sizes: the 1-island rows, which the change
does not touch, differed by up to 1.7x between the trees)::

    python jobs/bench/scale.py --ranks 2 32 --islands 1 16 --objective sphere --before TREE

    ranks isl. strategy  tree     ev/s  msg/ev  B/ev   cpu ms    RSS
       32  16  ga        now     3,787    1.45   157  0.389      99
       32  16  ga        before  3,427    3.09   276  0.432     100
       32  16  portfolio now     1,685    1.16    86  0.882     101
       32  16  portfolio before  1,433    3.72   275  1.037     104

With the no-op objective (no best ever improves, so nearly every repeat is saved), nothing
else running (``python jobs/bench/scale.py --ranks 2 32 --islands 1 16 --before TREE``):

    ranks isl. strategy  tree     ev/s  msg/ev  B/ev   cpu ms    RSS
        2   1  ga        now    14,074    0.13    74  0.141      81
        2   1  ga        before 13,096    0.14    74  0.152      81
       32  16  ga        now     5,881    0.38    80  0.336      95
       32  16  ga        before  3,546    3.16   275  0.552     100
       32  16  portfolio now     2,073    1.28    95  0.939     100
       32  16  portfolio before  2,067    3.72   276  0.956     103

The GA's rate at 32 ranks in 16 islands is 0.42x the 2-rank rate, 0.27x before (issue 17's
target: 0.5x); the portfolio's rate there is bound by its members' CPU, not the messages.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _launch import parse

SPACE = {"x0": (-5.12, 5.12), "x1": (-5.12, 5.12)}


def _run(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    import propagator as pg

    comm = MPI.COMM_WORLD
    space = pg.Space({name: pg.Float(*bounds) for name, bounds in SPACE.items()})
    marks: list[tuple[float, float]] = []

    def noop(params: dict) -> float:
        marks.append((time.time(), time.process_time()))
        if args.objective == "sphere":
            return params["x0"] ** 2 + params["x1"] ** 2
        return 0.0

    options = {} if args.setting == "default" else {"dissemination": args.setting}
    (islands,) = args.islands  # the mpiexec half gets one
    islands = comm.size // 2 if islands == "half" else int(islands)
    result = pg.search(
        noop,
        space,
        budget=args.evaluations,
        islands=islands,
        strategy=args.strategy,
        seed=0,
        **options,
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mine = {"rss": rss, "n": len(marks)}
    if len(marks) >= 3:
        mine["first"], mine["last"] = marks[0][0], marks[-1][0]
        mine["cpu"] = (marks[-1][1] - marks[0][1]) / (len(marks) - 1)
    every = comm.gather(mine, root=0)
    if comm.rank == 0:
        timed = [r for r in every if "cpu" in r]
        span = max(r["last"] for r in timed) - min(r["first"] for r in timed)
        cpus = [r["cpu"] * 1e3 for r in timed]
        out = {
            "n": len(result),
            "rate": len(result) / span,
            "messages": result.info.messages / len(result),
            "bytes": result.info.message_bytes / len(result),
            "cpu_median": statistics.median(cpus),
            "cpu_max": max(cpus),
            "rss": max(r["rss"] for r in every),
        }
        Path(args.out).write_text(json.dumps(out))


def _launch(ranks: int, argv: list[str], tree: str | None, timeout: float) -> dict | None:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = ["mpiexec", "-n", str(ranks), sys.executable, __file__, "--run", *argv]
        done = subprocess.run(
            [*cmd, "--out", str(out)], env=env, cwd=tmp, timeout=timeout, capture_output=True
        )
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            print(f"  ({'before' if tree else 'now'}, {ranks} ranks, {argv}: failed: {tail})")
            return None
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 32, 64, 128])
    parser.add_argument("--islands", nargs="+", default=["1", "half"])
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("--strategies", nargs="+", default=["ga", "portfolio"])
    parser.add_argument(
        "--settings", nargs="+", default=["default"], help="dissemination (default: the default)"
    )
    parser.add_argument(
        "--objective",
        choices=["noop", "sphere"],
        default="noop",
        help="0 always (default: no best ever improves), or x0² + x1² (the bests keep improving)",
    )
    parser.add_argument("--before", metavar="DIR", help="also run this checkout (PYTHONPATH)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mpiexec")
    parser.add_argument("--json", help="also write every row here")
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parse(parser, _run)
    if args is None:
        return
    trees = [("now", None)] + ([("before", args.before)] if args.before else [])
    name = "no-op" if args.objective == "noop" else "sphere"
    print(f"{name} objective, 2 floats, {args.evaluations:,} evaluations; load {os.getloadavg()}")
    head = f"{'ranks':>5} {'islands':>7} {'strategy':>9} {'setting':>8} {'tree':>6}"
    head += f" {'evals/s':>8} {'msgs/eval':>9} {'bytes/eval':>10} {'cpu ms/eval':>13}"
    print(f"{head} {'RSS MB':>7}")
    rows = []
    for ranks in args.ranks:
        for islands in args.islands:
            for strategy in args.strategies:
                for setting in args.settings:
                    argv = ["--evaluations", str(args.evaluations), "--islands", islands]
                    argv += ["--objective", args.objective]
                    argv += ["--strategy", strategy, "--setting", setting]
                    for tree_name, tree in trees:
                        if setting != "default" and (tree is not None or islands == "half"):
                            continue  # islands of 2 gossip as with all; older trees lack it
                        r = _launch(ranks, argv, tree, args.timeout)
                        if r is None:
                            continue
                        n_islands = ranks // 2 if islands == "half" else int(islands)
                        rows.append(
                            {"ranks": ranks, "islands": n_islands, "strategy": strategy}
                            | {"setting": setting, "tree": tree_name, **r}
                        )
                        print(
                            f"{ranks:>5} {n_islands:>7} {strategy:>9} {setting:>8} "
                            f"{tree_name:>6} {r['rate']:>8,.0f} {r['messages']:>9.2f} "
                            f"{r['bytes']:>10,.0f} {r['cpu_median']:>6.3f}/{r['cpu_max']:<6.3f} "
                            f"{r['rss']:>7.0f}",
                            flush=True,
                        )
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
