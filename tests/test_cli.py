"""The command line on good input: validate, version, the shipped search files; mistyped
commands; output into a pipe whose reader goes away."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator import _entry, config
from propagator.cli import main

JOBS = Path(__file__).parent.parent / "jobs"
TIMEOUT = 120
_MAIN = "import sys; from propagator.cli import main; sys.exit(main())"


def test_validate_prints_the_effective_configuration_and_layout(capsys):
    assert main(["validate", str(JOBS / "quickstart.yaml"), "-n", "8"]) == 0
    out = capsys.readouterr().out
    effective = yaml.safe_load(out)
    assert effective["budget"] == {"evaluations": 1200, "time": 180.0, "steps": None}
    assert effective["space"]["epochs"] == {"type": "constant", "value": 150}  # fixed values
    assert "8 ranks -> 8 workers of 1 rank -> 2 islands" in out
    assert "island 1: workers 4..7 (ranks 4..7)" in out
    assert effective["run_dir"] == "runs/quickstart"
    assert f"# run_dir: {JOBS / 'runs' / 'quickstart'} " in out  # next to the search file


@pytest.mark.parametrize(("ranks", "workers"), [(8, 4), (40, 20), (None, 1)])
def test_validate_shows_the_population_the_strategy_uses(ranks, workers, capsys):
    """The GA's automatic population for the workers per island of the layout (2 islands);
    the stored configuration keeps null."""
    args = [] if ranks is None else ["-n", str(ranks)]
    assert main(["validate", str(JOBS / "quickstart.yaml"), *args]) == 0
    out = capsys.readouterr().out
    search = config.load(JOBS / "quickstart.yaml")
    expected = search.settings.strategy[0].create(search.space, workers).pool_size
    assert isinstance(expected, int) and expected >= 2
    assert [s["population"] for s in yaml.safe_load(out)["strategy"]] == [expected] * 2
    assert "# population: automatic, shown for the layout below" in out
    assert [s["population"] for s in search.resolved()["strategy"]] == [None, None]


def test_the_automatic_population_grows_with_the_workers(capsys):
    shown = []
    for ranks in ("2", "64"):
        assert main(["validate", str(JOBS / "quickstart.yaml"), "-n", ranks]) == 0
        shown.append(yaml.safe_load(capsys.readouterr().out)["strategy"][0]["population"])
    assert shown[0] < shown[1]


def test_validate_lays_out_the_fewest_ranks_unless_told(tmp_path, capsys):
    (tmp_path / "f.py").write_text("def f(params, trial):\n    return 0.0\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        "objective: f.py:f\nspace: {x: {type: float, low: 0, high: 1}}\n"
        "budget: {evaluations: 4}\nislands: 3\nranks_per_worker: 2\n"
    )
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "# layout for 6 ranks (the fewest this file allows; -n N shows N ranks):" in out
    assert "6 ranks -> 3 workers of 2 ranks -> 3 islands" in out
    assert main(["validate", str(path), "-n", "2"]) == 2
    assert "islands=3 needs at least 3 workers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "close"),
    [(["exprot", "runs/x"], "export"), (["reprot"], "report"), (["wacth", "r"], "watch")],
)
def test_a_mistyped_command_gets_a_suggestion(argv, close, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"propagate: error: unknown command {argv[0]!r}; did you mean {close!r}? (commands: "
        "run, validate, report, export, plot, optuna, watch, replay, dashboard; or give a search "
        "file to run)\n"
    )


def test_a_file_named_like_a_command_is_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reprot").write_text("objective: [")
    assert main(["reprot"]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("propagate 0.")


def test_ranks_sharing_a_node_get_their_share_of_the_cores(monkeypatch):
    for var in (*_entry._POOLS, *_entry._LOCAL_RANKS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_entry.os, "cpu_count", lambda: 16)
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")  # the user's choice wins
    _entry.share_cores()
    assert _entry.os.environ["OMP_NUM_THREADS"] == "4"
    assert _entry.os.environ["OPENBLAS_NUM_THREADS"] == "4"
    assert _entry.os.environ["MKL_NUM_THREADS"] == "2"


def test_a_run_killed_while_being_created_starts_cleanly(tmp_path, monkeypatch, capsys):
    from conftest import search_file

    monkeypatch.setenv("PROPAGATE_TEST_LOG", str(tmp_path))
    path = search_file(tmp_path, 20, islands=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".run.h5.tmp-4242").write_bytes(b"\x89HDF half written")
    assert main(["run", str(path)]) == 0
    assert not list((tmp_path / "run").glob(".run.h5.tmp-*"))
    import propagator as pg

    assert len(pg.load(tmp_path / "run")) == 20


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small_run")
    (root / "f.py").write_text("def f(params, trial):\n    return params['x'] ** 2\n")
    path = root / "s.yaml"
    path.write_text(
        "objective: f.py:f\nspace: {x: {type: float, low: -1, high: 1}}\n"
        "budget: {evaluations: 30}\nseed: 5\n"
    )
    assert main(["run", str(path), "--progress", "none"]) == 0
    return root / "runs" / "s"


@pytest.mark.parametrize(
    "args",
    [
        ["report", "{run}", "--top", "20"],
        ["watch", "{run}", "--once"],
        ["validate", "{search}"],
    ],
    ids=["report", "watch", "validate"],
)
def test_a_reader_that_goes_away_ends_the_command_quietly(args, small_run):
    """As in `propagate report RUN | head -1`: the pipe is closed before anything is written."""
    args = [a.format(run=small_run, search=small_run.parent.parent / "s.yaml") for a in args]
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone
    try:
        err = proc.stderr.read()
        rc = proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert rc == 0 and err == "", err


def test_report_into_head_exits_0(small_run):
    proc = subprocess.run(
        [
            "bash",
            "-c",
            'python -c "$0" report "$1" | head -1; exit "${PIPESTATUS[0]}"',
            _MAIN,
            str(small_run),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("run ")


def test_the_command_writes_whole_lines():
    """Unbuffered (stderr, PYTHONUNBUFFERED), print writes a line's text and its newline
    separately, and mpiexec may relay another rank's or stream's line between them: the
    command makes both streams write a line at a time."""
    check = (
        "import sys; from propagator.cli import main; sys.argv[1:] = ['--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print([(s.line_buffering, s.write_through) for s in (sys.stdout, sys.stderr)])"
    )
    proc = subprocess.run(
        [sys.executable, "-u", "-c", check], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.stdout.splitlines()[-1] == "[(True, False), (True, False)]", proc.stderr


# --- issue 21: the effective configuration, the read commands, --fresh -----------------------
def _effective(path: Path) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["validate", str(path)]) == 0
    return yaml.safe_load(out.getvalue())


def _again(effective: dict, where: Path) -> dict:
    """``effective`` saved as the search file ``where/again.yaml``, validated."""
    path = where / "again.yaml"
    path.write_text(yaml.safe_dump(effective, sort_keys=False))
    return _effective(path)


@pytest.mark.parametrize("job", sorted(JOBS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_effective_configuration_of_a_job_is_a_search_file(job, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the objective's directory joins it
    for code in JOBS.glob("*.py"):  # objectives named by file, next to the search file
        shutil.copy(code, tmp_path)
    effective = _effective(job)
    assert _again(effective, tmp_path) == effective


OBJECTIVE = "def f(params, trial):\n    return params['x'] + params['n']\n"
# an earlier search's export, one record lacking n
EARLIER = "status,value,metric.value,param.x,param.n\nok,0.5,0.5,0.5,2\nok,0.2,0.2,0.2,\n"
_STRATEGIES = [
    "ga",
    "cmaes",
    "tpe",
    "random",
    "portfolio",
    {"name": "ga", "population": 6, "mutation": 0.3},
    {"name": "portfolio", "members": ["ga", "tpe"], "floor": 0.2},
    {"name": "cmaes", "sigma": 0.3},
]
_FILES = st.fixed_dictionaries(
    {"budget": st.one_of(st.integers(40, 90), st.just({"evaluations": 50, "time": "1h30m"}))},
    optional={
        "islands": st.one_of(
            st.integers(1, 3), st.lists(st.integers(1, 2), min_size=2, max_size=3)
        ),
        "strategy": st.sampled_from(_STRATEGIES),
        "early_stopping": st.sampled_from(
            ["asha", "auto", "median", {"name": "asha", "brackets": 2}]
        ),
        "seed": st.integers(0, 2**31),
        "metric": st.just("value"),
        "direction": st.sampled_from(["minimize", "maximize"]),
        "confirm": st.fixed_dictionaries({"top": st.integers(1, 3), "seeds": st.integers(1, 3)}),
        "repeats": st.integers(1, 2),
        "trial_timeout": st.sampled_from([30, "20m"]),
        "failure_grace": st.sampled_from([5, "1m"]),
        "deduplicate": st.booleans(),
        "max_initial_failures": st.integers(1, 9),
        "initial": st.just([{"x": 0.3, "n": 2}, {"x": 0.7, "n": 1}]),
        "migration": st.fixed_dictionaries(
            {
                "probability": st.floats(0, 1),
                "topology": st.sampled_from(["ring", "fully_connected"]),
            }
        ),
        "warm_start": st.sampled_from(["earlier.csv", {"from": "earlier.csv", "fill": {"n": 3}}]),
        "fixed": st.just({"c": "const"}),
    },
)


@settings(max_examples=25, deadline=None)
@given(_FILES)
def test_the_effective_configuration_of_any_search_file_is_one(keys):
    """validate -> save -> validate gives the same configuration, for search files drawn from
    the keys' forms (a plain budget, null-free mappings, warm starts with fill...)."""
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        (where / "f.py").write_text(OBJECTIVE)
        (where / "earlier.csv").write_text(EARLIER)
        space = {
            "x": {"type": "float", "low": 0, "high": 1},
            "n": {"type": "int", "low": 1, "high": 3},
        }
        path = where / "s.yaml"
        path.write_text(yaml.safe_dump({"objective": "f.py:f", "space": space, **keys}))
        effective = _effective(path)
        assert effective["budget"]["evaluations"] == (
            keys["budget"] if isinstance(keys["budget"], int) else 50
        )
        assert _again(effective, where) == effective


