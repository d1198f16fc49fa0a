"""A run's state between sessions: ``OUTPUT/resume.pt``, saved and restored whole by :class:`RunState`.

``resume.pt`` holds the weights, the optimiser, scheduler and AMP scaler states, the
progress counters (epoch, global step, best validation mean IoU and its epoch, evaluations
without improvement), the per-epoch history and the global RNG states, so ``--resume``
continues with exactly the next epoch an uninterrupted run would have run. Its keys are
fixed (:data:`RESUME_KEYS`): files written before this module existed load unchanged.
Loaded with ``weights_only=True``: a resume file can never run code.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from roadseg_ros.files import atomic_write
from roadseg_ros.training.errors import TrainingConfigError
from roadseg_ros.training.model import unwrap

__all__ = ["RESUME_FILE", "RESUME_KEYS", "RunState", "rng_state", "set_rng_state", "seed_everything",
           "resolve_resume_path", "jsonable"]

RESUME_FILE = "resume.pt"
#: What resume.pt holds, in this order (the format of every roadseg-train so far).
RESUME_KEYS = ("arch", "num_classes", "model", "optimizer", "scheduler", "scaler", "epoch", "global_step",
               "best_miou", "best_epoch", "bad_evals", "history", "rng", "planned_epochs")


@dataclass
class RunState:
    """Everything that carries a run from one epoch (or session) to the next.

    The model, optimiser, scheduler and scaler are the live objects of the run; the
    training loop updates the counters after each epoch (:meth:`record_validation` counts an
    evaluation and keeps the best).
    :meth:`save` writes all of it as ``resume.pt``; :meth:`restore` reads such a file back
    into the live objects (before any DistributedDataParallel wrapping).
    """

    arch: str
    num_classes: int
    planned_epochs: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int = 0                      # epochs finished
    global_step: int = 0
    best_miou: float = -math.inf
    best_epoch: int = -1
    bad_evals: int = 0                  # evaluations since the last improvement (early stopping)
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        """The resume.pt dictionary (keys :data:`RESUME_KEYS`), RNG states taken now."""
        state = {"arch": self.arch, "num_classes": self.num_classes, "model": unwrap(self.model).state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict(), "epoch": self.epoch, "global_step": self.global_step,
                 "best_miou": self.best_miou, "best_epoch": self.best_epoch, "bad_evals": self.bad_evals,
                 "history": self.history, "rng": rng_state(), "planned_epochs": self.planned_epochs}
        assert tuple(state) == RESUME_KEYS
        return state

    def save(self, path: Path) -> None:
        """Write resume.pt atomically (an interrupted save never leaves a torn file)."""
        atomic_write(path, lambda p: torch.save(self.state_dict(), p))

    def restore(self, path: Path) -> int:
        """Load ``path`` into this run; returns the epochs the saved run planned.

        A file of another architecture or class count is a :class:`TrainingConfigError`:
        its weights and optimiser state cannot belong to this run.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["arch"] != self.arch or state["num_classes"] != self.num_classes:
            raise TrainingConfigError(f"--resume {path}: saved run is {state['arch']} with "
                                      f"{state['num_classes']} classes, this run is {self.arch} with "
                                      f"{self.num_classes}")
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.best_miou, self.best_epoch = state["best_miou"], state["best_epoch"]
        self.bad_evals = state["bad_evals"]
        self.history = list(state.get("history", []))
        set_rng_state(state["rng"])
        return int(state.get("planned_epochs", self.planned_epochs))

    def record_validation(self, mean_iou: float | None) -> bool:
        """Count one evaluation; True when it is the best so far (then best.pt is written)."""
        miou = mean_iou if mean_iou is not None else -math.inf
        if miou > self.best_miou:
            self.best_miou, self.best_epoch, self.bad_evals = miou, self.epoch + 1, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def best(self) -> float | None:
        """The best validation mean IoU so far (None before any)."""
        return self.best_miou if self.best_miou > -math.inf else None


def rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU/CUDA, numpy legacy, python), as weights_only-loadable types."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                      int(np_state[3]), float(np_state[4])],
            "python": jsonable(random.getstate())}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_resume_path(path: Path) -> Path:
    """Accept OUTPUT dir, its resume.pt, or last.pt/best.pt next to a resume.pt."""
    path = Path(path)
    candidate = path / RESUME_FILE if path.is_dir() else path
    if candidate.name != RESUME_FILE and candidate.suffix == ".pt":
        candidate = candidate.with_name(RESUME_FILE)
    if not candidate.is_file():
        raise TrainingConfigError(f"--resume {path}: no resume state at {candidate} "
                                  f"(training writes OUTPUT/{RESUME_FILE} after each epoch)")
    return candidate


def jsonable(value: Any) -> Any:
    """Plain JSON types only (checkpoint metadata and RNG states must load with weights_only=True)."""
    return json.loads(json.dumps(value, default=str))
