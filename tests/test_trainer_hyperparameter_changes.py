"""A paused training resumed with other params (a PBT segment) goes on with the new
hyperparameters on its saved state: the optimizer's (its buffers kept), the learning-rate
schedule's (at its saved step, from the new base rate) and a method's own (EASGD's α, DASO's
B and S, MAC's µ0), in data-parallel and layer-parallel (DDG) trainers alike; a structural
param that differs is refused by name, as are an OIALR delay and AB phases that would put the
pause on the other side of a switch of the layers' form. Every check is exact but the cosine
schedule's, whose expected rate is computed with another formula.

In-process on one rank, on the smallest runs of ``tests/test_trainer_checkpoints.py``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from mpi4py import MPI

import propagator as pg
from propagator import ConfigError
from propagator.config import load_objective
from propagator.store.checkpoints import Checkpoints
from trainers import daso
from trainers.checkpointing import TrainerState

sys.path.insert(0, str(Path(__file__).parent / "mpi"))
from checkpoint_trainers import PauseAfter

SEED, ID = 11, 3
# digits, a tiny MLP: 11 steps an epoch (batch 128); no batch norm or dropout, so that
# unchanged weights give the same validation loss
BASE = {"dataset": "digits", "depth": 2, "width": 16, "batch_size": 128}
STEPS = 11
# paused after epoch 1 of 2 (step 11 of 22): the step schedule's factor there is gamma, past
# the warm-up's 4 steps and a third of the 18 after it
PAUSED = {
    **BASE,
    "epochs": 2,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-3,
    "schedule": "step",
    "gamma": 0.5,
    "warmup_steps": 4,
}


class Restored(Exception):
    """Raised by :func:`restored` to end a run right after its state was loaded."""


class Seen(list):
    """What :func:`restored` saw; ``stop`` ends the run right after the load."""

    stop = False


def run(
    name: str,
    params: dict[str, Any],
    store: Checkpoints,
    pause: int | None = None,
    resumed: pg.Trial | None = None,
) -> tuple[pg.Trial, dict]:
    """Trainer ``name`` on this process, paused after epoch ``pause`` (if given), resuming
    the training ``resumed`` paused (if given)."""
    stopping = PauseAfter(pause) if pause else None
    prior = resumed.reports if resumed is not None else None
    trial = pg.Trial(ID, MPI.COMM_SELF, 0, 0, SEED, stopping, checkpoints=store, resumed=prior)
    return trial, load_objective(name)(params, trial)


@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory) -> tuple[Checkpoints, pg.Trial]:
    """The baseline with :data:`PAUSED`, paused after its first epoch (resumed by many tests:
    a resumed run leaves the checkpoint in place)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store = Checkpoints(tmp_path_factory.mktemp("paused"))
        trial, _ = run("baseline", PAUSED, store, pause=1)
    finally:
        torch.set_num_threads(threads)
    assert trial.paused and store.load(ID, 0)["epoch"] == 1
    return store, trial


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """What the data-parallel trainers' states held right after loading a checkpoint: the
    optimizer's groups, copies of its per-parameter states, the schedule's base rates and
    last rates, and the state itself."""
    seen = Seen()
    load = TrainerState.load_state_dict

    def spy(self: TrainerState, state: dict) -> None:
        load(self, state)
        optimizer = self.optimizer
        seen.append(
            {
                "groups": [
                    {k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups
                ],
                "states": [
                    {k: v.clone() for k, v in optimizer.state[p].items()}
                    for p in optimizer.param_groups[0]["params"]
                ],
                "base_lrs": list(self.schedule.base_lrs),
                "last_lr": list(self.schedule.get_last_lr()),
                "trainer": self,
            }
        )
        if seen.stop:
            raise Restored

    monkeypatch.setattr(TrainerState, "load_state_dict", spy)
    return seen


def _saved(store: Checkpoints) -> dict[str, Any]:
    return store.load(ID, 0)["trainer"]


def test_a_baseline_resumed_at_lr_0_without_momentum_or_decay_keeps_its_weights(
    paused, restored, one_thread
):
    store, trial = paused
    saved = _saved(store)
    frozen = {**PAUSED, "lr": 0.0, "momentum": 0.0, "weight_decay": 0.0}
    resumed, metrics = run("baseline", frozen, store, resumed=trial)
    (after,) = restored
    assert [g["lr"] for g in after["groups"]] == [0.0]
    assert [g["momentum"] for g in after["groups"]] == [0.0]
    assert [g["weight_decay"] for g in after["groups"]] == [0.0]
    # the momentum buffers are the saved ones (SGD without momentum leaves them alone)
    buffers = [s["momentum_buffer"] for s in saved["optimizer"]["state"].values()]
    assert len(buffers) == len(after["states"]) > 0
    for state, buffer in zip(after["states"], buffers, strict=True):
        assert torch.equal(state["momentum_buffer"], buffer)
    # a whole epoch of steps later the weights are still the saved ones, bit for bit
    model = after["trainer"].model
    assert after["trainer"].t == 2 * STEPS
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, saved["model"][name]), name
    (_, before), (_, last) = resumed.reports
    assert last == before == metrics["val_loss"]


