"""``propagate dashboard``: a run as a read-only Optuna storage that follows a running search,
served by optuna-dashboard and looked at with a real headless Chromium; and the bulk copy of
``propagate optuna`` into a database (issue 21)."""

from __future__ import annotations

import dataclasses
import io
import json
import socket
import sys
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from conftest import bench_modules

import propagator as pg
from propagator.cli import main
from propagator.engine.records import Status
from propagator.results import run_storage
from propagator.results.optuna_export import Ticker, to_optuna
from propagator.results.report import open_run
from propagator.results.result import Result
from propagator.results.run_storage import ReadOnlyError, RunStorage, RunTrials

optuna = pytest.importorskip("optuna")
TrialState = optuna.trial.TrialState
SPACE = pg.Space(
    {
        "lr": pg.Float(1e-4, 1.0, log=True),
        "layers": pg.Int(1, 6),
        "act": pg.Categorical(["relu", "tanh"]),
        "batch": 32,
    }
)
FIELDS = (
    "number",
    "state",
    "values",
    "params",
    "distributions",
    "user_attrs",
    "intermediate_values",
    "datetime_start",
    "datetime_complete",
)


def curve(params: dict, trial: pg.Trial) -> dict:
    """Three steps of a learning curve; pruned or failed in parts of the space."""
    loss = (params["lr"] - 0.01) ** 2 + 0.1 * params["layers"]
    for step in range(3):
        trial.report(step, loss * (3 - step))
        if step == 1 and params["layers"] == 6:
            raise pg.Pruned
    if params["lr"] > 0.5:
        raise RuntimeError("diverged")
    return {"loss": loss, "acc": 1 / (1 + loss)}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of 40 evaluations, some pruned and some failed."""
    run_dir = tmp_path_factory.mktemp("dashboard") / "finished"
    result = pg.search(
        curve, SPACE, metric="loss", budget=40, seed=4, strategy="random", run_dir=run_dir
    )
    assert {r.status for r in result.records} == {"ok", "pruned", "failed"}
    return run_dir


def _same(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert {f: getattr(a, f) for f in FIELDS} == {f: getattr(b, f) for f in FIELDS}


def _files(run_dir: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.rglob("*")}


# --- the storage ---------------------------------------------------------------------------------
def test_the_dashboard_study_is_the_exported_study(finished, tmp_path):
    """One conversion: the storage's trials are those `propagate optuna` writes."""
    run = open_run(finished)
    study = optuna.load_study(study_name="finished", storage=RunStorage(finished))
    exported = to_optuna(run.result, str(tmp_path / "s.log"), "s", False, run.origin)
    _same(study.trials, exported.trials)
    assert study.metric_names == exported.metric_names == ["loss"]
    assert study.user_attrs == {"propagate_seed": 4}
    assert study.best_trial.user_attrs["id"] == run.result.best.id
    states = [t.state for t in study.trials]
    records = run.result.records
    assert states.count(TrialState.PRUNED) == sum(r.pruned for r in records) > 0
    assert states.count(TrialState.FAIL) == run.result.n_failed > 0
    first = study.trials[0]
    assert first.user_attrs["island"] == 0 and first.user_attrs["constants"] == {"batch": 32}
    assert first.intermediate_values == dict(records[0].intermediate)


def test_the_dashboard_writes_nothing_and_refuses_every_change(finished):
    dashboard = pytest.importorskip("optuna_dashboard")
    before = _files(finished)
    storage = RunStorage(finished, refresh=0.0)
    study = optuna.load_study(study_name="finished", storage=storage)
    with pytest.raises(ReadOnlyError):
        study.set_user_attr("note", 1)
    with pytest.raises(ReadOnlyError):
        optuna.create_study(storage=storage, study_name="other")
    app = dashboard.wsgi(storage)
    status, body = _call(app, "GET", "/api/studies/0")
    assert status == "200 OK"
    trials = json.loads(body)["trials"]
    assert len(trials) == 40
    assert {a["key"] for a in trials[0]["user_attrs"]} >= {"island", "worker", "generation"}
    assert _call(app, "DELETE", "/api/studies/0")[0].startswith("500")
    note = json.dumps({"version": 1, "body": "hi"})
    assert _call(app, "PUT", "/api/studies/0/note", note)[0].startswith("500")
    assert len(RunStorage(finished).get_all_trials(0)) == 40
    assert _files(finished) == before


