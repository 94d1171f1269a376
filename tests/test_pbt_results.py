"""PBT in the read-side commands: the report's population counts and winning schedule, the
``pbt.png`` figure, and the lineage columns of an export (which warm starts still read), on
one small PBT run made under mpiexec and checked against its records; and, as a real run's
winner may never have copied, on a hand-made lineage whose winner did, with a categorical and
a conditional parameter."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread
from test_pbt import EPOCHS, _run

import propagator as pg
from propagator.cli import main
from propagator.engine.records import Status, wire_dtype
from propagator.results.format import format_value
from propagator.results.pbt_plots import draw_pbt
from propagator.results.pbt_report import pbt_section
from propagator.results.result import Result, RunInfo
from propagator.store.warm import load_warm

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished PBT run: 4 workers, 24 segments of 3 steps, ``lr`` mutable."""
    root = tmp_path_factory.mktemp("pbt_results")
    code, out = _run(root, 4, 1, 24)
    assert code == 0, out[-3000:]
    return root / "run"


@pytest.fixture(scope="module")
def result(run_dir: Path) -> pg.Result:
    return pg.load(run_dir)


def _winning_stretches(result: pg.Result) -> list[tuple[int, int, float, float]]:
    """(first step, last step, lr, value at the last step) per run of equal ``lr`` along the
    best record's parents, walked here from the records alone."""
    by_id = {r.id: r for r in result.records}
    chain = [result.best]
    while chain[-1].parent is not None:
        chain.append(by_id[chain[-1].parent])
    chain.reverse()
    out: list[tuple[int, int, float, float]] = []
    first = 1
    for r in chain:
        if out and out[-1][2] == r.params["lr"]:
            out[-1] = (out[-1][0], r.step, r.params["lr"], r.value)
        else:
            out.append((first, r.step, r.params["lr"], r.value))
        first = r.step + 1
    return out


def test_the_report_counts_the_population_and_shows_the_winning_schedule(run_dir, result, capsys):
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    records = result.records
    by_id = {r.id: r for r in records}
    members = {r.member for r in records}
    complete = {r.member for r in records if r.ok}
    copies = sum(r.parent is not None and by_id[r.parent].member != r.member for r in records)
    assert "population-based training: lr mutable, segments of 3 steps" in out
    assert f"  members    {len(members)} ({len(complete)} trained to the end)\n" in out
    assert f"  segments   {len(records)}\n" in out
    assert f"  copies     {copies} (" in out
    assert "promotion" not in out  # PBT's pauses are not ASHA's
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("winning schedule:"))
    assert f"id {result.best.id} (member {result.best.member}" in lines[head]
    assert lines[head + 1].split() == ["steps", "lr", "loss"]
    shown = []
    for line in lines[head + 2 :]:
        if not line.strip():
            break
        steps, lr, value = line.split()
        first, last = steps.split("-")
        shown.append((int(first), int(last), lr, value))
    expected = _winning_stretches(result)
    assert shown == [(a, b, format_value(lr), format_value(v)) for a, b, lr, v in expected]
    assert shown[0][0] == 1 and shown[-1][1] == EPOCHS
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(shown))
    assert all(a[2] != b[2] for a, b in itertools.pairwise(shown))  # merged


def test_pbt_png_draws_the_winning_schedule_and_every_member(run_dir, result, tmp_path):
    assert main(["plot", str(run_dir), "-o", str(tmp_path)]) == 0
    png = tmp_path / "pbt.png"
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    pixels = imread(png)[..., :3]
    crimson = np.array([220, 20, 60]) / 255  # the winner's colour
    assert np.count_nonzero(np.abs(pixels - crimson).max(axis=-1) < 0.05) > 500
    # what was drawn: the schedule's steps and values, and one line per member
    fig = Figure()
    draw_pbt(fig, result)
    expected = _winning_stretches(result)
    by_label = {ax.get_ylabel(): ax for ax in fig.axes}
    if len(expected) > 1:  # lr changed along the winner's chain
        (line,) = by_label["lr"].get_lines()
        assert list(line.get_xdata()) == [a for a, _, _, _ in expected] + [EPOCHS]
        lrs = [lr for _, _, lr, _ in expected]
        assert np.allclose(line.get_ydata(), [*lrs, lrs[-1]])
        assert by_label["lr"].get_yscale() == "log"  # lr is a log-scaled Float
    else:
        assert "lr" not in by_label
    population = by_label["loss"]
    members = {r.member for r in result.records}
    assert len(population.get_lines()) == len(members) + 1  # the winning chain over them
    chain = population.get_lines()[-1]
    assert chain.get_xdata()[-1] == EPOCHS and chain.get_ydata()[-1] == result.best.value


