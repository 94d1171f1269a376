"""Bad search files and bad command lines: exit status 2, one clear message, never a traceback.

Each ``tests/data/bad/NAME.yaml`` is a search file with one mistake (files whose name starts
with ``_`` are helpers the cases point at). Its leading comment lines say what to expect:

    # expect: TEXT          the message must contain TEXT (several such lines: all of them)
    # validate-args: ARGS   extra arguments for ``propagate validate`` (e.g. ``-n 7``)
    # validate: ok          the file itself is fine; only running it fails
    # make-dir: NAME        first create a non-empty directory NAME next to the search file
    # after-mpi-init        the mistake can only show once MPI knows the world size

Each case runs ``propagate FILE`` (the run command, on one rank) as a subprocess, and
``propagate validate FILE`` in this process (``cli.main``: a stray exception fails the test as
a traceback would). Each works on a copy of the case and of the helpers, in a temporary
directory of its own, and runs from another temporary directory: nothing is written into the
repository, and relative paths in the file must be found from the file's directory. Unless a
case says ``after-mpi-init``, the run command runs with mpi4py made unimportable: a mistake in
the file must be reported before any MPI work starts.

The subprocesses (mostly Python start-up and imports, about a second each) are started ahead
by a module fixture, as many at a time as there are CPUs, and each test waits for its own.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from propagator.cli import main

BAD = Path(__file__).parent / "data" / "bad"
TIMEOUT = 60
_MAIN = "import sys; from propagator.cli import main; sys.exit(main())"
_MAIN_WITHOUT_MPI = "import sys; sys.modules['mpi4py'] = None; " + _MAIN
_DIRECTIVES = ("expect", "validate-args", "validate", "make-dir", "after-mpi-init")

Outcome = tuple[int, str, str]  # exit status, stdout, stderr


@dataclass
class Case:
    path: Path
    expect: list[str] = field(default_factory=list)
    validate_args: list[str] = field(default_factory=list)
    validate_ok: bool = False
    make_dir: str | None = None
    after_mpi_init: bool = False

    def stage(self, root: Path) -> tuple[Path, Path]:
        """Copy the case and the helpers into ``root/case``; (the copy, a working directory)."""
        here, cwd = root / "case", root / "cwd"
        here.mkdir()
        cwd.mkdir()
        for helper in HELPERS:
            shutil.copy(helper, here)
        shutil.copy(self.path, here)
        if self.make_dir:
            (here / self.make_dir).mkdir()
            (here / self.make_dir / "notes.txt").write_text("not a propagate run\n")
        return here / self.path.name, cwd


def _case(path: Path) -> Case:
    case = Case(path)
    # bytes, not text: one case is deliberately not UTF-8
    for raw in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        if not raw.startswith("#"):
            break
        key, _, value = raw.lstrip("# ").partition(":")
        value = value.strip()
        assert key in _DIRECTIVES, f"{path.name}: unknown directive {raw!r}"
        if key == "expect":
            case.expect.append(value)
        elif key == "validate-args":
            case.validate_args = shlex.split(value)
        elif key == "validate":
            assert value == "ok", f"{path.name}: {raw!r}"
            case.validate_ok = True
        elif key == "make-dir":
            case.make_dir = value
        else:
            case.after_mpi_init = True
    assert case.expect, f"{path.name}: no '# expect:' line"
    return case


CASES = sorted(p for p in BAD.glob("*.yaml") if not p.name.startswith("_"))
HELPERS = sorted(p for p in BAD.iterdir() if p.name.startswith("_") and p.is_file())

GOOD = """\
objective: objective.py:objective
space: {x: {type: float, low: 0, high: 1}}
budget: {evaluations: 4}
"""


def _prepare_command_line(cwd: Path) -> None:
    (cwd / "good.yaml").write_text(GOOD)
    (cwd / "objective.py").write_text("def objective(params, trial):\n    return 0.0\n")
    (cwd / "adir").mkdir()


def _propagate(args: list[str], cwd: Path, env: dict[str, str], *, mpi: bool = True) -> Outcome:
    """``propagate ARGS`` in a subprocess; with ``mpi=False`` mpi4py cannot be imported."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN if mpi else _MAIN_WITHOUT_MPI, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"propagate {shlex.join(args)} hung for {TIMEOUT}s:\n{err[-2000:]}")
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def started(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Path, Future[Outcome]]]]:
    """The subprocess of every selected test of this module, by node id: (its cwd, its outcome)."""
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    # The threads start their children with a copy of the environment: given none, a child
    # execs with the process's live environ, which tests on the main thread change meanwhile
    # (setenv may move it: the exec then fails with EFAULT, "Bad address").
    env = dict(os.environ)
    jobs: dict[str, tuple[Path, Future[Outcome]]] = {}
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "module", None) is not sys.modules[__name__] or not params:
            continue
        root = tmp_path_factory.mktemp("case")
        if "path" in params:
            case = _case(params["path"])
            file, cwd = case.stage(root)
            future = pool.submit(_propagate, [str(file)], cwd, env, mpi=case.after_mpi_init)
        else:
            cwd = root
            _prepare_command_line(cwd)
            future = pool.submit(_propagate, params["args"], cwd, env)
        jobs[item.nodeid] = (cwd, future)
    yield jobs
    pool.shutdown(cancel_futures=True)


