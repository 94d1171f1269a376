"""Search files: numbers as people write them (``1e-3``), and paths relative to the file.

Runs use one rank, in a subprocess started in a chosen working directory, as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import propagator as pg
from propagator import config
from propagator.cli import main
from propagator.config.yaml_numbers import load_yaml
from propagator.store import META
from propagator.store.hdf5 import read_meta

TIMEOUT = 120
_MAIN = "import sys; from propagator.cli import main; sys.exit(main())"

# The objective records what it was given: the type of each param, and the params themselves.
OBJECTIVE = """
def objective(params, trial):
    types = " ".join(f"{k}={type(v).__name__}" for k, v in params.items())
    return {"loss": (params["x"] - 0.3) ** 2, "types": types, "lr": params["lr"]}
"""
NUMBERS = """
lr: {type: categorical, choices: [1e-3, 3e-4, 0.01]}
x: {type: float, low: -1e0, high: 1E0}
decay: {type: float, low: 1e-6, high: 1.e-2, log: true}
width: {type: int, low: 1e1, high: 1e2}
"""


# --- item 6: numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 0.001),
        ("3E-4", 0.0003),
        ("1e3", 1000.0),
        ("+1e1", 10.0),
        ("-2.5e-1", -0.25),
        ("1.e3", 1000.0),
        (".5e-2", 0.005),
        ("1.0e5", 100000.0),  # YAML 1.1 wants a signed exponent: PyYAML reads a string
        ("0.01", 0.01),
        ("10", 10),
        ("'1e-3'", "1e-3"),  # quoted text stays text
        ("1e-3x", "1e-3x"),
        ("e3", "e3"),
    ],
)
def test_numbers_with_an_exponent_are_floats(text, value):
    loaded = load_yaml(f"v: {text}")["v"]
    assert loaded == value and type(loaded) is type(value)


def test_the_safe_loader_itself_is_left_as_it_was():
    assert yaml.safe_load("v: 1e-3")["v"] == "1e-3"


def _search(root: Path, space: str, extra: str = "") -> Path:
    (root / "objective.py").write_text(OBJECTIVE)
    path = root / "search.yaml"
    path.write_text(
        f"objective: objective.py:objective\nspace: {space}\nmetric: loss\n"
        f"fixed: {{wd: 1e-4, steps: 2e2}}\nbudget: {{evaluations: 12}}\nseed: 1\n{extra}"
    )
    return path


def _inline(root: Path) -> Path:
    return _search(root, "\n" + "".join(f"  {line}\n" for line in NUMBERS.strip().splitlines()))


def _space_file(root: Path) -> Path:
    (root / "space.yaml").write_text(NUMBERS)
    return _search(root, "space.yaml")


@pytest.mark.parametrize("make", [_inline, _space_file], ids=["inline", "space_file"])
def test_exponent_numbers_in_a_search_file_are_numbers(tmp_path, make, capsys):
    search = config.load(make(tmp_path))
    params = search.space.params
    assert params["lr"].choices == (0.001, 0.0003, 0.01)
    assert all(type(c) is float for c in params["lr"].choices)
    assert (params["x"].low, params["x"].high) == (-1.0, 1.0)
    assert (params["decay"].low, params["decay"].high) == (1e-6, 1e-2)
    assert (params["width"].low, params["width"].high) == (10, 100)
    assert params["wd"].value == 1e-4 and type(params["wd"].value) is float
    assert params["steps"].value == 200.0

    assert main(["validate", str(tmp_path / "search.yaml")]) == 0
    out = capsys.readouterr().out
    assert "- 0.001\n" in out and "- 0.0003\n" in out and "value: 0.0001\n" in out
    assert "'1e-3'" not in out and "'1e-4'" not in out
    shown = yaml.safe_load(out)["space"]
    assert shown["lr"]["choices"] == [0.001, 0.0003, 0.01]
    assert shown["wd"] == {"type": "constant", "value": 0.0001}


def _propagate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_the_objective_gets_floats(tmp_path):
    path = _inline(tmp_path)
    proc = _propagate(tmp_path, str(path))
    assert proc.returncode == 0, proc.stderr
    result = pg.load(tmp_path / "runs" / "search")
    assert len(result) == 12
    for r in result.records:
        assert r.metrics["types"] == "lr=float x=float decay=float width=int wd=float steps=float"
        assert r.metrics["lr"] in (0.001, 0.0003, 0.01)


# --- item 13: relative paths ------------------------------------------------------------------
def _project(root: Path, evaluations: int) -> Path:
    """``root/proj``: a search file naming its objective, space and run_dir relatively."""
    proj = root / "proj"
    (proj / "code").mkdir(parents=True, exist_ok=True)
    (proj / "code" / "objective.py").write_text(OBJECTIVE)
    (proj / "space.yaml").write_text(NUMBERS)
    path = proj / "search.yaml"
    path.write_text(
        "objective: code/objective.py:objective\nspace: space.yaml\nmetric: loss\n"
        f"budget: {{evaluations: {evaluations}}}\nseed: 2\n"
    )
    return path


def test_the_same_search_file_resumes_from_any_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _project(tmp_path, 10)
    first = _propagate(tmp_path / "proj", "search.yaml")
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "proj" / "runs" / "search"  # the default: runs/<stem> next to the file
    assert len(pg.load(run_dir)) == 10
    stored = json.loads(read_meta(run_dir / META)[0]["config"])
    assert stored["run_dir"] == "runs/search"

    _project(tmp_path, 20)  # only the budget grew
    second = _propagate(tmp_path, "proj/search.yaml")
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr and "10 evaluations done" in second.stderr
    assert len(pg.load(run_dir)) == 20

    _project(tmp_path, 30)
    third = _propagate(elsewhere, str(tmp_path / "proj" / "search.yaml"))
    assert third.returncode == 0, third.stderr
    assert "20 evaluations done" in third.stderr
    assert len(pg.load(run_dir)) == 30
    assert json.loads(read_meta(run_dir / META)[0]["config"]) == {
        **stored,
        "budget": {**stored["budget"], "evaluations": 30},
    }
    for cwd in (tmp_path, elsewhere):
        assert not (cwd / "runs").exists()


def test_relative_paths_are_found_from_any_directory(tmp_path, monkeypatch):
    path = _project(tmp_path, 10)
    (tmp_path / "proj" / "spaces.py").write_text(
        "import propagator as pg\nSMALL = pg.Space({'x': pg.Float(-1, 1), 'lr': 0.1})\n"
    )
    path.write_text(
        path.read_text().replace("space: space.yaml", "space: spaces:SMALL") + "run_dir: ../out/x\n"
    )
    monkeypatch.chdir(tmp_path / "proj" / "code")  # neither the file's directory nor above it
    monkeypatch.setattr(sys, "path", list(sys.path))
    search = config.load(Path("..") / "search.yaml")
    assert search.space.params["lr"].value == 0.1
    assert callable(search.objective())
    assert search.run_dir.resolve() == tmp_path / "out" / "x"
    assert search.resolved()["run_dir"] == "../out/x"


def test_an_absolute_run_dir_is_kept(tmp_path):
    path = _project(tmp_path, 10)
    path.write_text(path.read_text() + f"run_dir: {tmp_path / 'abs'}\n")
    assert config.load(path).run_dir == tmp_path / "abs"


def test_a_file_next_to_the_working_directory_only_is_not_used(tmp_path, monkeypatch, capsys):
    """The objective file is looked for next to the search file, never in the cwd."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "objective.py").write_text(OBJECTIVE)  # in the cwd, not next to the file
    path = tmp_path / "jobs" / "search.yaml"
    path.write_text(
        "objective: objective.py:objective\nspace: {x: {type: float, low: 0, high: 1}}\n"
        "budget: {evaluations: 4}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "jobs/search.yaml"]) == 2
    err = capsys.readouterr().err
    assert "objective: no file 'objective.py' next to the search file" in err
    assert "'jobs/objective.py'" in err


# --- issue 21: a plain budget, null as unset, a warm start with fill, the read commands' run --
def _plain(root: Path, extra: str) -> Path:
    (root / "objective.py").write_text(OBJECTIVE)
    path = root / "search.yaml"
    path.write_text(
        "objective: objective.py:objective\nspace: {x: {type: float, low: 0, high: 1}}\n"
        f"{extra}"
    )
    return path


def test_a_plain_integer_budget_is_evaluations_as_in_the_api(tmp_path):
    search = config.load(_plain(tmp_path, "budget: 20\n"))
    assert search.settings.budget == pg.Budget(evaluations=20)
    assert search.resolved()["budget"] == {"evaluations": 20, "time": None, "steps": None}


def test_a_key_set_to_null_is_left_out(tmp_path):
    nulls = (
        "budget: {evaluations: 20, time: null, steps: null}\nseed: null\nmetric: null\n"
        "early_stopping: null\ntrial_timeout: null\nconfirm: null\nwarm_start: null\npbt: null\n"
        "islands: null\nmigration: {probability: null, migrants: 2}\ninitial: null\n"
        "run_dir: null\n"
    )
    search = config.load(_plain(tmp_path, nulls))
    unset = config.load(_plain(tmp_path, "budget: 20\nmigration: {migrants: 2}\n"))
    assert search.resolved() == unset.resolved()
    assert search.run_dir == tmp_path / "runs" / "search"


def test_a_warm_start_with_fill_follows_the_search_file(tmp_path, monkeypatch):
    path = _plain(tmp_path, "budget: 5\nwarm_start: {from: old/run, fill: {x: 0.25}}\n")
    monkeypatch.chdir(tmp_path.parent)
    search = config.load(path)
    warm = search.settings.warm_start
    assert (warm.source, dict(warm.fill)) == (str(tmp_path / "old" / "run"), {"x": 0.25})
    # stored as written, so that the stored run does not depend on the working directory
    assert search.resolved()["warm_start"] == {"from": "old/run", "fill": {"x": 0.25}}
    plain = config.load(_plain(tmp_path, "budget: 5\nwarm_start: old/run\n"))
    assert plain.resolved()["warm_start"] == "old/run"
    assert plain.settings.to_dict()["warm_start"] == str(tmp_path / "old" / "run")


def test_a_read_command_finds_the_run_of_a_search_file(tmp_path, monkeypatch):
    _plain(tmp_path, "budget: 5\nrun_dir: ../out/x\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pg.ConfigError, match=r"its run directory .* does not exist yet; start "):
        config.run_dir_of("search.yaml")
    (tmp_path.parent / "out" / "x").mkdir(parents=True)
    assert config.run_dir_of("search.yaml") == Path("../out/x")  # as the run command puts it
    assert config.run_dir_of(tmp_path) == tmp_path  # a directory is the run directory
    assert config.run_dir_of("elsewhere") == Path("elsewhere")
    with pytest.raises(pg.ConfigError, match=r"cannot read the search file 'missing\.yml'"):
        config.run_dir_of("missing.yml")
