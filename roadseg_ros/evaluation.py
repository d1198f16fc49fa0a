"""Scoring a Segmenter on a labelled dataset: the engine of ``roadseg-eval``.

Reports what road-segmentation work is compared on: per-class IoU, mean IoU, pixel
accuracy, road precision/recall/F1 and KITTI Road's MaxF and average precision
(perspective / image space, no bird's-eye transform; definitions in
``roadseg_ros.metrics``), overall and, for a dataset whose sample names carry a category
(KITTI: um, umm, uu; ``roadseg_ros.dataset_registry.Categories``), per category. All scores
are accumulated over the whole split before dividing (not averaged per image).

Predictions come from ``Segmenter`` exactly as the ROS node makes them (resize to the
network size, back to the image size), so the numbers describe what the node delivers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from roadseg_ros.classes import IGNORE_INDEX, Taxonomy
from roadseg_ros.dataset_registry import Categories
from roadseg_ros.metrics import ConfusionMatrix, RoadProbabilityHistogram, segmentation_report

__all__ = ["evaluate_dataset", "format_table"]


class _Accumulator:
    """Confusion matrix + road-probability histogram of one group of images."""

    def __init__(self, num_classes: int) -> None:
        self.cm = ConfusionMatrix(num_classes)
        self.hist = RoadProbabilityHistogram()
        self.images = 0

    def report(self, class_names: Sequence[str], positives: Sequence[int]) -> dict[str, Any]:
        rep = segmentation_report(self.cm.matrix, class_names, positives)
        rep["kitti"] = {k: (None if math.isnan(v) else v) for k, v in self.hist.scores().items()}
        rep["num_images"] = self.images
        return rep


def evaluate_dataset(segmenter: Any, dataset: Any, *, dataset_taxonomy: Taxonomy,
                     categories: Categories | None = None, limit: int | None = None,
                     show_progress: bool = True) -> dict[str, Any]:
    """Score ``segmenter`` (a ``roadseg_ros.inference.Segmenter``) on every sample of ``dataset``.

    Returns the report dict (see ``main``'s JSON): multi-class when the model's classes
    equal ``dataset_taxonomy``'s, else the drivable-vs-not binary view. With ``categories``
    (the dataset's registry entry's rule) the report also scores each category on its own,
    from the category each of ``dataset.names`` carries.
    """
    from tqdm import tqdm

    model_names = list(segmenter.class_names)
    multiclass = tuple(model_names) == tuple(dataset_taxonomy.class_names)
    if multiclass:
        class_names, positives = model_names, list(segmenter.drivable_classes)
    else:
        class_names, positives = ["background", "road"], [1]
    model_drivable = np.array(sorted(segmenter.drivable_classes), dtype=np.int64)
    data_drivable = np.array(sorted(dataset_taxonomy.drivable_classes), dtype=np.int64)
    overall = _Accumulator(len(class_names))
    groups: dict[str, _Accumulator] = {}
    names = list(getattr(dataset, "names", []))
    n = len(dataset) if limit is None else min(limit, len(dataset))
    infer_ms: list[float] = []
    for i in tqdm(range(n), desc="evaluate", disable=not show_progress, dynamic_ncols=True):
        image, label = dataset[i]
        label = np.asarray(label)
        pred = segmenter.predict(image, color_order="rgb", with_confidence=False, with_drivable_prob=True)
        infer_ms.append(float(pred.timing.get("total_ms", math.nan)))
        valid = label != IGNORE_INDEX
        gt_road = np.isin(label, data_drivable) & valid
        if multiclass:
            target, predicted = label, pred.mask
        else:
            target = np.where(valid, gt_road.astype(np.uint8), IGNORE_INDEX).astype(np.uint8)
            predicted = np.isin(pred.mask, model_drivable).astype(np.uint8)
        accs = [overall]
        if categories is not None and i < len(names):
            accs.append(groups.setdefault(categories.of(names[i]), _Accumulator(len(class_names))))
        for acc in accs:
            acc.cm.update(target, predicted)
            acc.hist.update(pred.drivable_prob, gt_road, valid)
            acc.images += 1
    report = overall.report(class_names, positives)
    report.update({
        "view": "multiclass" if multiclass else "drivable_binary",
        "class_names": class_names,
        "confusion_matrix": overall.cm.matrix.tolist(),
        "mean_total_ms": float(np.mean(infer_ms)) if infer_ms else None,
    })
    if categories is not None:
        report["categories"] = {c: groups[c].report(class_names, positives) for c in categories.order(groups)}
    return report


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "   n/a"
    return f"{100 * v:6.2f}" if pct else f"{v:6.3f}"


def format_table(report: dict[str, Any]) -> str:
    """Human-readable table of a report (percentages)."""
    lines = [f"{report['dataset']} {report['split']} ({report['num_images']} images, {report['view']} view) "
             f"- {report['model']} from {report['weights']}", "", "class                 IoU %"]
    for name, v in report["per_class_iou"].items():
        lines.append(f"  {name:<18} {_fmt(v)}")
    road, kitti = report["road"], report["kitti"]
    lines += ["", f"mean IoU             {_fmt(report['mean_iou'])}",
              f"pixel accuracy       {_fmt(report['pixel_accuracy'])}",
              f"road precision       {_fmt(road['precision'])}",
              f"road recall          {_fmt(road['recall'])}",
              f"road F1              {_fmt(road['f1'])}",
              f"road IoU             {_fmt(road['iou'])}",
              f"KITTI MaxF           {_fmt(kitti['max_f'])}",
              f"KITTI AP             {_fmt(kitti['average_precision'])}"]
    if report.get("categories"):
        lines += ["", "category  images   MaxF %   AP %    F1 %   IoU %"]
        for cat, rep in report["categories"].items():
            lines.append(f"  {cat:<7} {rep['num_images']:6d}  {_fmt(rep['kitti']['max_f'])}  "
                         f"{_fmt(rep['kitti']['average_precision'])}  {_fmt(rep['road']['f1'])}  "
                         f"{_fmt(rep['road']['iou'])}")
    return "\n".join(lines)