def test_resumed_with_the_same_params_it_gets_back_the_saved_rates_and_buffers(
    paused, restored, one_thread
):
    store, trial = paused
    saved = _saved(store)
    restored.stop = True
    with pytest.raises(Restored):
        run("baseline", PAUSED, store, resumed=trial)
    (after,) = restored
    assert after["last_lr"] == saved["schedule"]["_last_lr"]
    assert after["base_lrs"] == saved["schedule"]["base_lrs"] == [0.1]
    groups = [
        {k: v for k, v in g.items() if k != "params"} for g in saved["optimizer"]["param_groups"]
    ]
    assert after["groups"] == groups
    for state, kept in zip(after["states"], saved["optimizer"]["state"].values(), strict=True):
        assert state.keys() == kept.keys()
        assert all(torch.equal(state[k], kept[k]) for k in kept)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # step 11: past the 4 warm-up steps, 7 of the 18 after them: the second third
        ({"lr": 0.05}, 0.05 * 0.5),
        ({"lr": 0.05, "gamma": 0.25}, 0.05 * 0.25),
        # step 11 of a 20-step warm-up: its 12th rate
        ({"lr": 0.05, "warmup_steps": 20}, 0.05 * (12 / 20)),
    ],
    ids=["step", "step-gamma", "warm-up"],
)
def test_the_resumed_schedule_goes_on_from_the_new_base_rate(
    paused, restored, one_thread, changes, expected
):
    store, trial = paused
    restored.stop = True
    with pytest.raises(Restored):
        run("baseline", {**PAUSED, **changes}, store, resumed=trial)
    (after,) = restored
    assert after["base_lrs"] == [changes["lr"]]
    assert [g["initial_lr"] for g in after["groups"]] == [changes["lr"]]
    assert [g["lr"] for g in after["groups"]] == [expected]
    assert after["last_lr"] == [expected]
    assert [g["momentum"] for g in after["groups"]] == [0.9]


def test_a_resumed_cosine_schedule_goes_on_at_its_step_from_the_new_base_rate(
    paused, restored, one_thread
):
    store, trial = paused
    restored.stop = True
    cosine = {**PAUSED, "schedule": "cosine", "lr": 0.2, "min_lr": 0.01, "warmup_steps": 0}
    with pytest.raises(Restored):
        run("baseline", cosine, store, resumed=trial)
    (after,) = restored
    # halfway through 22 steps: min_lr + (lr - min_lr) (1 + cos(π/2)) / 2
    expected = 0.01 + (0.2 - 0.01) * (1 + math.cos(math.pi / 2)) / 2
    assert after["groups"][0]["lr"] == pytest.approx(expected, rel=1e-14, abs=0)
    assert after["last_lr"] == [after["groups"][0]["lr"]]


@pytest.mark.parametrize(
    ("change", "name"),
    [({"width": 32}, "width"), ({"optimizer": "adam"}, "optimizer"), ({"epochs": 3}, "epochs")],
)
def test_a_structural_param_that_differs_is_refused_by_name(paused, one_thread, change, name):
    store, trial = paused
    with pytest.raises(ConfigError, match=rf"parameter '{name}': a paused training resumes"):
        run("baseline", {**PAUSED, **change}, store, resumed=trial)