READ_COMMANDS = [
    ("report", ["report", "{run}", "--top", "3"], None),
    ("watch", ["watch", "{run}", "--once"], None),
    ("export", ["export", "{run}", "-o", "{out}/all.csv"], "all.csv"),
    ("plot", ["plot", "{run}", "-o", "{out}"], None),
    ("optuna", ["optuna", "{run}", "-o", "{out}/study.log", "--study", "s"], None),
    ("replay", ["replay", "{run}"], None),  # not a PBT run: the same refusal
]


@pytest.mark.parametrize(
    ("args", "written"), [c[1:] for c in READ_COMMANDS], ids=[c[0] for c in READ_COMMANDS]
)
def test_every_read_command_takes_the_search_file(args, written, small_run, tmp_path, capsys):
    """``propagate report s.yaml`` reads the run in the file's run_dir, as ``report RUN_DIR``."""
    seen = []
    for i, run in enumerate((small_run, small_run.parent.parent / "s.yaml")):
        out = tmp_path / str(i)
        out.mkdir()
        status = main([a.format(run=run, out=out) for a in args])
        captured = capsys.readouterr()
        files = sorted(p.name for p in out.iterdir())
        content = (out / written).read_text() if written else None
        seen.append((status, captured.out.replace(str(out), "OUT"), captured.err, files, content))
    assert seen[0] == seen[1]
    assert seen[0][0] == (1 if args[0] == "replay" else 0)


