"""Segmentation metrics: confusion-matrix IoU/accuracy and KITTI-Road-style MaxF / AP.

Everything here accumulates over many images first and computes the scores once at the
end (as the CamVid and KITTI benchmarks do): averaging per-image scores would weight a
small image with one car as much as a whole sequence.

Definitions (all pixels whose ground truth is ``ignore_index`` are left out):

* ``ConfusionMatrix``: rows are ground-truth classes, columns predicted classes.
* IoU of class c = TP / (TP + FP + FN). It is NaN where the class never occurs in the
  ground truth *nor* in the predictions (union 0), and ``mean_iou`` is the mean over the
  classes whose IoU is not NaN, i.e. over the classes present in the ground truth or the
  predictions of the evaluated set. A class that is predicted but absent from the ground
  truth thus counts with IoU 0.
* Pixel accuracy = trace / total (valid pixels).
* Road precision / recall / F1 / IoU treat a set of "drivable" classes as positive and all
  other classes as negative (the binary view of the confusion matrix).
* ``RoadProbabilityHistogram``: KITTI Road's pixel-wise evaluation, in perspective (image)
  space, i.e. without the devkit's bird's-eye-view transform. The road probability is
  quantised to 256 levels ``round(p * 255)`` (the devkit reads 8-bit probability PNGs)
  and counted separately for road and non-road ground-truth pixels. For each threshold
  ``t = k / 255`` (k = 0..255) a pixel is predicted road when its level is >= k.
  ``max_f`` is the maximum F1 over the thresholds. ``average_precision`` is the
  devkit's (PASCAL VOC 2007) 11-point interpolated AP: the mean over recall levels
  r = 0, 0.1, ..., 1.0 of the maximum precision among thresholds whose recall >= r
  (a recall level no threshold reaches contributes 0).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from roadseg_ros.classes import IGNORE_INDEX

# torch is not imported here: a tensor can only exist once its caller imported torch, so
# the live-scoring node (numpy masks) does not pay for torch, and training still gets
# on-device counting.
if TYPE_CHECKING:
    import torch

    ArrayLike = np.ndarray | torch.Tensor

#: Number of probability levels of the KITTI-style histogram (8-bit probabilities).
KITTI_LEVELS = 256


def _is_tensor(a: object) -> bool:
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(a, torch_module.Tensor)


def _to_numpy_int(a: ArrayLike) -> np.ndarray:
    if _is_tensor(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)


class ConfusionMatrix:
    """Accumulates a ``num_classes x num_classes`` confusion matrix (rows GT, columns prediction).

    ``update`` accepts numpy arrays or torch tensors (on any device; torch input is
    counted with ``torch.bincount`` on that device, so training-time validation on a
    GPU does not copy whole masks to the host).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def update(self, target: ArrayLike, pred: ArrayLike) -> None:
        """Add one batch/image: ``target`` and ``pred`` are integer class-id arrays of equal shape.

        Ground-truth pixels equal to ``ignore_index`` are skipped; any other ground-truth
        or predicted value outside ``[0, num_classes)`` is an error (it means a label
        mapping or a model/taxonomy mismatch, which silently dropping would hide).
        """
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(f"target shape {tuple(target.shape)} != prediction shape {tuple(pred.shape)}")
        n = self.num_classes
        if _is_tensor(target) and _is_tensor(pred):
            import torch

            t = target.reshape(-1).long()
            p = pred.reshape(-1).long().to(t.device)
            keep = t != self.ignore_index
            t, p = t[keep], p[keep]
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n or int(p.min()) < 0 or int(p.max()) >= n):
                raise ValueError(f"class ids outside [0, {n}) (ground truth {int(t.min())}..{int(t.max())}, "
                                 f"prediction {int(p.min())}..{int(p.max())}); "
                                 f"ignore index is {self.ignore_index}")
            counts = torch.bincount(t * n + p, minlength=n * n).cpu().numpy()
        else:
            t = _to_numpy_int(target).reshape(-1).astype(np.int64)
            p = _to_numpy_int(pred).reshape(-1).astype(np.int64)
            keep = t != self.ignore_index
            t, p = t[keep], p[keep]
            if t.size and (t.min() < 0 or t.max() >= n or p.min() < 0 or p.max() >= n):
                raise ValueError(f"class ids outside [0, {n}) (ground truth {t.min()}..{t.max()}, "
                                 f"prediction {p.min()}..{p.max()}); ignore index is {self.ignore_index}")
            counts = np.bincount(t * n + p, minlength=n * n)
        self.matrix += counts.reshape(n, n).astype(np.int64)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix of the same size (e.g. from another worker); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge a {other.num_classes}-class matrix into "
                             f"a {self.num_classes}-class one")
        self.matrix += other.matrix
        return self

    # Scores -------------------------------------------------------------------------
    def iou(self) -> np.ndarray:
        return iou_per_class(self.matrix)

    def mean_iou(self) -> float:
        return mean_iou(self.matrix)

    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.matrix)

    def binary(self, positive_classes: Iterable[int]) -> dict[str, float]:
        return binary_scores(self.matrix, positive_classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN); NaN where the union is 0 (class nowhere in GT or prediction)."""
    m = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean of the non-NaN per-class IoUs (classes present in GT or prediction); NaN if none."""
    ious = iou_per_class(matrix)
    valid = ~np.isnan(ious)
    return float(ious[valid].mean()) if valid.any() else math.nan