def test_easgd_resumed_with_alpha_0_leaves_its_centre_where_it_paused(tmp_path, one_thread):
    params = {**BASE, "epochs": 3, "method": "easgd", "tau": 3}
    store = Checkpoints(tmp_path)
    trial, _ = run("easgd", params, store, pause=1)
    resumed, metrics = run("easgd", {**params, "alpha": 0.0}, store, resumed=trial)
    # the reports are the centre's validation loss: with α = 0 it no longer moves
    values = [value for _, value in resumed.reports]
    assert values == [values[0]] * 3
    assert metrics["val_loss"] == values[0]
    assert metrics["local_val_loss"] != values[0]  # while the rank's own model trained on


def test_daso_takes_a_new_sync_period_and_keeps_the_adapted_one_otherwise():
    given = {"global_sync_period": 4, "stale_steps": 2, "patience": 1, "stability_level": 0.5}
    adapted = daso.SyncSchedule(daso.settings(given, 2))
    adapted.epoch_end(1.0)
    adapted.epoch_end(1.0)  # a plateau: B halves, S drops by one
    adapted.tick()
    assert (adapted.period, adapted.stale) == (2, 1)
    state = adapted.state_dict()
    same = daso.SyncSchedule(daso.settings(given, 2))
    same.load_state_dict(state)
    assert (same.period, same.stale, same._since_sync, same._best) == (2, 1, 1, 1.0)
    changed = {**given, "global_sync_period": 6, "stale_steps": 3}
    new = daso.SyncSchedule(daso.settings(changed, 2))
    new.load_state_dict(state)
    assert (new.period, new.stale, new._since_sync, new._best) == (6, 3, 1, 1.0)


def test_mac_resumed_with_another_mu0_keeps_the_growth_of_mu(tmp_path, one_thread):
    # µ grows tenfold after every epoch but the first (a loss that fell by less than 99 %)
    params = {
        **BASE,
        "epochs": 3,
        "w_iters": 1,
        "w_batch": 256,
        "mu": 1.0,
        "mu_growth": 10.0,
        "mu_tol": 0.99,
    }
    store = Checkpoints(tmp_path)
    trial, paused = run("mac", params, store, pause=2)
    assert paused["mu"] == 10.0  # after epoch 2: grown once
    _, metrics = run("mac", {**params, "mu": 2.0}, store, resumed=trial)
    assert metrics["mu"] == 2.0 * 10.0 * 10.0  # the new µ0 with both growths


def test_oialr_refuses_a_delay_on_the_other_side_of_its_pause(tmp_path, one_thread):
    params = {**BASE, "epochs": 2, "delay": 5, "frequency": 3}
    store = Checkpoints(tmp_path)
    trial, _ = run("oialr", params, store, pause=1)  # switched to low rank at step 5
    with pytest.raises(ConfigError, match=r"parameter 'delay': .* must be below 11, got 15"):
        run("oialr", {**params, "delay": 15}, store, resumed=trial)


def test_ab_refuses_phases_that_put_its_pause_in_another_phase(tmp_path, one_thread):
    # 22 steps: warm-up 0-1, independent 2-8, rebound 9-10, independent 11-17: paused
    # full-rank before step 11; without the warm-up, step 11 is the third of a phase
    params = {**BASE, "epochs": 2, "ab_warmup": 0.1, "ab_steps": 0.3, "ab_rebound": 0.25}
    store = Checkpoints(tmp_path)
    trial, _ = run("ab", params, store, pause=1)
    with pytest.raises(ConfigError, match="'ab_warmup', 'ab_steps' and 'ab_rebound'"):
        run("ab", {**params, "ab_warmup": 0.0}, store, resumed=trial)


def test_a_layer_parallel_training_resumed_at_lr_0_keeps_its_weights(tmp_path, one_thread):
    # two modules of a pipeline on one rank, whose optimizers and schedules a rank's state holds
    params = {**BASE, "epochs": 3, "modules": 2, "momentum": 0.9, "schedule": "cosine"}
    store = Checkpoints(tmp_path)
    trial, _ = run("ddg", params, store, pause=1)
    frozen = {**params, "lr": 0.0, "momentum": 0.0}
    resumed, metrics = run("ddg", frozen, store, resumed=trial)
    values = [value for _, value in resumed.reports]
    assert values == [values[0]] * 3 == [metrics["val_loss"]] * 3