def _call(app, method: str, path: str, body: str = "") -> tuple[str, bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body.encode()),
        "wsgi.errors": io.StringIO(),
    }
    setup_testing_defaults(environ)
    statuses = []
    out = b"".join(app(environ, lambda s, h, e=None: statuses.append(s)))
    return statuses[0], out


def test_a_multi_objective_run_shows_its_front(tmp_path):
    def zdt(params):
        f1 = params["lr"]
        return {"f1": f1, "f2": 1 - f1**0.5 + params["layers"] / 10}

    run_dir = tmp_path / "front"
    result = pg.search(
        zdt, SPACE, metric=["f1", "f2"], budget=30, seed=1, strategy="random", run_dir=run_dir
    )
    study = optuna.load_study(study_name="front", storage=RunStorage(run_dir))
    assert study.metric_names == ["f1", "f2"]
    assert len(study.directions) == 2
    assert {t.user_attrs["id"] for t in study.best_trials} == {r.id for r in result.pareto_front}


# --- following a run -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with paused trainings (ASHA with promotion), some of them resumed."""
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    try:
        from paused_objective import objective
    finally:
        sys.path.pop(0)
    run_dir = tmp_path_factory.mktemp("paused") / "run"
    pg.search(
        objective,
        pg.Space({"x": pg.Float(0.0, 1.0), "y": pg.Float(0.0, 1.0)}),
        metric="val_loss",
        budget=20,
        early_stopping={"name": "asha", "promotion": True},
        seed=5,
        strategy="random",
        run_dir=run_dir,
    )
    return run_dir


def _earlier(run, rows) -> object:
    """``run`` as it read when it held ``rows``."""
    result = Result.from_bytes(run.result.to_bytes())
    result.rows = rows
    return dataclasses.replace(run, result=result)


def test_new_records_are_converted_alone_and_a_resumed_training_takes_its_pause_place(
    paused, monkeypatch
):
    run = open_run(paused)
    rows = run.result.rows
    promoted = next(i for i, r in enumerate(run.result.records) if r.promoted and r.ok)
    earlier = rows[:-3].copy()  # the last 3 records have not landed yet, and one training...
    earlier["status"][promoted] = Status.PAUSED  # ...is paused, not yet resumed
    earlier["end"][promoted] -= 1.0
    live = [True]
    monkeypatch.setattr(run_storage, "running", lambda _run: live[0])
    trials = RunTrials(_earlier(run, earlier))
    first = list(trials.trials)
    assert first[promoted].state == TrialState.WAITING  # it may be resumed: not finished
    assert trials.update(run) == 3 + 1
    assert len(trials.trials) == len(rows)
    assert trials.trials[promoted].state == TrialState.COMPLETE
    assert trials.trials[promoted].user_attrs["id"] == int(rows["id"][promoted])
    unchanged = [i for i in range(len(first)) if i != promoted]
    assert all(trials.trials[i] is first[i] for i in unchanged)  # converted once
    assert trials.update(run) == 0
    live[0] = False  # the search ended: a paused training stays stopped early
    n_paused = int((rows["status"] == Status.PAUSED).sum())
    assert n_paused > 0
    assert trials.update(run) == n_paused
    states = [t.state for t in trials.trials]
    assert TrialState.WAITING not in states and states.count(TrialState.PRUNED) == n_paused


def test_the_run_is_read_again_only_when_trials_are_asked_for_after_the_refresh(
    finished, monkeypatch
):
    reads = []
    monkeypatch.setattr(run_storage, "open_run", lambda path: reads.append(path) or open_run(path))
    now = [0.0]
    storage = RunStorage(finished, refresh=2.0, clock=lambda: now[0])
    storage.get_all_trials(0)
    now[0] = 1.9
    storage.get_all_trials(0)
    assert len(reads) == 1  # the first view only
    now[0] = 2.0
    storage.get_study_directions(0)
    assert len(reads) == 1
    assert len(storage.get_all_trials(0, states=(TrialState.FAIL,))) > 0
    assert len(reads) == 2


