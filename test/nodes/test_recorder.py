"""recorder: overlay video, snapshots and summary.json from messages sent over real DDS."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from roadseg_ros.image_codec import fill_image_msg
from roadseg_ros.msg import DrivableArea
from roadseg_ros.nodes.recorder import Recorder, percentiles

W, H = 64, 48


@pytest.fixture()
def ros():
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    yield context, executor
    executor.shutdown()
    rclpy.shutdown(context=context)


def _player(nt, context, executor, recorder):
    player = Node("player", context=context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    overlay_pub = player.create_publisher(Image, "/roadseg/overlay", qos)
    area_pub = player.create_publisher(DrivableArea, "/roadseg/drivable_area", qos)
    executor.add_node(recorder)
    executor.add_node(player)
    nt.spin_until(executor, lambda: overlay_pub.get_subscription_count() >= 1
                  and area_pub.get_subscription_count() >= 1, 20.0, "DDS discovery")
    return player, overlay_pub, area_pub


def _send(player, overlay_pub, area_pub, i: int, ratio: float, total_ms: float) -> None:
    stamp = (player.get_clock().now() - rclpy.duration.Duration(nanoseconds=30_000_000)).to_msg()
    frame = np.zeros((H, W, 3), np.uint8)
    frame[: H // 2] = (0, 0, 200)            # BGR: red top half
    frame[H // 2:, :, 1] = 40 * i
    msg = fill_image_msg(Image(), frame, "bgr8", color_order="bgr")
    msg.header.stamp = stamp
    overlay_pub.publish(msg)
    area = DrivableArea()
    area.header.stamp = stamp
    area.width, area.height = W, H
    area.drivable_ratio = ratio
    area.total_latency_ms = total_ms
    area.inference_latency_ms = total_ms / 2
    area.model_name = "tiny_segnet"
    area_pub.publish(area)


def test_recorder_writes_video_snapshots_and_summary(tmp_path, ros, nt):
    context, executor = ros
    out = tmp_path / "rec"
    recorder = Recorder(context=context, cli_args=[
        "--ros-args", "-r", "overlay:=/roadseg/overlay", "-r", "drivable_area:=/roadseg/drivable_area"],
        parameter_overrides=[Parameter("output_dir", value=str(out)), Parameter("max_frames", value=4),
                             Parameter("snapshot_every", value=2), Parameter("video_fps", value=5.0)])
    player, overlay_pub, area_pub = _player(nt, context, executor, recorder)
    ratios = [0.2, 0.4, 0.5, 0.7]
    totals = [10.0, 20.0, 30.0, 100.0]
    for i in range(5):   # one more than max_frames: must be ignored
        _send(player, overlay_pub, area_pub, i, ratios[i] if i < 4 else 0.99, totals[i] if i < 4 else 999.0)
        if i < 4:
            nt.spin_until(executor, lambda n=i + 1: recorder.frames >= n
                          and len(recorder.drivable_ratios) >= n, 20.0, f"frame {i}")
    nt.spin_until(executor, lambda: recorder.done, 10.0, "the recorder to close")
    executor.spin_once(timeout_sec=0.2)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 4 and summary["drivable_area_messages"] == 4
    assert summary["mean_drivable_ratio"] == pytest.approx(np.mean(ratios), rel=1e-6)
    node_total = summary["latency_ms"]["node_total"]
    assert node_total["p50"] == pytest.approx(np.percentile(totals, 50), rel=1e-5)
    assert node_total["p90"] == pytest.approx(np.percentile(totals, 90), rel=1e-5)
    assert node_total["max"] == pytest.approx(100.0)
    stamp = summary["latency_ms"]["stamp_to_overlay"]
    assert stamp["count"] == 4 and 30.0 <= stamp["p50"] < 10_000.0   # stamps were 30 ms old when sent
    assert summary["rate_hz"] > 0 and summary["image_size"] == [W, H]
    assert summary["model_name"] == "tiny_segnet"
    assert summary["snapshots"] == ["snapshot_0000.png", "snapshot_0002.png"]

    snap = cv2.imread(str(out / "snapshot_0002.png"))
    assert snap.shape == (H, W, 3) and tuple(snap[0, 0]) == (0, 0, 200) and snap[-1, 0, 1] == 80
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    count = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        count += 1
        assert frame.shape == (H, W, 3)
        assert frame[:10, :, 2].mean() > 150      # the red top half survived the codec
    video.release()
    assert count == 4


def test_recorder_close_on_shutdown_without_max_frames(tmp_path, ros, nt):
    context, executor = ros
    recorder = Recorder(context=context, cli_args=[
        "--ros-args", "-r", "overlay:=/roadseg/overlay", "-r", "drivable_area:=/roadseg/drivable_area"],
        parameter_overrides=[Parameter("output_dir", value=str(tmp_path))])
    player, overlay_pub, area_pub = _player(nt, context, executor, recorder)
    _send(player, overlay_pub, area_pub, 0, 0.25, 12.0)
    nt.spin_until(executor, lambda: recorder.frames >= 1 and recorder.drivable_ratios, 20.0, "one frame")
    assert not recorder.done
    summary = recorder.close()
    assert recorder.close() == summary     # idempotent
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["frames"] == 1 and written["rate_hz"] is None
    assert written["mean_drivable_ratio"] == pytest.approx(0.25)


def test_percentiles_of_nothing_are_null():
    assert percentiles([])["p50"] is None
    assert percentiles([1.0, 3.0])["mean"] == 2.0
