"""``roadseg-eval``: score a checkpoint on a labelled dataset split.

Reports what road-segmentation work is compared on: per-class IoU, mean IoU, pixel
accuracy, road precision/recall/F1 and KITTI Road's MaxF and average precision
(perspective / image space, no bird's-eye transform; definitions in
``roadseg_ros.metrics``), overall and, for KITTI, per category (um, umm, uu). All scores
are accumulated over the whole split before dividing (not averaged per image).

Predictions come from ``Segmenter`` exactly as the ROS node makes them (resize to the
network size, back to the image size), so the numbers describe what the node delivers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roadseg_ros.classes import IGNORE_INDEX, TAXONOMIES, Taxonomy, get_taxonomy
from roadseg_ros.metrics import ConfusionMatrix, RoadProbabilityHistogram, segmentation_report

DATASETS = ("camvid", "kitti", "carla", "cityscapes", "cityscapes_pix2pix", "idd_lite", "synthetic")
#: Split used when --split is not given, per dataset.
DEFAULT_SPLITS = {"camvid": "val", "kitti": "training", "carla": "val", "cityscapes": "val",
                  "cityscapes_pix2pix": "val", "idd_lite": "val", "synthetic": "val"}
#: Datasets scored in the drivable-vs-not view by default: their labels only say road / not road
#: (KITTI) or are too coarse for the model's classes (IDD-Lite's level-1 ids).
BINARY_BY_DEFAULT = ("kitti", "idd_lite")
KITTI_CATEGORIES = ("um", "umm", "uu")

EPILOG = """\
Taxonomies: when the model's classes equal the dataset taxonomy's (e.g. a camvid11 model
on CamVid), the full multi-class confusion matrix is scored. Otherwise (e.g. a camvid11
model on KITTI Road, whose labels are only road / non-road) the tool scores the
drivable-vs-not binary view (the default for kitti and idd_lite): predicted road = any of
the model's drivable classes,
ground-truth road = the dataset taxonomy's drivable classes; per-class IoU then lists
"background" and "road". MaxF/AP always use the model's drivable probability (sum of the
softmax probabilities of its drivable classes). Pixels labelled 255 (unlabelled / not
evaluated) never count. For CamVid, --split test means ROOT/test + ROOT/testannot.
cityscapes_pix2pix and idd_lite: --split val is ROOT/val when it exists, else the seeded
15% validation part of ROOT/train that roadseg-train holds out (--split all: everything).
--dataset synthetic needs no --data: it renders --scenes generated road scenes (the demo's
world) at --scene-size from --seed; its val split never repeats a training scene of
roadseg-train --synthetic.
"""


def parse_size(text: str) -> tuple[int, int]:
    """``"480x360"`` -> ``(480, 360)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like WIDTHxHEIGHT, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size {text!r} too small (width and height must be >= 8)")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roadseg-eval", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None,
                   help="checkpoint (default: the bundled roadseg_ros/weights/roadseg_default.pt)")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data", type=Path, default=None, metavar="ROOT",
                   help="dataset root folder (required except for synthetic)")
    p.add_argument("--split", default=None,
                   help="split folder/name (default: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_SPLITS.items()) + ")")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the report here")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--input-size", type=parse_size, default=None, metavar="WxH",
                   help="network input size (default: the checkpoint's)")
    p.add_argument("--taxonomy", default=None, choices=sorted(TAXONOMIES),
                   help="taxonomy the dataset labels are mapped to (default: road_binary for "
                        f"{' and '.join(BINARY_BY_DEFAULT)}, else the model's own when it is a known one)")
    p.add_argument("--mapping", type=Path, default=None, help="class-mapping YAML for the dataset")
    p.add_argument("--carla-labels", default=None, choices=("pre_0914", "post_0914", "palette"))
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
    p.add_argument("--scenes", type=int, default=100, help="synthetic: number of scenes (default 100)")
    p.add_argument("--scene-size", type=parse_size, default=(640, 360), metavar="WxH",
                   help="synthetic: image size (default 640x360, the demo's)")
    p.add_argument("--seed", type=int, default=0, help="synthetic: base seed (default 0)")
    return p


