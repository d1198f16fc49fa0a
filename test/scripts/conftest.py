"""Shared by the tests of scripts/: loading a script as a module, and a small real checkpoint."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from roadseg_ros.checkpoint import Checkpoint, save_checkpoint
from roadseg_ros.classes import CAMVID11
from roadseg_ros.models import build_model

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_checkpoint(path: Path, seed: int = 0, width: int = 8) -> Path:
    """A camvid11 ``tiny_segnet`` checkpoint, seeded; its BatchNorm statistics differ per seed too."""
    torch.manual_seed(seed)
    model = build_model("tiny_segnet", CAMVID11.num_classes, width=width)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.num_batches_tracked.fill_(100 * seed)
    ckpt = Checkpoint(arch="tiny_segnet", arch_kwargs={"width": width},
                      class_names=list(CAMVID11.class_names),
                      class_colors=list(CAMVID11.class_colors), drivable_classes=[3],
                      mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=(64, 48),
                      state_dict=model.state_dict(),
                      training={"datasets": {"train": ["camvid"]}})
    return save_checkpoint(ckpt, path)


@pytest.fixture(scope="session")
def load_script():
    """``load_script("bundle_weights")``: a script of scripts/ as a module."""
    return _load_script


@pytest.fixture(scope="session")
def tiny_checkpoint():
    """``tiny_checkpoint(path, seed=0, width=8)``: write a small real checkpoint, return its path."""
    return _tiny_checkpoint
