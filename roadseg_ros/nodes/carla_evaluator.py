"""``carla_evaluator``: score the segmentation node live against CARLA's ground truth.

CARLA renders a semantic-segmentation camera next to the RGB one; both images of a
simulation step carry the same header stamp, and the segmentation node passes the RGB
stamp on to its ``mask``. This node pairs ``mask`` (mono8 class ids of the node's model)
with ``semantic`` (CARLA's semantic image) by that stamp, turns both into drivable/not
(the model's drivable classes; CARLA's road + road line, read from palette colours
or raw ids of either CARLA numbering, ``carla_labels``), and keeps running pixel counts.

The model's drivable classes come from the segmentation node's latched ``~/classes``
topic (subscribed as ``classes``) by default (``drivable_classes: [-1]``), so a model with
another taxonomy is scored on its own road classes; give ids to override. Masks that
arrive before the classes are skipped and counted (``waiting_for_classes``).

Publishes ``~/metrics`` (std_msgs/Float32MultiArray) after every pair, layout labels
``iou, precision, recall, frame_iou, frames``: the first three over all pairs so far
(ratios of summed pixel counts, not means of per-frame ratios), ``frame_iou`` of the
latest pair. NaN where undefined. On stop it logs (and prints) a summary and, when
``summary_path`` is set, writes it as JSON.

Unpaired messages wait in bounded buffers (``buffer_size`` per side; the oldest is
dropped and counted), so a lost message never makes memory grow.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, String

from roadseg_ros.carla.labels import LABEL_SCHEMES, label_image_to_drivable
from roadseg_ros.carla.pairing import StampPairer
from roadseg_ros.image_codec import ImageFormatError, decode_image_msg
from roadseg_ros.metrics import binary_counts, prf_from_counts
from roadseg_ros.nodes.common import run_node
from roadseg_ros.nodes.messages import classes_from_msg, stamp_ns
from roadseg_ros.nodes.params import CARLA_EVALUATOR, declare_parameters

#: Order of the values in ``~/metrics``.
METRIC_LABELS = ("iou", "precision", "recall", "frame_iou", "frames")


def _iou_precision_recall(counts: dict[str, int]) -> dict[str, float]:
    scores = prf_from_counts(counts["tp"], counts["fp"], counts["fn"])
    return {k: scores[k] for k in ("iou", "precision", "recall")}


class CarlaEvaluator(Node):
    """Pairs masks with CARLA semantic images and accumulates drivable-area scores."""

    def __init__(self, **node_kwargs: Any) -> None:
        node_kwargs.setdefault("node_name", "carla_evaluator")
        super().__init__(**node_kwargs)
        p = declare_parameters(self, CARLA_EVALUATOR)
        self.labels = p["carla_labels"]
        self.summary_path = p["summary_path"]
        self.drivable_classes: list[int] | None = None
        self._lut: np.ndarray | None = None
        self.waiting_for_classes = 0
        if list(p["drivable_classes"]) != [-1]:
            self._set_drivable([int(c) for c in p["drivable_classes"]])
        # stream a: the model's drivable masks, stream b: CARLA's
        self.pairs: StampPairer[np.ndarray, np.ndarray] = StampPairer(
            p["buffer_size"], int(round(float(p["stamp_tolerance_s"]) * 1e9)))
        self.counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
        self.frames = 0
        self.errors = 0
        self.last_frame_iou = float("nan")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.mask_sub = self.create_subscription(Image, "mask", self._on_mask, qos)
        self.semantic_sub = self.create_subscription(Image, "semantic", self._on_semantic, qos)
        self.metrics_pub = self.create_publisher(Float32MultiArray, "~/metrics", 10)
        self.classes_sub = None
        if self._lut is None:   # the latched taxonomy of the segmentation node (transient local)
            self.classes_sub = self.create_subscription(String, "classes", self._on_classes, QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.get_logger().info(
            f"evaluating {self.mask_sub.topic_name} against {self.semantic_sub.topic_name} "
            f"(CARLA labels: {self.labels}; valid: {', '.join(LABEL_SCHEMES)})")

    def _set_drivable(self, ids: list[int]) -> None:
        self.drivable_classes = sorted(ids)
        self._lut = np.zeros(256, dtype=bool)
        self._lut[self.drivable_classes] = True

    def _on_classes(self, msg: String) -> None:
        try:
            data = classes_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(f"{self.classes_sub.topic_name}: {exc}")
            return
        if self.drivable_classes != sorted(data["drivable_classes"]):
            self._set_drivable(list(data["drivable_classes"]))
            names = [data["class_names"][c] for c in self.drivable_classes]
            model = data.get("model", "the model")
            self.get_logger().info(f"drivable classes of {model} from {self.classes_sub.topic_name}: "
                                   f"{self.drivable_classes} ({', '.join(names)})")

    @property
    def dropped(self) -> int:
        """Messages dropped unpaired (buffer full, or older than a pair found)."""
        return self.pairs.dropped

    # -- conversion --------------------------------------------------------------------
    def _mask_drivable(self, msg: Image) -> np.ndarray:
        if msg.encoding not in ("mono8", "8UC1"):
            raise ImageFormatError(f"mask must be mono8 class ids, got encoding {msg.encoding!r}")
        image, _ = decode_image_msg(msg)
        return self._lut[image[..., 0]]

    def _truth_drivable(self, msg: Image) -> np.ndarray:
        image, order = decode_image_msg(msg)
        if self.labels == "palette" and msg.encoding in ("mono8", "8UC1", "mono16", "16UC1"):
            raise ImageFormatError(f"carla_labels=palette needs a colour image, got {msg.encoding!r} "
                                   "(raw ids? set carla_labels to pre_0914 or post_0914)")
        return label_image_to_drivable(image, self.labels, order)

    # -- pairing -----------------------------------------------------------------------
    def _on_mask(self, msg: Image) -> None:
        if self._lut is None:
            self.waiting_for_classes += 1
            self.get_logger().warning(f"mask skipped: no drivable classes yet (waiting for "
                                      f"{self.classes_sub.topic_name})", throttle_duration_sec=5.0)
            return
        drivable = self._convert(msg, self._mask_drivable, "mask")
        if drivable is not None:
            self._score_pair(self.pairs.add_a(stamp_ns(msg.header), drivable))

    def _on_semantic(self, msg: Image) -> None:
        drivable = self._convert(msg, self._truth_drivable, "semantic")
        if drivable is not None:
            self._score_pair(self.pairs.add_b(stamp_ns(msg.header), drivable))

    def _convert(self, msg: Image, convert, what: str) -> np.ndarray | None:
        try:
            return convert(msg)
        except (ImageFormatError, ValueError) as exc:
            self.errors += 1
            self.get_logger().warning(f"{what} image skipped: {exc}", throttle_duration_sec=5.0)
            return None

    def _score_pair(self, pair: tuple[np.ndarray, np.ndarray] | None) -> None:
        if pair is not None:
            self._score(*pair)

    def _score(self, pred: np.ndarray, truth: np.ndarray) -> None:
        if pred.shape != truth.shape:   # the model's mask at another resolution: compare at CARLA's
            pred = cv2.resize(pred.astype(np.uint8), (truth.shape[1], truth.shape[0]),
                              interpolation=cv2.INTER_NEAREST).astype(bool)
        frame = binary_counts(pred, truth)
        for key, value in frame.items():
            self.counts[key] += value
        self.frames += 1
        self.last_frame_iou = _iou_precision_recall(frame)["iou"]
        scores = self.scores()
        msg = Float32MultiArray()
        msg.layout.dim = [MultiArrayDimension(label=",".join(METRIC_LABELS), size=len(METRIC_LABELS),
                                              stride=len(METRIC_LABELS))]
        msg.data = [float(scores["iou"]), float(scores["precision"]), float(scores["recall"]),
                    float(self.last_frame_iou), float(self.frames)]
        self.metrics_pub.publish(msg)

    def scores(self) -> dict[str, float]:
        """Running IoU, precision and recall of the drivable class over all pairs so far."""
        return _iou_precision_recall(self.counts)

    def summary(self) -> dict:
        """Scores plus bookkeeping (pairs, dropped unpaired messages, skipped images)."""
        scores = {k: (None if math.isnan(v) else v) for k, v in self.scores().items()}
        return {**scores, "frames": self.frames, "pixels": dict(self.counts),
                "dropped_unpaired": self.dropped, "skipped_images": self.errors, "carla_labels": self.labels,
                "waiting_for_classes": self.waiting_for_classes,
                "drivable_classes": self.drivable_classes}

    def report(self) -> dict:
        """Log the summary (and write ``summary_path`` if set); returns it."""
        summary = self.summary()
        self.get_logger().info("CARLA evaluation: " + ", ".join(
            f"{k}={summary[k]:.4f}" if summary[k] is not None else f"{k}=n/a"
            for k in ("iou", "precision", "recall")) + f" over {self.frames} frames")
        if self.summary_path:
            path = Path(self.summary_path).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def main(args: list[str] | None = None) -> int:
    """Evaluate until Ctrl-C, then print the summary; 2 on bad parameters."""
    return run_node("carla_evaluator", CarlaEvaluator, args,
                    on_exit=lambda node: print(json.dumps(node.report(), indent=2)))


if __name__ == "__main__":
    sys.exit(main())
