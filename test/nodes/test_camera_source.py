"""camera_source: frame sources (folder, video, synthetic) and the node over real DDS."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from roadseg_ros.image_codec import decode_image_msg
from roadseg_ros.nodes.camera_source import CameraSource, FrameSource, SourceError, main

W, H = 40, 30


def _write_folder(folder, n: int) -> list[np.ndarray]:
    """n distinct BGR frames as PNGs whose sorted order differs from creation order."""
    folder.mkdir()
    frames = []
    for i in range(n):
        frame = np.zeros((H, W, 3), np.uint8)
        frame[..., 0] = 20 * i
        frame[i, :, 2] = 255
        frames.append(frame)
    for i in reversed(range(n)):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), frames[i])
    (folder / "notes.txt").write_text("not an image")
    return frames


def test_folder_source_sorted_and_non_looping(tmp_path):
    frames = _write_folder(tmp_path / "cam", 3)
    got = list(FrameSource(str(tmp_path / "cam"), loop=False).frames())
    assert len(got) == 3
    for a, b in zip(got, frames):
        np.testing.assert_array_equal(a, b)
    looping = FrameSource(str(tmp_path / "cam"), loop=True).frames()
    replay = [next(looping) for _ in range(5)]
    np.testing.assert_array_equal(replay[3], frames[0])
    resized = next(FrameSource(str(tmp_path / "cam"), width=20, height=16).frames())
    assert resized.shape == (16, 20, 3)


def test_video_source(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(4):
        writer.write(np.full((48, 64, 3), 50 * i, np.uint8))
    writer.release()
    got = list(FrameSource(str(path), loop=False).frames())
    assert len(got) == 4 and got[0].shape == (48, 64, 3)
    # Lossy codec: only roughly the grey levels written.
    assert [int(round(f.mean() / 50)) for f in got] == [0, 1, 2, 3]


def test_synthetic_source_moves_down_the_road():
    frames = FrameSource("synthetic", width=64, height=48, metres_per_frame=2.0).frames()
    a, b = next(frames), next(frames)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    again = next(FrameSource("synthetic", width=64, height=48, metres_per_frame=2.0).frames())
    np.testing.assert_array_equal(a, again)   # deterministic in the seed


def test_source_errors_name_the_problem(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        FrameSource(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        FrameSource(str(tmp_path / "empty"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is no video" * 10)
    with pytest.raises(SourceError, match="cannot be opened"):
        FrameSource(str(bad))
    with pytest.raises(SourceError, match="both width and height"):
        FrameSource("synthetic", width=64)
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    with pytest.raises(SourceError, match="a.png cannot be read"):
        next(FrameSource(str(folder)).frames())


def test_main_reports_a_missing_source(tmp_path, capsys):
    assert main(["--ros-args", "-p", f"source:={tmp_path / 'nope'}"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_node_publishes_frames_with_matching_camera_info(tmp_path):
    frames = _write_folder(tmp_path / "cam", 3)
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
        deadline = time.monotonic() + 20.0
        while not (camera.finished and len(images) >= 3 and len(infos) >= 3):
            assert time.monotonic() < deadline, f"got {len(images)} images, {len(infos)} infos"
            executor.spin_once(timeout_sec=0.05)
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
        with pytest.raises(ValueError, match="best_effort"):
            CameraSource(context=context, parameter_overrides=[Parameter("reliability", value="sometimes")])
        with pytest.raises(ValueError, match="9 values"):
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
