"""The bundled default checkpoint: loadable safely, small, self-describing, and it finds road.

It is what the node, the demo and the tools load when no weights are given, so its
metadata is part of the product: drivable = road, provenance recorded, fp16 on disk.
"""

from __future__ import annotations

import numpy as np

from roadseg_ros.checkpoint import load_checkpoint
from roadseg_ros.classes import CAMVID11
from roadseg_ros.config import default_weights_path
from roadseg_ros.data.synthetic import render_scene
from roadseg_ros.inference import Segmenter
from roadseg_ros.models import DEFAULT_MODEL


def test_bundled_checkpoint_is_small_and_self_describing() -> None:
    path = default_weights_path()
    assert path.is_file(), f"bundled checkpoint missing: {path}"
    assert path.stat().st_size < 20 * 2**20
    ckpt = load_checkpoint(path)  # weights_only loading
    assert ckpt.arch == DEFAULT_MODEL
    assert list(ckpt.class_names) == list(CAMVID11.class_names)
    assert [ckpt.class_names[i] for i in ckpt.drivable_classes] == ["road"]
    for key in ("datasets", "command", "date", "git_commit", "hyperparameters"):
        assert key in ckpt.training, f"checkpoint provenance lacks {key!r}"
    assert ckpt.training["metrics"]["val"]["road"]["iou"] > 0.9


def test_bundled_model_finds_the_road_in_a_synthetic_scene() -> None:
    seg = Segmenter(default_weights_path(), device="cpu", num_threads=1)
    image, label = render_scene(5, 640, 360)
    mask = seg.predict(image, color_order="rgb").mask
    road_pred, road_true = mask == 3, label == 3
    # The lowest rows of a synthetic scene are road: the model must say so there.
    bottom = slice(int(0.85 * label.shape[0]), None)
    recall_bottom = (road_pred[bottom] & road_true[bottom]).sum() / max(1, road_true[bottom].sum())
    assert recall_bottom > 0.8
    iou = (road_pred & road_true).sum() / max(1, (road_pred | road_true).sum())
    assert iou > 0.3, f"road IoU {iou:.2f}"
    assert np.isin(mask, np.arange(len(CAMVID11.class_names))).all()
