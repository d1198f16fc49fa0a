"""carla_evaluator on replayed CARLA-format frames, through real DDS (rclpy + Fast DDS).

The test publishes predicted masks and CARLA semantic images (palette colours as the
bridges publish them, or raw ids in the red channel as CARLA's raw camera and the Lyft
data hold them) from a separate node, and checks the published running IoU, precision
and recall against a direct numpy computation over the same frames.
"""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, String

from roadseg_ros.classes import CAMVID11
from roadseg_ros.config import ConfigError
from roadseg_ros.nodes.carla_evaluator import METRIC_LABELS, CarlaEvaluator
from roadseg_ros.nodes.messages import classes_from_msg
from roadseg_ros.nodes.segmentation_node import SegmentationNode

W, H = 64, 48
ROAD = 3  # CAMVID11 road id, the evaluator's default drivable class


def _image(array: np.ndarray, encoding: str, stamp_ns: int) -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "ego_vehicle/semantic_segmentation_front"
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.step = array.shape[1] * (array.shape[2] if array.ndim == 3 else 1)
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def _frames(labels: str, n: int, rng: np.random.Generator):
    """n (truth_image, truth_drivable, predicted_mask) triples; the truth drivable mask is
    computed here independently of roadseg_ros.carla.labels."""
    out = []
    for _ in range(n):
        drivable = np.zeros((H, W), bool)
        top = rng.integers(15, 30)
        drivable[top:, 8:56] = True
        line = drivable & (np.arange(W)[None, :] % 16 == 0)        # lane markings
        if labels == "palette":
            truth = np.zeros((H, W, 4), np.uint8)
            truth[..., :3] = (180, 130, 70)                          # sky (BGR of 70,130,180)
            truth[drivable] = (128, 64, 128, 255)                    # road (symmetric in BGR)
            truth[line] = (50, 234, 157, 255)                        # road line, BGR
            truth[:, :8] = (232, 35, 244, 255)                       # sidewalk, BGR
        else:  # pre_0914 raw ids in the red channel of a bgra8 image: 7 road, 6 line, 8 sidewalk
            truth = np.zeros((H, W, 4), np.uint8)
            truth[..., 2] = 13
            truth[drivable, 2] = 7
            truth[line, 2] = 6
            truth[:, :8, 2] = 8
            truth[..., 0] = 42                                       # ignored channels
        pred = np.where(drivable, ROAD, 0).astype(np.uint8)
        flip = rng.random((H, W)) < 0.15                             # prediction errors
        pred[flip] = np.where(pred[flip] == ROAD, 1, ROAD)
        out.append((truth, drivable, pred))
    return out


@pytest.mark.parametrize("labels", ["palette", "pre_0914"])
def test_evaluator_reports_the_directly_computed_iou(labels, nt):
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        evaluator = CarlaEvaluator(context=context,
                                   parameter_overrides=[Parameter("carla_labels", value=labels),
                                                        Parameter("drivable_classes", value=[ROAD])])
        player = Node("carla_replay", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        mask_pub = player.create_publisher(Image, "mask", qos)
        sem_pub = player.create_publisher(Image, "semantic", qos)
        received: list[list[float]] = []
        player.create_subscription(Float32MultiArray, "/carla_evaluator/metrics",
                                   lambda m: received.append(list(m.data)), 10)
        executor.add_node(evaluator)
        executor.add_node(player)
        nt.spin_until(executor, lambda: mask_pub.get_subscription_count() >= 1
                      and sem_pub.get_subscription_count() >= 1
                      and evaluator.metrics_pub.get_subscription_count() >= 1, 20.0, "DDS discovery")

        rng = np.random.default_rng(1)
        frames = _frames(labels, 5, rng)
        tp = fp = fn = 0
        base = 1_700_000_000 * 1_000_000_000
        # An unpaired semantic frame first (its mask was "lost"): it must not be scored.
        sem_pub.publish(_image(frames[0][0], "bgra8", base - 50_000_000))
        for i, (truth, drivable, pred) in enumerate(frames):
            stamp = base + i * 50_000_000
            mask_msg, sem_msg = _image(pred, "mono8", stamp), _image(truth, "bgra8", stamp)
            # Either side may arrive first.
            for msg, pub in ((mask_msg, mask_pub), (sem_msg, sem_pub))[:: 1 if i % 2 else -1]:
                pub.publish(msg)
            p = pred == ROAD
            tp += int(np.sum(p & drivable))
            fp += int(np.sum(p & ~drivable))
            fn += int(np.sum(~p & drivable))
            nt.spin_until(executor, lambda n=i + 1: len(received) >= n, 20.0, f"metrics of frame {i}")
            frame_iou = np.sum(p & drivable) / np.sum(p | drivable)
            assert received[-1][METRIC_LABELS.index("frame_iou")] == pytest.approx(frame_iou, rel=1e-5)

        iou, precision, recall, _, count = received[-1]
        assert count == 5 and len(received) == 5
        assert iou == pytest.approx(tp / (tp + fp + fn), rel=1e-5)
        assert precision == pytest.approx(tp / (tp + fp), rel=1e-5)
        assert recall == pytest.approx(tp / (tp + fn), rel=1e-5)
        assert 0.5 < iou < 0.95    # the injected errors are visible, not a perfect score
        summary = evaluator.report()
        assert summary["frames"] == 5 and summary["dropped_unpaired"] == 1
        assert summary["iou"] == pytest.approx(tp / (tp + fp + fn))
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)


