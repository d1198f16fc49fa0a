"""How much of a checkpoint's KITTI MaxF shortfall lies beside the labelled road (a diagnostic).

    ./dev.sh run python scripts/kitti_beside_road.py [WEIGHTS] [--data ../shared/data/kitti_road]

Why: the project has only two labelled KITTI images (um_000000/1), and in both a paved tram bed
runs left of the road, separated by a kerb; KITTI labels it non-road. This prints KITTI MaxF/AP
as ``roadseg-eval --dataset kitti`` scores it (same reader, same network size and shape, same
histogram), then again with every pixel left of the ground-truth road (per image row) left out.
The second figure is *not* a score of the model: it says whether the first one's shortfall is
that one region or spread over the image. Needs the shared data; nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from roadseg_ros.classes import IGNORE_INDEX
from roadseg_ros.data import build_dataset
from roadseg_ros.dataset_registry import DATASETS
from roadseg_ros.inference import Segmenter
from roadseg_ros.metrics import RoadProbabilityHistogram

ROOT = Path(__file__).resolve().parents[1]


def left_of_road(road: np.ndarray) -> np.ndarray:
    """Pixels left of the leftmost road pixel of their row (rows without road: none)."""
    cols = np.arange(road.shape[1])[None, :]
    has = road.any(axis=1)
    first = np.where(has, road.argmax(axis=1), 0)
    return cols < first[:, None]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("weights", nargs="?", default=str(ROOT / "roadseg_ros" / "weights" / "roadseg_default.pt"))
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kitti_road"),
                   help="KITTI Road root holding training/image_2 and training/gt_image_2")
    args = p.parse_args(argv)
    seg = Segmenter(args.weights, device="cpu", keep_aspect=True)   # roadseg-eval's defaults
    data = build_dataset("kitti", args.data, DATASETS["kitti"].default_split, taxonomy="road_binary")
    whole, beside = RoadProbabilityHistogram(), RoadProbabilityHistogram()
    for i in range(len(data)):
        image, label = data[i]
        prob = seg.predict(image, with_confidence=False, with_drivable_prob=True).drivable_prob
        valid, road = label != IGNORE_INDEX, label == 1
        left = left_of_road(road) & valid
        whole.update(prob, road, valid)
        beside.update(prob, road, valid & ~left)
        print(f"{data.names[i]}: {int(road.sum())} road pixels, {int(left.sum())} left of the road; "
              f"mean road probability there {float(prob[left].mean()) if left.any() else float('nan'):.3f}")
    for name, hist in (("as roadseg-eval scores it", whole), ("left of the road left out", beside)):
        s = hist.scores()
        print(f"{name}: MaxF {s['max_f']:.3f} (precision {s['precision']:.3f}, recall {s['recall']:.3f}), "
              f"AP {s['average_precision']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