def model_taxonomy(class_names: Sequence[str]) -> Taxonomy | None:
    """The known taxonomy whose class names equal the checkpoint's, if any."""
    for tax in TAXONOMIES.values():
        if tuple(tax.class_names) == tuple(class_names):
            return tax
    return None


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


def evaluate_dataset(segmenter: Any, dataset: Any, *, dataset_taxonomy: Taxonomy, per_category: bool = False,
                     limit: int | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Score ``segmenter`` (a ``roadseg_ros.inference.Segmenter``) on every sample of ``dataset``.

    Returns the report dict (see ``main``'s JSON): multi-class when the model's classes
    equal ``dataset_taxonomy``'s, else the drivable-vs-not binary view.
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
        if per_category and i < len(names):
            category = names[i].split("_")[0]
            accs.append(groups.setdefault(category, _Accumulator(len(class_names))))
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
    if per_category:
        report["categories"] = {c: groups[c].report(class_names, positives)
                                for c in sorted(groups, key=lambda c: (c not in KITTI_CATEGORIES, c))}
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roadseg-eval``; returns the exit status (2 on a usage/data problem)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from roadseg_ros.checkpoint import CheckpointError, default_weights_path, load_checkpoint
    from roadseg_ros.data import DatasetError, build_dataset
    from roadseg_ros.inference import Segmenter

    weights = args.weights if args.weights is not None else default_weights_path()
    if not Path(weights).is_file():
        which = "--weights" if args.weights is not None else "the default checkpoint"
        print(f"roadseg-eval: {which} {weights} does not exist; train one with roadseg-train "
              f"(see docs/training.md) or pass --weights PATH", file=sys.stderr)
        return 2
    try:
        ckpt = load_checkpoint(weights)
    except CheckpointError as exc:
        print(f"roadseg-eval: {exc}", file=sys.stderr)
        return 2
    if args.dataset != "synthetic" and args.data is None:
        parser.error(f"--data ROOT is required for --dataset {args.dataset}")
    if args.dataset == "synthetic" and args.data is not None:
        parser.error("--dataset synthetic renders its scenes; drop --data")
    split = args.split or DEFAULT_SPLITS[args.dataset]
    known = model_taxonomy(ckpt.class_names)
    tax_name = args.taxonomy or ("road_binary" if args.dataset in BINARY_BY_DEFAULT or known is None
                                 else known.name)
    taxonomy = get_taxonomy(tax_name)
    kw: dict[str, Any] = {}
    if args.carla_labels:
        if args.dataset != "carla":
            parser.error("--carla-labels applies to --dataset carla only")
        kw["carla_labels"] = args.carla_labels
    if args.dataset == "synthetic":
        kw.update(num_scenes=args.scenes, size=args.scene_size, seed=args.seed)
    try:
        dataset = build_dataset(args.dataset, args.data, split, taxonomy=tax_name, mapping=args.mapping, **kw)
    except (DatasetError, ValueError, OSError) as exc:
        print(f"roadseg-eval: cannot read {args.dataset} split {split!r} under {args.data}: {exc}",
              file=sys.stderr)
        return 2
    if len(dataset) == 0:
        print(f"roadseg-eval: {args.dataset} split {split!r} under {args.data} has no samples",
              file=sys.stderr)
        return 2
    segmenter = Segmenter(ckpt, device=args.device, precision=args.precision, input_size=args.input_size)
    t0 = time.time()
    report = evaluate_dataset(segmenter, dataset, dataset_taxonomy=taxonomy,
                              per_category=args.dataset == "kitti", limit=args.limit)
    data_root = str(args.data) if args.data is not None else (
        f"generated: {args.scenes} scenes {args.scene_size[0]}x{args.scene_size[1]}, seed {args.seed}")
    report = {"dataset": args.dataset, "split": split, "data_root": data_root, "weights": str(weights),
              "model": ckpt.arch, "dataset_taxonomy": tax_name, "input_size": list(segmenter.input_size),
              "device": str(segmenter.device), "precision": args.precision,
              "seconds": round(time.time() - t0, 3), **report}
    print(format_table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