def pixel_accuracy(matrix: np.ndarray) -> float:
    """Fraction of valid pixels whose predicted class equals the ground truth; NaN if no pixels."""
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum()
    return float(np.trace(m) / total) if total > 0 else math.nan


def prf_from_counts(tp: float, fp: float, fn: float) -> dict[str, float]:
    """Precision, recall, F1 and IoU of the positive class from pixel counts; NaN where undefined."""
    precision = tp / (tp + fp) if tp + fp > 0 else math.nan
    recall = tp / (tp + fn) if tp + fn > 0 else math.nan
    if tp + fp > 0 and tp + fn > 0 and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    else:
        f1 = 0.0 if (tp + fp > 0 or tp + fn > 0) else math.nan
    iou = tp / (tp + fp + fn) if tp + fp + fn > 0 else math.nan
    return {"precision": precision, "recall": recall, "f1": f1, "iou": iou}


def binary_scores(matrix: np.ndarray, positive_classes: Iterable[int]) -> dict[str, float]:
    """Precision, recall, F1 and IoU of "any positive class" vs the rest (e.g. drivable vs not).

    Confusions *among* positive classes count as correct: for driving, road predicted as
    another drivable class is still drivable.
    """
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    pos = sorted(set(int(c) for c in positive_classes))
    if not pos or any(not 0 <= c < n for c in pos):
        raise ValueError(f"positive classes {pos} must be a non-empty subset of 0..{n - 1}")
    is_pos = np.zeros(n, dtype=bool)
    is_pos[pos] = True
    tp = m[np.ix_(is_pos, is_pos)].sum()
    fn = m[np.ix_(is_pos, ~is_pos)].sum()
    fp = m[np.ix_(~is_pos, is_pos)].sum()
    return prf_from_counts(float(tp), float(fp), float(fn))


