"""camera_source: the node over real DDS (its frame sources: test/test_frames.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from roadseg_ros.config import ConfigError
from roadseg_ros.image_codec import decode_image_msg
from roadseg_ros.nodes.camera_source import CameraSource, main


def test_main_reports_a_missing_source(tmp_path, capsys):
    assert main(["--ros-args", "-p", f"source:={tmp_path / 'nope'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_node_publishes_frames_with_matching_camera_info(tmp_path, write_frame_folder, nt):
    frames = write_frame_folder(tmp_path / "cam", 3)
    H, W = frames[0].shape[:2]
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        viewer = Node("viewer", context=context)
        images: list[Image] = []
        infos: list[CameraInfo] = []
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        viewer.create_subscription(Image, "/cam/image", images.append, qos)
        viewer.create_subscription(CameraInfo, "/cam/camera_info", infos.append, qos)
        camera = CameraSource(context=context, namespace="cam", parameter_overrides=[
            Parameter("source", value=str(tmp_path / "cam")), Parameter("loop", value=False),
            Parameter("rate_hz", value=30.0), Parameter("fov_deg", value=60.0),
            Parameter("frame_id", value="front_cam"), Parameter("encoding", value="rgb8"),
            Parameter("wait_for_subscribers", value=True)])
        executor.add_node(camera)
        executor.add_node(viewer)
        nt.spin_until(executor, lambda: camera.finished and len(images) >= 3 and len(infos) >= 3, 20.0,
                      lambda: f"3 images and infos (got {len(images)} images, {len(infos)} infos)")
        assert camera.frames_published == 3
        for msg, info, frame in zip(images, infos, frames):
            assert msg.encoding == "rgb8" and msg.header.frame_id == "front_cam"
            decoded, order = decode_image_msg(msg)
            np.testing.assert_array_equal(decoded, frame[..., ::-1] if order == "rgb" else frame)
            assert info.header.stamp == msg.header.stamp and (info.width, info.height) == (W, H)
            fx = W / (2 * np.tan(np.radians(30.0)))
            assert list(info.k) == pytest.approx([fx, 0, W / 2, 0, fx, H / 2, 0, 0, 1])
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)


def test_node_rejects_bad_parameters():
    context = Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ConfigError, match="best_effort"):
            CameraSource(context=context, parameter_overrides=[Parameter("reliability", value="sometimes")])
        with pytest.raises(ConfigError, match="9 values"):
            CameraSource(context=context, parameter_overrides=[Parameter("camera_matrix", value=[1.0, 2.0])])
    finally:
        rclpy.shutdown(context=context)


def test_camera_matrix_parameter_overrides_the_fov():
    context = Context()
    rclpy.init(context=context)
    try:
        K = [500.0, 0.0, 320.5, 0.0, 505.0, 180.5, 0.0, 0.0, 1.0]
        camera = CameraSource(context=context, parameter_overrides=[
            Parameter("camera_matrix", value=K), Parameter("width", value=64), Parameter("height", value=48)])
        info = camera.camera_info(640, 360)
        assert list(info.k) == K
        assert list(info.p) == [500.0, 0.0, 320.5, 0.0, 0.0, 505.0, 180.5, 0.0, 0.0, 0.0, 1.0, 0.0]
        camera.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_node_plays_a_recording_at_its_recorded_timing_with_its_camera(tmp_path, write_bag, nt):
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    bag = write_bag(tmp_path / "drive", frames, topic="/front/image/compressed", compressed=True,
                    period_ns=200_000_000)
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        viewer = Node("viewer", context=context)
        images: list[tuple[float, Image]] = []
        infos: list[CameraInfo] = []
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        viewer.create_subscription(Image, "/cam/image", lambda m: images.append((time.monotonic(), m)), qos)
        viewer.create_subscription(CameraInfo, "/cam/camera_info", infos.append, qos)
        camera = CameraSource(context=context, namespace="cam", parameter_overrides=[
            Parameter("source", value=str(next(bag.glob("*.mcap")))), Parameter("loop", value=False),
            Parameter("bag_rate", value=2.0), Parameter("rate_hz", value=1.0),   # rate_hz unused
            Parameter("wait_for_subscribers", value=True)])
        executor.add_node(camera)
        executor.add_node(viewer)
        nt.spin_until(executor, lambda: camera.finished and len(images) >= 4 and len(infos) >= 4, 20.0,
                      lambda: f"4 images and infos (got {len(images)} images, {len(infos)} infos)", step=0.01)
        for (_, msg), frame in zip(images, frames, strict=True):
            decoded, order = decode_image_msg(msg)
            np.testing.assert_array_equal(decoded, frame[..., ::-1] if order == "rgb" else frame)
        # recorded every 0.2 s, played at 2x: one frame every 0.1 s (not rate_hz's 1 s)
        gaps = np.diff([t for t, _ in images])
        assert np.all(gaps > 0.05) and np.all(gaps < 0.5), gaps
        assert [info.k[0] for info in infos] == [100.0, 101.0, 102.0, 103.0]   # the recording's own K
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)


def test_main_names_the_image_topics_of_an_ambiguous_recording(tmp_path, write_bag, capsys):
    bag = write_bag(tmp_path / "drive", [np.zeros((4, 6, 3), np.uint8)], other_image_topic="/rear/image_raw")
    assert main(["--ros-args", "-p", f"source:={bag}"]) == 2
    err = capsys.readouterr().err
    assert "several image topics" in err and "/cam/image_raw" in err and "/rear/image_raw" in err
