"""roadseg_ros.training.state: resume.pt keeps its format, and RunState restores it whole.

A run started before the training package existed is resumed with it, so a resume.pt
written the old way (the dictionary below, as ``train._save_all`` wrote it) must load into
a RunState exactly: weights, optimiser, scheduler, scaler, counters, history and RNGs.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from roadseg_ros.config import ConfigError
from roadseg_ros.training.errors import TrainingConfigError
from roadseg_ros.training.schedule import build_scheduler
from roadseg_ros.training.state import RESUME_KEYS, RunState, resolve_resume_path, rng_state


def _run(arch: str = "tiny", num_classes: int = 3, seed: int = 0) -> RunState:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, num_classes, 1), torch.nn.BatchNorm2d(num_classes))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    return RunState(arch=arch, num_classes=num_classes, planned_epochs=5, model=model, optimizer=opt,
                    scheduler=build_scheduler(opt, 50, "poly", 2),
                    scaler=torch.amp.GradScaler("cpu", enabled=False))


def _train_a_little(run: RunState, steps: int = 3) -> None:
    for _ in range(steps):
        loss = run.model(torch.randn(2, 3, 4, 4)).square().mean()
        run.optimizer.zero_grad()
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()


def test_resume_file_keys_are_the_historical_ones() -> None:
    assert RESUME_KEYS == ("arch", "num_classes", "model", "optimizer", "scheduler", "scaler", "epoch",
                           "global_step", "best_miou", "best_epoch", "bad_evals", "history", "rng",
                           "planned_epochs")
    assert tuple(_run().state_dict()) == RESUME_KEYS


def test_a_resume_file_in_the_old_format_restores_everything(tmp_path) -> None:
    old = _run()
    _train_a_little(old)
    history = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4}]
    # Exactly what roadseg_ros/train.py's _save_all wrote before the training package existed.
    legacy = {"arch": "tiny", "num_classes": 3, "model": old.model.state_dict(),
              "optimizer": old.optimizer.state_dict(), "scheduler": old.scheduler.state_dict(),
              "scaler": old.scaler.state_dict(), "epoch": 2, "global_step": 3, "best_miou": 0.25,
              "best_epoch": 1, "bad_evals": 1, "history": history, "rng": rng_state(), "planned_epochs": 7}
    torch.save(legacy, tmp_path / "resume.pt")
    expected_draws = (torch.rand(3), np.random.rand(2), random.random())

    new = _run(seed=1)                       # different initial weights, fresh optimiser
    assert new.restore(resolve_resume_path(tmp_path)) == 7
    assert (torch.rand(3).tolist(), np.random.rand(2).tolist(), random.random()) == \
        (expected_draws[0].tolist(), expected_draws[1].tolist(), expected_draws[2])
    for key, value in old.model.state_dict().items():
        assert torch.equal(value, new.model.state_dict()[key]), key
    assert new.optimizer.state_dict()["state"][0]["step"] == old.optimizer.state_dict()["state"][0]["step"]
    assert new.scheduler.last_epoch == old.scheduler.last_epoch == 3
    assert (new.epoch, new.global_step, new.best_miou, new.best_epoch, new.bad_evals) == (2, 3, 0.25, 1, 1)
    assert new.history == history
    # Saved again, it is the same format.
    new.save(tmp_path / "again.pt")
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert tuple(again) == RESUME_KEYS and again["planned_epochs"] == 5 and again["history"] == history


def test_restore_refuses_another_run(tmp_path) -> None:
    _run().save(tmp_path / "resume.pt")
    other = "saved run is tiny with 3 classes, this run is tiny with 4"
    with pytest.raises(TrainingConfigError, match=other):
        _run(num_classes=4).restore(tmp_path / "resume.pt")
    with pytest.raises(ConfigError, match="no resume state at .*nowhere"):   # exit status 2, as every tool's
        resolve_resume_path(tmp_path / "nowhere")


def test_save_replaces_the_file_whole(tmp_path) -> None:
    run = _run()
    run.save(tmp_path / "resume.pt")
    run.epoch = 4
    run.save(tmp_path / "resume.pt")
    assert torch.load(tmp_path / "resume.pt", weights_only=True)["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resume.pt"]     # no temporary left beside it


def test_record_validation_tracks_the_best_and_the_bad_evaluations() -> None:
    run = _run()
    assert run.best is None and run.best_miou == -math.inf
    run.epoch = 0
    assert run.record_validation(0.3) and (run.best, run.best_epoch, run.bad_evals) == (0.3, 1, 0)
    run.epoch = 1
    assert not run.record_validation(0.2) and run.bad_evals == 1
    run.epoch = 2
    assert not run.record_validation(None) and run.bad_evals == 2
    run.epoch = 3
    assert run.record_validation(0.5) and (run.best_epoch, run.bad_evals) == (4, 0)
