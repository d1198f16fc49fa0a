"""One process or many: ``torchrun`` (``env://``) joins a process group, otherwise nothing changes.

Each process trains on its shard of every epoch and validation shards are summed with
``all_reduce``; only rank 0 writes logs, metrics and checkpoints (:attr:`DistInfo.is_main`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from roadseg_ros.config import one_line
from roadseg_ros.training.errors import TrainingConfigError

__all__ = ["DistInfo", "training_device", "setup_distributed"]


@dataclass
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def training_device(name: str, local_rank: int = 0) -> torch.device:
    """The device of this process: ``auto`` picks CUDA when present; under torchrun ``cuda`` means
    this process's local GPU. Anything else is checked by :func:`roadseg_ros.inference.resolve_device`."""
    from roadseg_ros.inference import resolve_device

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        return resolve_device(name)
    except (RuntimeError, ValueError) as exc:
        raise TrainingConfigError(f"--device {name}: {one_line(exc)}") from None


def setup_distributed(device_arg: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    device = training_device(device_arg, info.local_rank)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, init_method="env://")
    return info, device
