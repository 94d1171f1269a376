"""Trainer params declared once: the check before any work (typos with "did you mean", types,
ranges, choices, metrics), the ready spaces and jobs against their trainers, the declarations
against every value in and out of their ranges, the README's generated tables, and the GPU
check script (on the CPU here; on CUDA where there is one)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import propagator as pg
from propagator.config import load, load_objective
from propagator.engine.evaluation import check_objective
from trainers import params_doc
from trainers.params import Param, Table

ROOT = Path(__file__).resolve().parent.parent
NAMES = params_doc.TRAINERS
TRAINERS = {name: load_objective(name) for name in NAMES}
GPU_CHECK = ROOT / "jobs" / "bench" / "gpu_check.py"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(text)
    return path


def test_a_typo_in_fixed_is_refused_with_the_closest_name(tmp_path):
    path = _file(
        tmp_path,
        "objective: baseline\nspace: {lr: {type: float, low: 0.01, high: 0.1}}\n"
        "fixed: {dataset: digits, epoch: 1}\nmetric: val_loss\nbudget: {evaluations: 2}\n",
    )
    with pytest.raises(pg.ConfigError, match=r"fixed\.epoch: .*did you mean 'epochs'") as raised:
        load(path).objective()
    assert str(raised.value).startswith(str(path))
    space = pg.Space({"lr": pg.Float(0.01, 0.1), "epoch": 1})
    with pytest.raises(pg.ConfigError, match="baseline has no such parameter; did you mean"):
        pg.search(TRAINERS["baseline"], space, metric="val_loss", budget=2)


def test_a_typo_in_the_metric_is_refused_with_the_closest_name():
    space = pg.Space({"lr": pg.Float(0.01, 0.1)})
    with pytest.raises(pg.ConfigError, match="did you mean 'val_loss'"):
        check_objective(TRAINERS["daso"], space, "val_los")
    with pytest.raises(pg.ConfigError, match="did you mean 'bytes_method'"):
        check_objective(TRAINERS["mac"], pg.Space({"w_lr": pg.Float(0.01, 0.1)}), "byte_method")


@pytest.mark.parametrize(
    ("name", "space", "message"),
    [
        ("easgd", {"shuffle": False}, "easgd has no such parameter"),  # it samples with its own
        ("mac", {"lr": 0.1}, "mac has no such parameter"),  # the W-step has w_lr
        ("ddg", {"patch": 2}, "ddg has no such parameter"),  # no vit for layer-parallel ones
        ("baseline", {"epochs": 2.5}, "'epochs': must be an integer >= 1, got 2.5"),
        ("baseline", {"shuffle": "yes"}, "'shuffle': must be true or false"),
        ("baseline", {"dataset": "data.csv"}, "or a file ending in .npz, .h5, .hdf5"),
        ("baseline", {"epochs": pg.Float(1, 5)}, "searched as a float range, but must be an"),
        ("baseline", {"optimizer": pg.Int(1, 3)}, "searched as a range of numbers"),
        ("oialr", {"sigma_cutoff": pg.Float(0.0, 1.0)}, r"\[0, 1\] leaves the allowed range"),
        ("daso", {"stale_steps": pg.Categorical([0, -1])}, "'stale_steps': must be an integer"),
        ("auxnet", {"model": "mlp"}, r"'model': must be one of \['resnet'\]"),
        ("mac", {"w_lr3": 0.0}, "'w_lr3': must be a number > 0"),
        ("mac", {"w_lrx": 0.1}, "did you mean 'w_lr'"),
        ("mac", {"split": [3, 1]}, "'split': must be an integer >= 1 or an increasing list"),
    ],
)
def test_the_check_names_the_bad_parameter(name, space, message):
    with pytest.raises(pg.ConfigError, match=message):
        TRAINERS[name].check_space(pg.Space(space))


def test_params_with_a_condition_may_be_absent_and_indexed_ones_are_taken():
    space = pg.Space(
        {
            "depth": pg.Int(1, 3),
            "width1": pg.Int(8, 64),
            "width3": pg.Int(8, 64, when="depth >= 3"),
            "split": pg.Int(1, 2),
        }
    )
    TRAINERS["mac"].check_space(space)


# the ready spaces, by module and name, with the trainers they are for
READY = {
    "architectures": {"MLP": ["baseline"], "RESNET": ["baseline"], "VIT": ["baseline"]},
    "easgd": {"EASGD": ["easgd"]},
    "daso": {"DASO": ["daso"]},
    "oialr": {"OIALR": ["oialr"]},
    "ab": {"AB": ["ab"]},
    "mac": {"MAC": ["mac"], "MAC_2_TERM": ["mac"]},
    "auxnet": {"AUXNET": ["auxnet"]},
    "ddg": {"DDG": ["ddg"], "FR": ["fr"]},
}


def _spaces(module: str) -> dict[str, pg.Space]:
    found = vars(importlib.import_module(f"search_spaces.{module}"))
    return {name: value for name, value in found.items() if isinstance(value, pg.Space)}


def test_every_ready_space_is_listed():
    modules = sorted(p.stem for p in (ROOT / "search_spaces").glob("*.py") if p.stem[0] != "_")
    assert sorted(READY) == modules
    for module, spaces in READY.items():
        assert sorted(_spaces(module)) == sorted(spaces), module


@pytest.mark.parametrize(
    ("module", "space", "trainer"),
    [(m, s, t) for m, spaces in READY.items() for s, ts in spaces.items() for t in ts],
)
def test_ready_spaces_pass_their_trainers_check(module, space, trainer):
    TRAINERS[trainer].check_space(_spaces(module)[space])


def test_table_4_4_settings_pass_the_mac_check():
    from search_spaces.mac import TABLE_4_4

    for row in TABLE_4_4.values():
        TRAINERS["mac"].check_space(pg.Space(row))


JOBS = sorted((ROOT / "jobs").glob("*.yaml"))


@pytest.mark.parametrize("path", JOBS, ids=[p.stem for p in JOBS])
def test_every_job_passes_its_trainers_check(path):
    search = load(path)
    objective = search.objective()  # raises ConfigError naming the bad param
    if search.objective_spec in TRAINERS:
        assert objective is TRAINERS[search.objective_spec]


# --- the declarations against values in and out of their ranges ------------------------------

NUMERIC = [
    (name, p)
    for name in NAMES
    for p in TRAINERS[name].table.params
    if p.kind in ("float", "int") and (p.low is not None or p.high is not None)
]
BIG = 1e9


def _inside(p: Param) -> st.SearchStrategy:
    low = p.low if p.low is not None else -BIG
    high = p.high if p.high is not None else BIG
    if p.kind == "int":
        return st.integers(math.floor(low) + p.low_open, math.ceil(high) - p.high_open)
    return st.floats(low, high, exclude_min=p.low_open, exclude_max=p.high_open)


def _outside(p: Param) -> st.SearchStrategy:
    sides = []
    if p.low is not None:
        below = st.floats(-BIG, p.low, exclude_max=not p.low_open)
        sides.append(below.map(math.floor) if p.kind == "int" else below)
    if p.high is not None:
        above = st.floats(p.high, BIG, exclude_min=not p.high_open)
        sides.append(above.map(math.ceil) if p.kind == "int" else above)
    return st.one_of(sides)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_check_takes_every_value_inside_a_declared_range(data):
    name, p = data.draw(st.sampled_from(NUMERIC))
    value = data.draw(_inside(p))
    TRAINERS[name].check_space(pg.Space({p.name: value}))
    low, high = sorted(data.draw(st.tuples(_inside(p), _inside(p))))
    if low < high:
        kind = pg.Float if p.kind == "float" else pg.Int
        TRAINERS[name].check_space(pg.Space({p.name: kind(low, high)}))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_check_refuses_every_value_outside_a_declared_range(data):
    name, p = data.draw(st.sampled_from(NUMERIC))
    value = data.draw(_outside(p))
    with pytest.raises(pg.ConfigError, match=f"parameter '{p.name}': must be"):
        TRAINERS[name].check_space(pg.Space({p.name: value}))
    inside = data.draw(_inside(p))
    low, high = sorted([value, inside])
    if low < high and (p.kind == "float" or float(inside).is_integer()):
        kind = pg.Float if p.kind == "float" else pg.Int
        with pytest.raises(pg.ConfigError, match="leaves the allowed range"):
            TRAINERS[name].check_space(pg.Space({p.name: kind(low, high)}))


CHOICES = [(n, p) for n in NAMES for p in TRAINERS[n].table.params if p.kind == "choice"]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_check_takes_exactly_the_declared_choices(data):
    name, p = data.draw(st.sampled_from(CHOICES))
    TRAINERS[name].check_space(pg.Space({p.name: pg.Categorical(list(p.choices))}))
    other = data.draw(st.text(min_size=1).filter(lambda s: s not in p.choices))
    if not (p.suffixes and other.endswith(p.suffixes)):
        with pytest.raises(pg.ConfigError, match=f"'{p.name}': must be one of"):
            TRAINERS[name].check_space(pg.Space({p.name: other}))


@pytest.mark.parametrize("name", NAMES)
def test_the_defaults_pass_the_check_and_every_part_is_declared_once(name):
    table = TRAINERS[name].table
    assert len(set(table.names)) == len(table.names)
    TRAINERS[name].check_space(
        pg.Space({p.name: p.default for p in table.params if p.default is not None})
    )


def test_reading_fills_defaults_checks_values_and_takes_indexed_names():
    table = Table("t", (Param("w", "float", 1.0, "w", low=0, low_open=True, indexed=True),))
    values = table.read({"w2": 3, "other": "left alone"})
    assert dict(values) == {"w": 1.0, "w2": 3.0} and values.indexed("w", 2) == 3.0
    assert values.indexed("w", 1) == 1.0
    with pytest.raises(pg.ConfigError, match="parameter 'w2': must be a number > 0, got 0"):
        table.read({"w2": 0})
    with pytest.raises(KeyError):
        values["other"]  # undeclared: a typo in the code


def test_trainers_import_and_check_without_mpi4py():
    """The run command checks a search before MPI starts: the trainers must import without
    mpi4py (importing it initialises MPI)."""
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import propagator as pg\n"
        "from propagator.config import load_objective\n"
        f"for name in {list(NAMES)!r}:\n"
        "    load_objective(name).check_space(pg.Space({'epochs': 1}))\n"
        "try:\n"
        "    load_objective('baseline').check_space(pg.Space({'epoch': 1}))\n"
        "except pg.ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "did you mean 'epochs'" in out.stdout


def test_the_readme_tables_are_the_generated_ones():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert params_doc.BEGIN in readme
    assert params_doc.replaced(readme, params_doc.render()) == readme
    for name in NAMES:
        assert f"#### `{name}`" in readme


# --- the GPU check script ----------------------------------------------------------------------


def _gpu_check_module(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # its dataclass looks itself up
    spec.loader.exec_module(module)
    return module


def test_gpu_check_reports_a_mismatch_a_failure_and_a_skip(monkeypatch):
    gc = _gpu_check_module(monkeypatch)
    ref = gc.Run("baseline", 2, "cpu", "mpi", 1.0, 100.0, 0.1, [])
    same = gc.Run("baseline", 2, "cuda", "mpi", 1.0005, 100.0, 0.01, [])
    loss = gc.Run("baseline", 2, "cuda", "torch", 1.01, 100.0, 0.01, [])
    size = gc.Run("mac", 2, "cuda", "mpi", 1.0, 96.0, 0.01, ["epoch_time"])
    mac_ref = gc.Run("mac", 2, "cpu", "mpi", 1.0, 100.0, 0.1, [])
    skip = gc.Run("mac", 2, "cuda", "torch", error="NCCL needs a GPU per rank", skipped=True)
    failed = gc.Run("ab", 2, "cpu", "mpi", error="ConfigError: boom")
    after = gc.Run("ab", 2, "cuda", "mpi", 1.0, 1.0, 0.1, [])
    rows = gc.compare([ref, same, loss, mac_ref, size, skip, failed, after], rtol=1e-3)
    verdicts = [v for _, _, v in rows]
    assert verdicts[0] == "ok"
    assert verdicts[1].startswith("MISMATCH: val_loss 1.01 vs 1")
    assert "bytes 96 vs 100" in verdicts[2] and "['epoch_time']" in verdicts[2]
    assert verdicts[3].startswith("skipped: NCCL")
    assert verdicts[4] == "FAILED: ConfigError: boom"


def _run_gpu_check(tmp_path: Path, *args: str, timeout: float) -> list[dict]:
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(GPU_CHECK), *args, "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "device runs failed or differ" in proc.stdout
    return json.loads(out.read_text())


@pytest.mark.mpi
def test_gpu_check_on_the_cpu_agrees_for_every_trainer_and_backend(tmp_path):
    rows = _run_gpu_check(tmp_path, "--device", "cpu", "--ranks", "2", timeout=600)
    assert {(r["trainer"], r["backend"]) for r in rows} == {
        (n, b) for n in NAMES for b in ("mpi", "torch")
    }
    assert all(r["verdict"] == "ok" for r in rows), rows
    assert all(r["bytes_sent"] > 0 and r["missing"] == [] for r in rows)


@pytest.mark.mpi
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_check_on_cuda_agrees_with_the_cpu(tmp_path):
    ranks = [str(n) for n in (1, 2, 4) if n <= max(2, torch.cuda.device_count())]
    rows = _run_gpu_check(tmp_path, "--device", "cuda", "--ranks", *ranks, timeout=1200)
    assert all(r["verdict"] == "ok" or r["verdict"].startswith("skipped") for r in rows), rows
    assert any(r["verdict"] == "ok" and r["backend"] == "mpi" for r in rows)
