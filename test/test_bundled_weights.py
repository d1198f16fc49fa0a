"""The bundled checkpoints: loadable safely, small, self-describing, and they find road and sky.

``roadseg_default`` is what the node, the demo and the tools load when no weights are given;
any other file in ``roadseg_ros/weights`` is selectable by name (``-p weights:=fcn8s_lite0``).
Their metadata is part of the product: drivable = road, provenance and data terms recorded,
fp16 on disk, at most 12 MB each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from roadseg_ros.checkpoint import load_checkpoint
from roadseg_ros.classes import CAMVID11
from roadseg_ros.config import bundled_weights, default_weights_path
from roadseg_ros.data.synthetic import render_scene
from roadseg_ros.inference import Segmenter
from roadseg_ros.models import DEFAULT_MODEL

BUNDLED = bundled_weights()
ROAD, SKY = CAMVID11.class_names.index("road"), CAMVID11.class_names.index("sky")


def test_the_default_is_bundled_and_is_the_default_model() -> None:
    path = default_weights_path()
    assert path.is_file(), f"bundled checkpoint missing: {path}"
    assert BUNDLED["roadseg_default"] == path
    assert load_checkpoint(path).arch == DEFAULT_MODEL


@pytest.mark.parametrize("path", list(BUNDLED.values()), ids=list(BUNDLED))
def test_bundled_checkpoint_is_small_and_self_describing(path: Path) -> None:
    assert path.stat().st_size <= 12 * 10**6
    ckpt = load_checkpoint(path)  # weights_only loading
    assert list(ckpt.class_names) == list(CAMVID11.class_names)
    assert [ckpt.class_names[i] for i in ckpt.drivable_classes] == ["road"]
    for key in ("datasets", "command", "date", "git_commit", "hyperparameters", "data_licenses"):
        assert key in ckpt.training, f"checkpoint provenance lacks {key!r}"
    assert ckpt.training["metrics"]["val"]["road"]["iou"] > 0.9


@pytest.mark.parametrize("path", list(BUNDLED.values()), ids=list(BUNDLED))
def test_bundled_model_finds_road_and_sky_in_a_synthetic_scene(path: Path) -> None:
    """The demo's camera: road where the road is, and the sky not painted road (issue 11)."""
    seg = Segmenter(path, device="cpu", num_threads=1, keep_aspect=True)
    road_iou, sky_iou = [], []
    for seed in (5, 6):
        image, label = render_scene(seed, 640, 360)
        mask = seg.predict(image, color_order="rgb").mask
        assert np.isin(mask, np.arange(len(CAMVID11.class_names))).all()
        for cls, out in ((ROAD, road_iou), (SKY, sky_iou)):
            pred, true = mask == cls, label == cls
            out.append((pred & true).sum() / max(1, (pred | true).sum()))
        # The lowest rows of a synthetic scene are road: the model must say so there.
        bottom = slice(int(0.85 * label.shape[0]), None)
        assert (mask[bottom] == ROAD)[label[bottom] == ROAD].mean() > 0.8
    assert np.mean(road_iou) > 0.8, f"road IoU {road_iou}"
    assert np.mean(sky_iou) > 0.8, f"sky IoU {sky_iou}"
