"""Shared test set-up.

Every test session gets its own DDS domain, confined to this host, so that parallel
runs (and other ROS graphs on the machine) never see each other's topics.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import numpy as np
import pytest

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: tiny nets on a shared 2-core box are slower with OpenMP contention.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the
    previous count is restored afterwards. torch is imported here, not at the top, so test
    modules that never use it do not pay for loading it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def save_tiny_checkpoint():
    """Factory: write a randomly initialised CAMVID11 ``tiny_segnet`` checkpoint to ``path``.

    Tests that only need *a* loadable checkpoint (nodes, demo, tools) use it instead of the
    bundled weights, so they stay fast and do not depend on what was trained.
    """
    import torch

    from roadseg_ros.checkpoint import Checkpoint, save_checkpoint
    from roadseg_ros.classes import CAMVID11
    from roadseg_ros.models import build_model

    def save(path, input_size: tuple[int, int], training: dict | None = None):
        torch.manual_seed(0)
        model = build_model("tiny_segnet", num_classes=CAMVID11.num_classes)
        ckpt = Checkpoint(arch="tiny_segnet", arch_kwargs={}, class_names=list(CAMVID11.class_names),
                          class_colors=list(CAMVID11.class_colors), drivable_classes=[3],
                          mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=input_size,
                          state_dict=model.state_dict(), training=training or {})
        return save_checkpoint(ckpt, path)

    return save


def _write_frame_folder(folder, n: int) -> list[np.ndarray]:
    """n distinct BGR frames as PNGs whose sorted order differs from creation order."""
    import cv2

    folder.mkdir()
    frames = []
    for i in range(n):
        frame = np.zeros((30, 40, 3), np.uint8)
        frame[..., 0] = 20 * i
        frame[i, :, 2] = 255
        frames.append(frame)
    for i in reversed(range(n)):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), frames[i])
    (folder / "notes.txt").write_text("not an image")
    return frames


@pytest.fixture(scope="session")
def write_frame_folder():
    """Factory: ``(folder, n)`` writes n distinct 40x30 BGR PNG frames (plus a text file) and returns them."""
    return _write_frame_folder
