"""roadseg-eval on small CamVid- and KITTI-layout folders written from synthetic scenes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from roadseg_ros.classes import IGNORE_INDEX
from roadseg_ros.data.synthetic import render_scene
from roadseg_ros.inference import Segmenter
from roadseg_ros.tools import evaluate, train

SIZE = (64, 48)
ROAD = 3


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny_segnet checkpoint briefly trained on synthetic scenes (predictions are not trivial)."""
    out = tmp_path_factory.mktemp("run")
    assert train.main(["--synthetic", "8", "--val-split", "none", "--model", "tiny_segnet", "--input-size",
                       "64x48", "--batch-size", "4", "--workers", "0", "--lr", "0.02", "--epochs", "5",
                       "--device", "cpu", "--output", str(out)]) == 0
    return out / "last.pt"


def _scenes(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [render_scene(seed + i, *SIZE) for i in range(n)]


def _write_camvid(root: Path, split: str, scenes) -> None:
    (root / split).mkdir(parents=True)
    (root / f"{split}annot").mkdir()
    for i, (image, label) in enumerate(scenes):
        cv2.imwrite(str(root / split / f"f{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / f"{split}annot" / f"f{i:03d}.png"), np.where(label == IGNORE_INDEX, 11, label)
                    .astype(np.uint8))


def _write_kitti(root: Path, scenes, names: list[str]) -> None:
    img_dir, gt_dir = root / "training" / "image_2", root / "training" / "gt_image_2"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for name, (image, label) in zip(names, scenes):
        gt = np.zeros((*label.shape, 3), np.uint8)          # RGB: black = not evaluated
        gt[label != IGNORE_INDEX] = (255, 0, 0)            # non-road red
        gt[label == ROAD] = (255, 0, 255)                  # road magenta
        gt[:4] = 0                                         # a band of "not evaluated" pixels
        cat, _, idx = name.partition("_")
        cv2.imwrite(str(img_dir / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(gt_dir / f"{cat}_road_{idx}.png"), cv2.cvtColor(gt, cv2.COLOR_RGB2BGR))


def _direct_confusion(seg: Segmenter, pairs, num_classes: int, binary: bool) -> np.ndarray:
    """Confusion matrix counted by hand from Segmenter predictions (no roadseg_ros.metrics)."""
    m = np.zeros((num_classes, num_classes), np.int64)
    for image, gt in pairs:
        pred = seg.predict(image, with_confidence=False).mask.astype(np.int64)
        if binary:
            pred = np.isin(pred, seg.drivable_classes).astype(np.int64)
        for t, p in zip(gt.ravel(), pred.ravel()):
            if t != IGNORE_INDEX:
                m[t, p] += 1
    return m


def test_camvid_split_json_matches_direct_computation(tmp_path, weights):
    scenes = _scenes(3, seed=500)
    _write_camvid(tmp_path / "camvid", "test", scenes)
    out = tmp_path / "report.json"
    assert evaluate.main(["--weights", str(weights), "--dataset", "camvid", "--data",
                          str(tmp_path / "camvid"), "--split", "test", "--json", str(out),
                          "--device", "cpu"]) == 0
    rep = json.loads(out.read_text())
    for key in ("per_class_iou", "mean_iou", "pixel_accuracy", "road", "kitti", "num_images", "view",
                "confusion_matrix", "weights", "model", "dataset", "split"):
        assert key in rep, key
    assert rep["view"] == "multiclass" and rep["num_images"] == 3 and rep["model"] == "tiny_segnet"
    assert set(rep["road"]) >= {"precision", "recall", "f1"}
    assert set(rep["kitti"]) >= {"max_f", "average_precision"}
    assert "categories" not in rep

    assert rep["keep_aspect"] is True   # camvid: square pixels, so the node's default applies
    seg = Segmenter(weights, device="cpu", warmup=False, keep_aspect=True, backend="auto", precision="auto")
    m = _direct_confusion(seg, scenes, 11, binary=False)
    assert rep["confusion_matrix"] == m.tolist()
    tp = np.diag(m).astype(float)
    union = m.sum(0) + m.sum(1) - tp
    present = union > 0
    assert rep["mean_iou"] == pytest.approx((tp[present] / union[present]).mean())
    assert rep["pixel_accuracy"] == pytest.approx(tp.sum() / m.sum())
    road_tp, road_pred, road_gt = m[ROAD, ROAD], m[:, ROAD].sum(), m[ROAD].sum()
    assert rep["road"]["recall"] == pytest.approx(road_tp / road_gt)
    assert rep["road"]["f1"] == pytest.approx(2 * road_tp / (road_pred + road_gt))
    assert 0.0 <= rep["kitti"]["average_precision"] <= 1.0
    # trained a little on the same kind of scenes: clearly better than chance on road
    assert rep["kitti"]["max_f"] > 0.5


def test_kitti_binary_view_and_categories(tmp_path, weights):
    names = ["um_000000", "um_000001", "uu_000000"]
    scenes = _scenes(3, seed=900)
    _write_kitti(tmp_path / "kitti", scenes, names)
    out = tmp_path / "kitti.json"
    assert evaluate.main(["--weights", str(weights), "--dataset", "kitti", "--data", str(tmp_path / "kitti"),
                          "--split", "training", "--json", str(out), "--device", "cpu"]) == 0
    rep = json.loads(out.read_text())
    assert rep["view"] == "drivable_binary"
    assert list(rep["per_class_iou"]) == ["background", "road"]
    assert set(rep["categories"]) == {"um", "uu"}
    assert rep["categories"]["um"]["num_images"] == 2 and rep["categories"]["uu"]["num_images"] == 1

    assert rep["keep_aspect"] is True
    seg = Segmenter(weights, device="cpu", warmup=False, keep_aspect=True, backend="auto", precision="auto")
    gts = []
    for _, label in scenes:
        gt = np.where(label == IGNORE_INDEX, IGNORE_INDEX, (label == ROAD).astype(np.uint8)).astype(np.uint8)
        gt[:4] = IGNORE_INDEX
        gts.append(gt)
    m = _direct_confusion(seg, [(img, gt) for (img, _), gt in zip(scenes, gts)], 2, binary=True)
    assert rep["confusion_matrix"] == m.tolist()
    assert rep["road"]["precision"] == pytest.approx(m[1, 1] / m[:, 1].sum())
    # the per-category matrices add up to the overall one
    assert sum(c["valid_pixels"] for c in rep["categories"].values()) == rep["valid_pixels"] == m.sum()


def test_missing_weights_is_a_clear_error(tmp_path, capsys):
    _write_camvid(tmp_path / "camvid", "val", _scenes(1, seed=1))
    code = evaluate.main(["--weights", str(tmp_path / "none.pt"), "--dataset", "camvid",
                          "--data", str(tmp_path / "camvid")])
    assert code == 2
    assert "none.pt does not exist" in capsys.readouterr().err


def test_missing_split_is_a_clear_error(tmp_path, weights, capsys):
    _write_camvid(tmp_path / "camvid", "val", _scenes(1, seed=1))
    code = evaluate.main(["--weights", str(weights), "--dataset", "camvid", "--data",
                          str(tmp_path / "camvid"), "--split", "test"])
    assert code == 2
    assert "split 'test'" in capsys.readouterr().err


def test_synthetic_val_scenes_match_direct_computation(tmp_path, weights):
    """--dataset synthetic renders the generator's val split: the confusion matrix equals a hand count."""
    out = tmp_path / "synth.json"
    assert evaluate.main(["--weights", str(weights), "--dataset", "synthetic", "--scenes", "3",
                          "--scene-size", "64x48", "--seed", "5", "--device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["num_images"] == 3 and report["split"] == "val"
    assert report["data_root"] == "generated: 3 scenes 64x48, seed 5"
    # The generator's val split starts at seed + 1_000_000 (disjoint from roadseg-train --synthetic).
    pairs = [render_scene(5 + 1_000_000 + i, *SIZE) for i in range(3)]
    seg = Segmenter(weights, device="cpu", warmup=False, keep_aspect=report["keep_aspect"], backend="auto",
                    precision="auto")
    expected = _direct_confusion(seg, pairs, 11, binary=False)
    assert np.array_equal(np.array(report["confusion_matrix"]), expected)


def test_synthetic_needs_no_data_and_others_do(tmp_path, weights, capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--weights", str(weights), "--dataset", "camvid"])
    assert "--data ROOT is required for --dataset camvid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--weights", str(weights), "--dataset", "synthetic", "--data", str(tmp_path)])
    assert "drop --data" in capsys.readouterr().err
    assert evaluate.main(["--weights", str(weights), "--dataset", "synthetic", "--split", "nope"]) == 2
    assert "split 'nope'" in capsys.readouterr().err
