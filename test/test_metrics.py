"""Metrics against values computed by hand on tiny arrays (worked out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from roadseg_ros.metrics import (
    ConfusionMatrix,
    RoadProbabilityHistogram,
    binary_counts,
    binary_scores,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    prf_from_counts,
    segmentation_report,
)

# Valid (gt, pred) pairs: (0,0) (0,1) (1,1) (1,1) (2,0); the 255 pixel is ignored.
# Confusion matrix (rows gt): [[1,1,0],[0,2,0],[1,0,0]]
TARGET = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
PRED = np.array([[0, 1, 1], [1, 0, 2]], dtype=np.uint8)


def test_confusion_matrix_iou_accuracy_by_hand():
    cm = ConfusionMatrix(3)
    cm.update(TARGET, PRED)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    # IoU0 = 1/(1+1+1); IoU1 = 2/(2+1+0); IoU2 = 0/(0+0+1)
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 0.0])
    assert cm.mean_iou() == pytest.approx(1 / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)


def test_torch_and_numpy_updates_agree_and_accumulate():
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(TARGET, PRED)
    a.update(TARGET, PRED)
    b.update(torch.from_numpy(TARGET), torch.from_numpy(PRED))
    b.merge(ConfusionMatrix(3).merge(b))  # b twice
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert a.matrix.sum() == 10


def test_absent_class_is_nan_and_excluded_from_mean():
    cm = ConfusionMatrix(4)
    cm.update(TARGET, PRED)
    ious = cm.iou()
    assert math.isnan(ious[3])
    assert cm.mean_iou() == pytest.approx(1 / 3)
    # predicted but absent from GT counts as IoU 0
    cm2 = ConfusionMatrix(4)
    cm2.update(np.array([0, 0]), np.array([0, 3]))
    np.testing.assert_allclose(cm2.iou()[[0, 3]], [0.5, 0.0])
    assert cm2.mean_iou() == pytest.approx(0.25)


def test_binary_scores_by_hand():
    m = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    s = binary_scores(m, [1])  # TP 2, FP 1, FN 0
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(1.0)
    assert s["f1"] == pytest.approx(0.8)
    assert s["iou"] == pytest.approx(2 / 3)
    s = binary_scores(m, [0, 1])  # TP 4, FP 1 (gt 2 -> pred 0), FN 0
    assert s["precision"] == pytest.approx(0.8)
    assert s["f1"] == pytest.approx(8 / 9)
    with pytest.raises(ValueError, match="positive classes"):
        binary_scores(m, [5])


def test_module_functions_and_report():
    m = np.array([[3, 1], [0, 4]])
    np.testing.assert_allclose(iou_per_class(m), [3 / 4, 4 / 5])
    assert mean_iou(m) == pytest.approx((0.75 + 0.8) / 2)
    assert pixel_accuracy(m) == pytest.approx(7 / 8)
    rep = segmentation_report(m, ["bg", "road"], [1])
    assert rep["per_class_iou"] == {"bg": pytest.approx(0.75), "road": pytest.approx(0.8)}
    assert rep["road"]["recall"] == pytest.approx(1.0)
    assert rep["road"]["precision"] == pytest.approx(0.8)
    assert rep["valid_pixels"] == 8


def test_out_of_range_ids_rejected():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.array([0, 7]), np.array([0, 1]))
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros(3), np.zeros(4))


def test_maxf_and_ap_by_hand():
    # 11 levels: thresholds 0, 0.1, ..., 1. Road probs 0.9 0.8 0.4, non-road 0.7 0.2.
    # k=0..2: TP3 FP2 P=.6 R=1 F=.75 | k=3,4: TP3 FP1 P=.75 R=1 F=6/7 | k=5..7: TP2 FP1 P=R=2/3
    # k=8: TP2 FP0 P=1 R=2/3 F=.8 | k=9: TP1 P=1 R=1/3 | k=10: nothing predicted (P=0, R=0)
    # MaxF = 6/7 at t=0.3. AP: r=0..0.6 (7 levels) reach P=1; r=0.7..1 (4 levels) only P<=.75
    # -> AP = (7*1 + 4*0.75)/11 = 10/11.
    h = RoadProbabilityHistogram(levels=11)
    prob = np.array([0.9, 0.8, 0.4, 0.7, 0.2, 0.99])
    gt = np.array([1, 1, 1, 0, 0, 1], dtype=bool)
    valid = np.array([1, 1, 1, 1, 1, 0], dtype=bool)  # last pixel not evaluated
    h.update(prob, gt, valid)
    s = h.scores()
    assert s["max_f"] == pytest.approx(6 / 7)
    assert s["threshold"] == pytest.approx(0.3)
    assert s["precision"] == pytest.approx(0.75)
    assert s["recall"] == pytest.approx(1.0)
    assert s["average_precision"] == pytest.approx(10 / 11)


def test_kitti_histogram_accumulates_over_images_and_matches_brute_force():
    rng = np.random.default_rng(0)
    h = RoadProbabilityHistogram()
    probs, gts = [], []
    for _ in range(3):
        gt = rng.random((12, 16)) < 0.4
        prob = np.clip(gt * 0.5 + rng.random((12, 16)) * 0.6, 0, 1)
        h.update(prob.astype(np.float32), gt)
        probs.append(prob.ravel())
        gts.append(gt.ravel())
    p, g = np.concatenate(probs), np.concatenate(gts)
    best_f, precisions, recalls = 0.0, [], []
    for k in range(256):
        pred = np.rint(p * 255) >= k
        tp = float((pred & g).sum())
        prec = tp / pred.sum() if pred.sum() else 0.0
        rec = tp / g.sum()
        precisions.append(prec)
        recalls.append(rec)
        if prec + rec > 0:
            best_f = max(best_f, 2 * prec * rec / (prec + rec))
    precisions, recalls = np.array(precisions), np.array(recalls)
    ap = np.mean([precisions[recalls >= r - 1e-12].max(initial=0.0) for r in np.linspace(0, 1, 11)])
    s = h.scores()
    assert s["max_f"] == pytest.approx(best_f)
    assert s["average_precision"] == pytest.approx(ap)
    assert 0.5 < s["max_f"] <= 1.0


def test_kitti_no_road_pixels_gives_nan():
    h = RoadProbabilityHistogram()
    h.update(np.zeros((2, 2)), np.zeros((2, 2), dtype=bool))
    assert math.isnan(h.scores()["max_f"])


def test_binary_counts_and_prf_from_counts_by_hand():
    pred = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    counts = binary_counts(pred, truth)
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    scores = prf_from_counts(counts["tp"], counts["fp"], counts["fn"])
    assert scores == {"iou": pytest.approx(1 / 3), "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert math.isnan(prf_from_counts(0, 0, 0)["iou"])
    valid = np.array([[True, True, False, True]])
    assert binary_counts(pred, truth, valid) == {"tp": 1, "fp": 1, "fn": 0, "tn": 1}


def test_metrics_import_no_torch():
    """The live-scoring node uses these functions; torch is paid for only by callers that hold tensors."""
    import subprocess
    import sys

    code = "import sys, roadseg_ros.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-1000:]