def test_a_read_command_on_a_search_file_whose_run_has_not_started(tmp_path, capsys):
    (tmp_path / "f.py").write_text(OBJECTIVE)
    path = tmp_path / "new.yaml"
    path.write_text("objective: f.py:f\nspace: {x: {type: float, low: 0, high: 1}}\nbudget: 4\n")
    assert main(["report", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"propagate: error: {path}: its run directory '{tmp_path / 'runs' / 'new'}' does not "
        f"exist yet; start the search with: propagate {path}\n"
    )


def test_fresh_with_a_bad_warm_start_moves_nothing(tmp_path, capsys):
    """Everything is checked before the old run is moved aside: a warm start that cannot be
    read (or cannot seed the search) leaves the run where it was."""
    (tmp_path / "f.py").write_text(OBJECTIVE)
    path = tmp_path / "s.yaml"
    text = (
        "objective: f.py:f\nspace: {x: {type: float, low: 0, high: 1}, "
        "n: {type: int, low: 1, high: 3}}\nbudget: 3\nseed: 1\n"
    )
    path.write_text(text)
    assert main(["run", str(path), "--progress", "none"]) == 0
    (tmp_path / "earlier.csv").write_text("status,value,param.x\nok,0.5,0.5\nok,0.25,0.2\n")
    for warm, message in [
        ("nowhere", "warm_start: nothing at"),
        ("earlier.csv", "2 lack 'n', which this search's space has"),  # every record
    ]:
        path.write_text(f"{text}warm_start: {warm}\n")
        capsys.readouterr()
        assert main(["run", str(path), "--fresh", "--progress", "none"]) == 2
        assert message in capsys.readouterr().err
        assert [p.name for p in (tmp_path / "runs").iterdir()] == ["s"]  # nothing moved aside
        assert len(pg.load(tmp_path / "runs" / "s")) == 3
        assert main(["validate", str(path)]) == 2  # validate reads the warm start too
        assert message in capsys.readouterr().err
