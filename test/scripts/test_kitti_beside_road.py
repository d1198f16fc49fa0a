"""scripts/kitti_beside_road.py: the region left of the road, and a first figure equal to roadseg-eval's."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from roadseg_ros.classes import get_taxonomy
from roadseg_ros.data import build_dataset
from roadseg_ros.evaluation import evaluate_dataset
from roadseg_ros.inference import Segmenter


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("kitti_beside_road")


def test_left_of_road_is_per_row(script) -> None:
    road = np.zeros((3, 6), bool)
    road[0, 2:4] = True
    road[2, 0] = True
    left = script.left_of_road(road)
    assert left[0].tolist() == [True, True, False, False, False, False]
    assert not left[1].any() and not left[2].any()


def test_first_figure_is_roadseg_evals_maxf(tmp_path: Path, script, tiny_checkpoint, capsys) -> None:
    rng = np.random.default_rng(0)
    for num in ("000000", "000001"):
        image = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
        gt = np.zeros((24, 40, 3), np.uint8)
        gt[:] = (255, 0, 0)                       # non-road
        gt[12:, 15:35] = (255, 0, 255)            # road, with non-road left of it
        for folder, name, rgb in (("image_2", f"um_{num}.png", image),
                                  ("gt_image_2", f"um_road_{num}.png", gt)):
            (tmp_path / "training" / folder).mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(tmp_path / "training" / folder / name), rgb[..., ::-1].copy())
    ckpt = tiny_checkpoint(tmp_path / "w.pt")
    assert script.main([str(ckpt), "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "um_000000: 240 road pixels, 180 left of the road" in out
    first = float(re.search(r"as roadseg-eval scores it: MaxF ([0-9.]+)", out).group(1))
    report = evaluate_dataset(Segmenter(ckpt, device="cpu", keep_aspect=True),
                              build_dataset("kitti", tmp_path, "training", taxonomy="road_binary"),
                              dataset_taxonomy=get_taxonomy("road_binary"), show_progress=False)
    assert first == pytest.approx(report["kitti"]["max_f"], abs=5e-4)
    assert "left of the road left out: MaxF" in out