def _assert_one_error(what: str, outcome: Outcome, expect: list[str]) -> None:
    rc, out, err = outcome
    shown = f"{what}\n--- stdout ---\n{out}--- stderr ---\n{err}"
    assert "Traceback" not in out + err, shown
    assert rc == 2, shown
    assert out == "", shown
    # one error block: it comes first, and there is only one
    assert err.startswith("propagate: error: "), shown
    assert err.count("propagate: error:") == 1, shown
    for text in expect:
        assert text in err, f"expected {text!r} in the message\n{shown}"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_search_file(
    path: Path,
    started: dict[str, tuple[Path, Future[Outcome]]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = _case(path)
    file, cwd = case.stage(tmp_path)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "path", list(sys.path))  # imports put the file's directory on it
    status = main(["validate", str(file), *case.validate_args])
    out, err = capsys.readouterr()
    if case.validate_ok:
        assert status == 0, f"validate failed:\n{err}"
    else:
        _assert_one_error("propagate validate", (status, out, err), case.expect)

    run_cwd, run = started[request.node.nodeid]
    _assert_one_error("propagate (run)", run.result(), case.expect)
    for where in (cwd, file.parent, run_cwd, run_cwd.parent / "case"):
        assert not (where / "runs").exists(), "a bad file must not create a run directory"


# (id, arguments, texts expected in stdout + stderr, whether the message is propagate's own)
COMMAND_LINES = [
    ("no_arguments", [], ["usage: propagate"], False),
    ("validate_without_file", ["validate"], ["required: file"], False),
    ("run_without_file", ["run"], ["required: file"], False),
    ("missing_file", ["missing.yaml"], ["cannot read the search file 'missing.yaml'"], True),
    (
        "validate_missing_file",
        ["validate", "missing.yaml"],
        ["cannot read the search file 'missing.yaml'", "No such file or directory"],
        True,
    ),
    ("directory", ["adir"], ["cannot read the search file 'adir'", "Is a directory"], True),
    ("validate_directory", ["validate", "adir"], ["Is a directory"], True),
    ("unknown_command", ["frobnicate"], ["'frobnicate'"], True),
    (
        "mistyped_command",
        ["exprot", "runs/x"],
        ["unknown command 'exprot'; did you mean 'export'?"],
        True,
    ),
    ("mistyped_command_alone", ["reprot"], ["did you mean 'report'?"], True),
    ("watch_without_run_dir", ["watch"], ["required: run_dir"], False),
    ("watch_missing_run_dir", ["watch", "missing_run"], ["no run directory 'missing_run'"], True),
    ("watch_not_a_run", ["watch", "adir"], ["'adir' is not a propagate run directory"], True),
    (
        "watch_interval_zero",
        ["watch", "adir", "--interval", "0"],
        ["--interval must be a positive number of seconds, got 0.0"],
        True,
    ),
    (
        "progress_unknown_mode",
        ["good.yaml", "--progress", "fancy"],
        ["argument --progress: invalid choice: 'fancy'"],
        False,
    ),
    ("unknown_option", ["--frobnicate"], ["unrecognized arguments: --frobnicate"], False),
    (
        "unknown_validate_option",
        ["validate", "good.yaml", "--bogus"],
        ["unrecognized arguments: --bogus"],
        False,
    ),
    ("unknown_run_option", ["good.yaml", "--frsh"], ["unrecognized arguments: --frsh"], False),
    (
        "ranks_not_a_number",
        ["validate", "good.yaml", "-n", "seven"],
        ["invalid int value: 'seven'"],
        False,
    ),
    ("ranks_zero", ["validate", "good.yaml", "-n", "0"], ["--ranks must be at least 1"], True),
    (
        "ranks_negative",
        ["validate", "good.yaml", "--ranks=-4"],
        ["--ranks must be at least 1, got -4"],
        True,
    ),
]


@pytest.mark.parametrize(
    ("args", "expect", "own"),
    [c[1:] for c in COMMAND_LINES],
    ids=[c[0] for c in COMMAND_LINES],
)
def test_bad_command_line(
    args: list[str],
    expect: list[str],
    own: bool,
    started: dict[str, tuple[Path, Future[Outcome]]],
    request: pytest.FixtureRequest,
) -> None:
    cwd, future = started[request.node.nodeid]
    outcome = future.result()
    if own:
        _assert_one_error(f"propagate {shlex.join(args)}", outcome, expect)
    else:
        rc, out, err = outcome
        shown = f"propagate {shlex.join(args)}\n--- stdout ---\n{out}--- stderr ---\n{err}"
        assert rc == 2, shown  # argparse's own exit status for usage errors
        assert "Traceback" not in out + err, shown
        for text in expect:
            assert text in out + err, f"expected {text!r}\n{shown}"
    assert not (cwd / "runs").exists()


def test_console_script(tmp_path: Path) -> None:
    """The installed ``propagate`` script reports a bad file the same way."""
    script = shutil.which("propagate")
    if script is None:
        pytest.skip("the propagate console script is not on PATH")
    proc = subprocess.run(
        [script, "validate", str(BAD / "unknown_key_typo.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    _assert_one_error(
        "propagate validate",
        (proc.returncode, proc.stdout, proc.stderr),
        ["unknown key 'budjet'", "did you mean 'budget'?"],
    )