def test_evaluator_rejects_an_unknown_label_scheme():
    context = Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ConfigError, match="palette"):
            CarlaEvaluator(context=context, parameter_overrides=[Parameter("carla_labels", value="0.9.13")])
    finally:
        rclpy.shutdown(context=context)


def test_evaluator_takes_the_drivable_classes_the_segmentation_node_publishes(
        tmp_path, save_tiny_checkpoint, nt):
    """No hard-coded [3]: the node latches its model's taxonomy on ~/classes, the evaluator reads it.

    The node is configured with drivable classes 1 and 3 (not the checkpoint's [3]), as a
    model with another taxonomy would be; the evaluator, started by default, must score
    with exactly those, and a reader that joins later still gets the latched message.
    """
    weights = save_tiny_checkpoint(tmp_path / "tiny.pt", (48, 32))
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        node = SegmentationNode(context=context, parameter_overrides=[
            Parameter("weights", value=str(weights)), Parameter("device", value="cpu"),
            Parameter("num_threads", value=1), Parameter("drivable_classes", value="1, road"),
            Parameter("model.drivable_classes", value=[7])])     # a fact, not a setting: ignored
        executor.add_node(node)
        assert list(node.get_parameter("model.drivable_classes").value) == [1, 3]
        assert list(node.get_parameter("model.class_names").value) == list(CAMVID11.class_names)
        assert len(node.get_parameter("model.class_colors").value) == 3 * CAMVID11.num_classes
        evaluator = CarlaEvaluator(context=context,
                                   cli_args=["--ros-args", "-r", "classes:=/roadseg/classes"])
        executor.add_node(evaluator)
        assert evaluator.drivable_classes is None
        nt.spin_until(executor, lambda: evaluator.drivable_classes is not None, 20.0, "~/classes")
        assert evaluator.drivable_classes == [1, 3]

        late = Node("late_reader", context=context)
        got: list[String] = []
        late.create_subscription(String, "/roadseg/classes", got.append, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        executor.add_node(late)
        nt.spin_until(executor, lambda: got, 20.0, "the latched ~/classes for a late reader")
        data = classes_from_msg(got[0])
        assert data["class_names"] == list(CAMVID11.class_names) and data["drivable_classes"] == [1, 3]
        assert data["class_colors"] == [list(c) for c in CAMVID11.class_colors]
        assert evaluator.summary()["drivable_classes"] == [1, 3]
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)


def test_drivable_classes_must_be_ids_or_the_topic_marker():
    context = Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ConfigError, match=r"\[-1\]"):
            CarlaEvaluator(context=context, parameter_overrides=[Parameter("drivable_classes", value=[-2])])
    finally:
        rclpy.shutdown(context=context)