# --- the command ---------------------------------------------------------------------------------
def test_without_optuna_dashboard_the_command_says_how_to_install_it(finished, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails
    assert main(["dashboard", str(finished)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("propagate: error: propagate dashboard needs optuna-dashboard")
    assert "pip install 'propagate[dashboard]'" in err and err.count("\n") == 1


def test_a_taken_port_or_no_run_is_a_usage_error(finished, tmp_path, capsys):
    pytest.importorskip("optuna_dashboard")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", str(finished), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["dashboard", str(tmp_path / "nothing")]) == 2
    assert "no run directory" in capsys.readouterr().err


# --- the export's bulk copy ----------------------------------------------------------------------
def test_the_bulk_database_copy_holds_what_optunas_own_copy_holds(finished, tmp_path):
    run = open_run(finished)
    url = f"sqlite:///{tmp_path / 's.db'}"
    progress = io.StringIO()
    to_optuna(run.result, url, "s", False, run.origin, progress=progress)
    ours = optuna.load_study(study_name="s", storage=url)
    # into a journal file the trials go through Optuna's own Study.add_trials
    journal = to_optuna(run.result, str(tmp_path / "s.log"), "s", False, run.origin)
    _same(ours.trials, journal.trials)
    assert ours.metric_names == ["loss"] and ours.user_attrs == {"propagate_seed": 4}
    assert progress.getvalue() == ""  # under a second: nothing to say
    ours.optimize(lambda t: t.suggest_float("lr", 1e-4, 1.0, log=True), n_trials=1)
    assert ours.trials[-1].number == 40  # Optuna carries on numbering after the copy


def test_a_long_copy_says_how_far_it_is():
    out = io.StringIO()
    ticker = Ticker(2674, out, every=0.0)
    ticker.update(500)
    ticker.update(1000)
    ticker.close()
    assert out.getvalue().splitlines() == [
        f"copied {n} of 2,674 evaluations into the study" for n in ("500", "1,000", "2,674")
    ]
    quiet = io.StringIO()
    ticker = Ticker(10, quiet, every=3600.0)
    ticker.update(5)
    ticker.close()
    assert quiet.getvalue() == ""


# --- in a browser --------------------------------------------------------------------------------
@pytest.mark.mpi
def test_chromium_shows_the_trials_of_a_running_search_grow(tmp_path):
    """A real headless Chromium loads the dashboard of a search running under mpiexec twice:
    the study is there, and the second time it shows more trials."""
    pytest.importorskip("optuna_dashboard")
    with bench_modules("dashboard_screenshot") as modules:
        shots = modules["dashboard_screenshot"]
        chromium = shots.find_chromium()
        if chromium is None:
            pytest.skip("no chromium on PATH (apt-get install chromium)")
        search, run_dir = shots.start_search(tmp_path, evaluations=400, delay=0.1)
        try:
            shots.wait_for_records(run_dir, 5, timeout=120)
            dashboard, url = shots.start_dashboard(run_dir)
            try:
                _watch_it_grow(shots, chromium, url, search)
            finally:
                assert shots.stop(dashboard) == 0  # Ctrl-C ends it
            err = dashboard.stderr.read()
            assert "Traceback" not in err, err
        finally:
            shots.stop(search)


def _watch_it_grow(shots, chromium: str, url: str, search) -> None:
    text = shots.trials_page(chromium, url)
    assert "live-search (id=0)" in text  # the study, named after the run directory
    first = shots.trials_shown(text)
    assert first is not None and 0 < first < 400, text[:500]
    later, deadline = None, time.monotonic() + 120
    while (later or 0) <= first and search.poll() is None and time.monotonic() < deadline:
        later = shots.trials_shown(shots.trials_page(chromium, url))
    assert (later or 0) > first, "the dashboard showed no new trial while the search ran"
