"""``roadseg-eval``: score a checkpoint on a labelled dataset split.

A thin command over :mod:`roadseg_ros.evaluation` (what is scored and how); this module
reads the options, finds the weights and the data, and prints or writes the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from roadseg_ros.classes import TAXONOMIES, get_taxonomy, taxonomy_of
from roadseg_ros.config import (
    CARLA_LABEL_SCHEMES,
    ConfigError,
    add_runtime_arguments,
    size_type,
)
from roadseg_ros.dataset_registry import DATASET_NAMES, DATASETS
from roadseg_ros.evaluation import evaluate_dataset, format_table

_size = size_type(8)

_BINARY_BY_DEFAULT = " and ".join(name for name, info in DATASETS.items() if info.binary_by_default)

EPILOG = f"""\
Taxonomies: when the model's classes equal the dataset taxonomy's (e.g. a camvid11 model
on CamVid), the full multi-class confusion matrix is scored. Otherwise (e.g. a camvid11
model on KITTI Road, whose labels are only road / non-road) the tool scores the
drivable-vs-not binary view (the default for {_BINARY_BY_DEFAULT}): predicted road = any of
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="roadseg-eval", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None,
                   help="checkpoint file, or a bundled one's name such as fcn8s_lite0 "
                        "(default: the bundled roadseg_default)")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--data", type=Path, default=None, metavar="ROOT",
                   help="dataset root folder (required except for synthetic)")
    p.add_argument("--split", default=None,
                   help="split folder/name (default: "
                        + ", ".join(f"{k} {v.default_split}" for k, v in DATASETS.items()) + ")")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the report here")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_runtime_arguments(p)
    p.add_argument("--input-size", type=_size, default=None, metavar="WxH",
                   help="network input size (default: the checkpoint's)")
    p.add_argument("--keep-aspect", action=argparse.BooleanOptionalAction, default=None,
                   help="run the network at the input size's pixel count but each image's proportions, "
                        "as the node does by default (default: on, except for cityscapes_pix2pix, whose "
                        "256x256 images are 2:1 views squeezed square: their own shape is not the scene's)")
    p.add_argument("--taxonomy", default=None, choices=sorted(TAXONOMIES),
                   help="taxonomy the dataset labels are mapped to (default: road_binary for "
                        f"{_BINARY_BY_DEFAULT}, else the model's own when it is a known one)")
    p.add_argument("--mapping", type=Path, default=None, help="class-mapping YAML for the dataset")
    p.add_argument("--carla-labels", default=None, choices=CARLA_LABEL_SCHEMES)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
    p.add_argument("--scenes", type=int, default=100, help="synthetic: number of scenes (default 100)")
    p.add_argument("--scene-size", type=_size, default=(640, 360), metavar="WxH",
                   help="synthetic: image size (default 640x360, the demo's)")
    p.add_argument("--seed", type=int, default=0, help="synthetic: base seed (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roadseg-eval``; returns the exit status (2 on a usage/data problem)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from roadseg_ros.checkpoint import load_weights
    from roadseg_ros.data import DatasetError, build_dataset
    from roadseg_ros.inference import Segmenter
    from roadseg_ros.quantization import ranges_path_for

    try:
        weights, ckpt = load_weights(args.weights)
    except ConfigError as exc:
        print(f"roadseg-eval: {exc}", file=sys.stderr)
        return 2
    info = DATASETS[args.dataset]
    if info.needs_root and args.data is None:
        parser.error(f"--data ROOT is required for --dataset {args.dataset}")
    if not info.needs_root and args.data is not None:
        parser.error(f"--dataset {args.dataset} renders its scenes; drop --data")
    split = args.split or info.default_split
    known = taxonomy_of(ckpt.class_names)
    tax_name = args.taxonomy or ("road_binary" if info.binary_by_default or known is None else known.name)
    taxonomy = get_taxonomy(tax_name)
    kw: dict[str, Any] = {}
    if args.carla_labels:
        if "carla_labels" not in info.options:
            parser.error("--carla-labels applies to --dataset carla only")
        kw["carla_labels"] = args.carla_labels
    if not info.needs_root:
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
    keep_aspect = args.keep_aspect if args.keep_aspect is not None else not info.squeezed
    segmenter = Segmenter(ckpt, device=args.device, precision=args.precision, backend=args.backend,
                          input_size=args.input_size, keep_aspect=keep_aspect,
                          int8_ranges=ranges_path_for(weights))
    t0 = time.time()
    report = evaluate_dataset(segmenter, dataset, dataset_taxonomy=taxonomy,
                              categories=info.categories, limit=args.limit)
    data_root = str(args.data) if args.data is not None else (
        f"generated: {args.scenes} scenes {args.scene_size[0]}x{args.scene_size[1]}, seed {args.seed}")
    report = {"dataset": args.dataset, "split": split, "data_root": data_root, "weights": str(weights),
              "model": ckpt.arch, "dataset_taxonomy": tax_name, "input_size": list(segmenter.input_size),
              "keep_aspect": keep_aspect,
              "device": str(segmenter.device), "backend": segmenter.backend, "precision": segmenter.precision,
              "seconds": round(time.time() - t0, 3), **report}
    print(format_table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
