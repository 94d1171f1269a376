"""The command line on good input: validate, version, the shipped search files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from propagator import _entry
from propagator.cli import main

JOBS = Path(__file__).parent.parent / "jobs"


def test_validate_prints_the_effective_configuration_and_layout(capsys):
    assert main(["validate", str(JOBS / "quickstart.yaml"), "-n", "8"]) == 0
    out = capsys.readouterr().out
    effective = yaml.safe_load(out)
    assert effective["budget"] == {"evaluations": 1200, "time": 180.0}
    assert effective["space"]["epochs"] == {"type": "constant", "value": 150}  # fixed values
    assert effective["strategy"][0]["population"] is None  # default: max(16, 2 x workers)
    assert "8 ranks -> 8 workers of 1 rank -> 2 islands" in out
    assert "island 1: workers 4..7 (ranks 4..7)" in out


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
