"""carla_bridge: message building without a simulator, and the real client against a closed port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from roadseg_ros.image_codec import decode_image_msg
from roadseg_ros.nodes.carla_bridge import (
    CarlaConnectionError,
    bgra_image_msg,
    connect,
    stamp_from_seconds,
    topic_names,
)

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_topic_names_match_the_official_bridge():
    names = topic_names("ego_vehicle")
    assert names["rgb_image"] == "/carla/ego_vehicle/rgb_front/image"
    assert names["rgb_info"] == "/carla/ego_vehicle/rgb_front/camera_info"
    assert names["semantic_image"] == "/carla/ego_vehicle/semantic_segmentation_front/image"
    assert names["semantic_info"] == "/carla/ego_vehicle/semantic_segmentation_front/camera_info"


def test_stamp_from_simulation_seconds():
    stamp = stamp_from_seconds(12.3456789015)
    assert (stamp.sec, stamp.nanosec) == (12, 345678902)
    assert (stamp_from_seconds(0.9999999999).sec, stamp_from_seconds(0.9999999999).nanosec) == (1, 0)
    with pytest.raises(ValueError):
        stamp_from_seconds(-1.0)


def test_bgra_buffer_becomes_a_bgra8_image_the_node_can_decode():
    width, height = 6, 4
    bgra = np.random.default_rng(0).integers(0, 256, (height, width, 4), dtype=np.uint8)
    msg = bgra_image_msg(memoryview(bgra.tobytes()), width, height, stamp_from_seconds(1.5), "ego/rgb_front")
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("bgra8", width, height, width * 4)
    header = msg.header
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1, 500_000_000, "ego/rgb_front")
    decoded, order = decode_image_msg(msg)
    assert order == "bgr"
    np.testing.assert_array_equal(decoded, bgra[..., :3])
    with pytest.raises(ValueError, match="needs 96"):
        bgra_image_msg(bytes(95), width, height, stamp_from_seconds(0.0), "x")


def test_connect_to_a_closed_port_fails_within_the_timeout():
    pytest.importorskip("carla", reason="the carla client is not installed")
    port = _closed_port()
    start = time.monotonic()
    with pytest.raises(CarlaConnectionError, match=rf"127\.0\.0\.1:{port} within 1.5 s"):
        connect("127.0.0.1", port, 1.5)
    assert time.monotonic() - start < 1.5 + 3.0


def test_bridge_process_exits_nonzero_with_one_error_when_no_server():
    """The executable's path: one error line, exit 1, no hang, nothing spawned."""
    pytest.importorskip("carla", reason="the carla client is not installed")
    port = _closed_port()
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "roadseg_ros.nodes.carla_bridge", "--ros-args",
         "-p", "host:=127.0.0.1", "-p", f"port:={port}", "-p", "timeout_s:=2.0"],
        cwd=REPO, env=os.environ.copy(), capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, proc.stderr
    assert f"no CARLA simulator answered at 127.0.0.1:{port} within 2 s" in errors[0]
    assert "Traceback" not in proc.stderr
    assert elapsed < 2.0 + 20.0     # the timeout plus interpreter/rclpy start-up, not a hang