def test_the_export_has_the_lineage_and_warm_starts_read_it(run_dir, result, tmp_path):
    csv_path, jsonl_path = tmp_path / "runs.csv", tmp_path / "runs.jsonl"
    assert main(["export", str(run_dir), "-o", str(csv_path)]) == 0
    assert main(["export", str(run_dir), "-o", str(jsonl_path)]) == 0
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames[12:14] == ["parent", "member"]
    jsonl = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert any(r.parent is not None for r in result.records)
    for row, line, record in zip(rows, jsonl, result.records, strict=True):
        assert int(row["id"]) == line["id"] == record.id
        assert row["parent"] == ("" if record.parent is None else str(record.parent))
        assert int(row["member"]) == line["member"] == record.member
        assert line["parent"] == record.parent
    dtype = wire_dtype(result.space.dim)
    from_run = load_warm(str(run_dir), result.space, "loss", dtype)
    for source in (csv_path, jsonl_path):
        warm = load_warm(str(source), result.space, "loss", dtype)
        assert warm.skipped == 0 and len(warm.rows) == len(result)
        assert np.array_equal(warm.rows["status"], from_run.rows["status"])
        assert np.allclose(warm.rows["genes"], from_run.rows["genes"])
        assert np.array_equal(warm.rows["values"], from_run.rows["values"], equal_nan=True)


# --- a hand-made lineage ------------------------------------------------------------------------
SPACE = pg.Space(
    {
        "lr": pg.Float(1e-4, 1.0, log=True),
        "opt": pg.Categorical(["sgd", "adam"]),
        "momentum": pg.Float(0.0, 0.99, when="opt == 'sgd'"),
        "layers": pg.Int(1, 6),
    }
)
SGD = {"lr": 0.1, "opt": "sgd", "momentum": 0.9, "layers": 2}
ADAM = {"lr": 0.12, "opt": "adam", "layers": 2}
PAUSED, OK, FAILED = Status.PAUSED, Status.OK, Status.FAILED
# id: parent, member, last step, status, params, value. Member 1 copies member 0 at step 2,
# member 7 copies member 1 at step 6 and wins: its chain is 0, 3, 4, 8.
SEGMENTS = {
    0: (-1, 0, 2, PAUSED, SGD, 0.5),
    1: (-1, 1, 2, PAUSED, {"lr": 0.01, "opt": "adam", "layers": 3}, 0.8),
    2: (0, 0, 4, PAUSED, SGD, 0.3),
    3: (0, 1, 4, PAUSED, ADAM, 0.35),
    4: (3, 1, 6, PAUSED, ADAM, 0.2),
    5: (2, 0, 6, FAILED, SGD, float("nan")),
    6: (4, 1, 8, OK, ADAM, 0.1),
    7: (-1, 7, 2, PAUSED, {**SGD, "lr": 0.5}, 0.9),
    8: (4, 7, 8, OK, {**ADAM, "lr": 0.01}, 0.05),
}


def _hand_made() -> Result:
    rows = np.zeros(len(SEGMENTS), wire_dtype(SPACE.dim, lineage=True))
    for row, (rid, (parent, member, step, status, params, value)) in zip(
        rows, SEGMENTS.items(), strict=True
    ):
        row["id"], row["parent"], row["member"], row["step"] = rid, parent, member, step
        row["status"], row["values"][0], row["genes"] = status, value, SPACE.encode(params)
        row["end"] = rid
    info = RunInfo(1, 4, 4, 1, 1.0, False, 0, 0, 0, 0)
    return Result(SPACE, "loss", "minimize", rows, {}, {5: "diverged"}, {}, info)


def test_a_copy_that_keeps_the_params_merges_and_each_changing_parameter_gets_a_panel():
    result = _hand_made()
    spec = {"mutable": ["lr", "opt", "momentum", "layers"], "interval": 2}
    lines = pbt_section(result, spec)
    assert lines[1:4] == [
        "  members    3 (2 trained to the end)",
        "  segments   9",
        "  copies     2 (segments that continued another member's training)",
    ]
    assert lines[4] == "winning schedule: id 8 (member 7, through members 0, 1, 7)"
    assert [line.split() for line in lines[5:]] == [
        ["steps", "lr", "opt", "momentum", "layers", "loss"],
        ["1-2", "0.1", "sgd", "0.9", "2", "0.5"],
        ["3-6", "0.12", "adam", "-", "2", "0.2"],  # segments 3 and 4: one stretch
        ["7-8", "0.01", "adam", "-", "2", "0.05"],
    ]
    fig = Figure()
    draw_pbt(fig, result)
    by_label = {ax.get_ylabel(): ax for ax in fig.axes}
    assert set(by_label) == {"lr", "opt", "momentum", "loss"}  # layers never changed
    drawn = {name: by_label[name].get_lines()[0] for name in ("lr", "opt", "momentum")}
    assert list(drawn["lr"].get_xdata()) == [1, 3, 7, 8]
    assert np.allclose(drawn["lr"].get_ydata(), [0.1, 0.12, 0.01, 0.01])
    assert by_label["lr"].get_yscale() == "log"
    assert list(drawn["opt"].get_xdata()) == [1, 3, 8]  # one stretch per value
    assert list(drawn["opt"].get_ydata()) == [0, 1, 1]  # sgd, adam by index
    assert [t.get_text() for t in by_label["opt"].get_yticklabels()] == ["sgd", "adam"]
    assert list(drawn["momentum"].get_xdata()) == [1, 3, 8]
    assert np.allclose(drawn["momentum"].get_ydata(), [0.9, np.nan, np.nan], equal_nan=True)
    population = by_label["loss"].get_lines()
    assert len(population) == 3 + 1  # a line per member, the winning chain over them
    assert list(population[-1].get_xdata()) == [2, 4, 6, 8]
    assert list(population[-1].get_ydata()) == [0.5, 0.35, 0.2, 0.05]