def binary_counts(pred: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> dict[str, int]:
    """True/false positive and negative pixel counts of two bool masks (``valid`` selects the
    pixels that count). Counts, not ratios, so running totals over many frames stay exact."""
    pred = np.asarray(_to_numpy_int(pred), dtype=bool)
    truth = np.asarray(_to_numpy_int(truth), dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {truth.shape}")
    if valid is not None:
        keep = np.asarray(_to_numpy_int(valid), dtype=bool)
        pred, truth = pred[keep], truth[keep]
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": int(pred.size - tp - fp - fn)}


class RoadProbabilityHistogram:
    """KITTI-Road-style accumulator of road-probability histograms (see the module docstring).

    ``update(prob, gt_road, valid)`` per image; ``scores()`` at the end gives MaxF, AP and
    the precision/recall/threshold at MaxF.
    """

    def __init__(self, levels: int = KITTI_LEVELS) -> None:
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.levels = int(levels)
        self.road = np.zeros(self.levels, dtype=np.int64)
        self.nonroad = np.zeros(self.levels, dtype=np.int64)

    def update(self, prob: ArrayLike, gt_road: ArrayLike, valid: ArrayLike | None = None) -> None:
        """Add one image: ``prob`` road probability in [0, 1], ``gt_road`` bool GT, ``valid`` bool mask."""
        p = _to_numpy_int(prob).astype(np.float64)
        g = _to_numpy_int(gt_road).astype(bool)
        if p.shape != g.shape:
            raise ValueError(f"probability shape {p.shape} != ground-truth shape {g.shape}")
        if valid is None:
            v = np.ones_like(g)
        else:
            v = _to_numpy_int(valid).astype(bool)
            if v.shape != g.shape:
                raise ValueError(f"valid-mask shape {v.shape} != ground-truth shape {g.shape}")
        if not np.isfinite(p[v]).all():
            raise ValueError("road probabilities contain NaN or infinity")
        q = np.clip(np.rint(p * (self.levels - 1)), 0, self.levels - 1).astype(np.int64)
        self.road += np.bincount(q[v & g], minlength=self.levels)
        self.nonroad += np.bincount(q[v & ~g], minlength=self.levels)

    def merge(self, other: RoadProbabilityHistogram) -> RoadProbabilityHistogram:
        if other.levels != self.levels:
            raise ValueError(f"cannot merge a {other.levels}-level histogram into a {self.levels}-level one")
        self.road += other.road
        self.nonroad += other.nonroad
        return self

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, precision, recall) for threshold k/(levels-1), k = 0..levels-1."""
        # TP[k] = road pixels with level >= k (reverse cumulative sum); same for FP.
        tp = np.cumsum(self.road[::-1])[::-1].astype(np.float64)
        fp = np.cumsum(self.nonroad[::-1])[::-1].astype(np.float64)
        positives = float(self.road.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = tp / positives if positives > 0 else np.full(self.levels, np.nan)
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        thresholds = np.arange(self.levels, dtype=np.float64) / (self.levels - 1)
        return thresholds, precision, recall

    def scores(self) -> dict[str, float]:
        """``max_f``, ``average_precision``, and ``precision``/``recall``/``threshold`` at MaxF.

        All NaN when no valid road pixel was seen (recall is undefined).
        """
        nan = {"max_f": math.nan, "average_precision": math.nan, "precision": math.nan,
               "recall": math.nan, "threshold": math.nan}
        if self.road.sum() == 0:
            return nan
        thresholds, precision, recall = self.curves()
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        best = int(np.argmax(f))
        ap = 0.0
        for r in np.linspace(0.0, 1.0, 11):
            # small tolerance: linspace gives 0.30000000000000004 where recall is exactly 0.3
            reached = recall >= r - 1e-12
            ap += float(precision[reached].max()) if reached.any() else 0.0
        return {"max_f": float(f[best]), "average_precision": ap / 11.0, "precision": float(precision[best]),
                "recall": float(recall[best]), "threshold": float(thresholds[best])}


def segmentation_report(matrix: np.ndarray, class_names: Sequence[str],
                        drivable_classes: Iterable[int]) -> dict[str, Any]:
    """A JSON-ready summary of a confusion matrix: per-class IoU, mIoU, accuracy, road P/R/F1/IoU.

    NaN values become ``None`` so that the result is valid JSON.
    """
    m = np.asarray(matrix)
    if m.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {m.shape} does not match {len(class_names)} class names")
    ious = iou_per_class(m)
    return {
        "per_class_iou": {name: _json_float(v) for name, v in zip(class_names, ious)},
        "mean_iou": _json_float(mean_iou(m)),
        "pixel_accuracy": _json_float(pixel_accuracy(m)),
        "road": {k: _json_float(v) for k, v in binary_scores(m, drivable_classes).items()},
        "valid_pixels": int(m.sum()),
    }


def _json_float(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v
