"""roadseg-demo end to end on a short sequence: synthetic camera -> node -> recorder, real DDS."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from roadseg_ros.config import default_weights_path
from roadseg_ros.tools.demo import main


@pytest.fixture(scope="module")
def weights(tmp_path_factory, save_tiny_checkpoint) -> Path:
    """A tiny randomly initialised CAMVID11 checkpoint (the bundled one may not exist yet)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", (96, 64),
                                training={"note": "random weights for tests"})


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_demo_synthetic_short_run(tmp_path, weights, capsys):
    out = tmp_path / "demo"
    rc = main(["--frames", "6", "--rate", "10", "--width", "96", "--height", "64", "--output", str(out),
               "--weights", str(weights), "--device", "cpu", "--snapshots", "3", "--timeout", "90"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6
    assert summary["drivable_area_messages"] == 6
    assert summary["image_size"] == [96, 64]
    assert summary["model_name"] == "tiny_segnet"
    assert 0.0 <= summary["mean_drivable_ratio"] <= 1.0
    for kind in ("stamp_to_overlay", "node_total"):
        stats = summary["latency_ms"][kind]
        assert stats["count"] == 6 and 0.0 < stats["p50"] <= stats["p90"] <= stats["max"]
    assert summary["rate_hz"] > 0
    frames = _video_frames(out / "overlay.mp4")
    assert len(frames) == 6 and frames[0].shape == (64, 96, 3)
    assert summary["snapshots"] == ["snapshot_0000.png", "snapshot_0002.png", "snapshot_0004.png"]
    for name in summary["snapshots"]:
        assert cv2.imread(str(out / name)).shape == (64, 96, 3)
    # What it did and where, for the user.
    assert str(out / "overlay.mp4") in captured.out and "6 frames" in captured.out


def test_demo_replays_an_image_folder_until_it_ends(tmp_path, weights):
    folder = tmp_path / "CameraRGB"
    folder.mkdir()
    for i in range(3):
        image = np.full((48, 80, 3), 60 + 40 * i, np.uint8)
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    out = tmp_path / "replay"
    rc = main(["--source", str(folder), "--frames", "0", "--rate", "5", "--output", str(out),
               "--weights", str(weights), "--device", "cpu", "--timeout", "60"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    # The node may drop a frame under load, never invent one.
    assert 2 <= summary["frames"] <= 3 and summary["image_size"] == [80, 48]
    assert len(_video_frames(out / "overlay.mp4")) == summary["frames"]


def test_demo_plays_a_recording_until_it_ends(tmp_path, weights, write_bag, capsys):
    frames = [np.full((48, 80, 3), 60 + 40 * i, np.uint8) for i in range(3)]
    bag = write_bag(tmp_path / "drive", frames, other_image_topic="/rear/image_raw")
    out = tmp_path / "replay"
    assert main(["--source", str(bag), "--frames", "0", "--output", str(out), "--weights", str(weights),
                 "--device", "cpu", "--timeout", "60"]) == 2
    assert "several image topics" in capsys.readouterr().err      # which one? the user is told the names
    rc = main(["--source", str(bag), "--topic", "/rear/image_raw", "--frames", "0", "--output", str(out),
               "--weights", str(weights), "--device", "cpu", "--timeout", "60"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 2 <= summary["frames"] <= 3 and summary["image_size"] == [80, 48]


def test_demo_errors_are_one_clear_message(tmp_path, capsys):
    """Configuration problems exit 2, as in every tool and node (test/tools/test_exit_codes.py)."""
    assert main(["--weights", str(tmp_path / "none.pt"), "--output", str(tmp_path / "o")]) == 2
    assert "none.pt does not exist" in capsys.readouterr().err
    assert main(["--source", str(tmp_path / "missing.mp4"), "--weights", __file__,
                 "--output", str(tmp_path / "o")]) == 2
    assert "missing.mp4' does not exist" in capsys.readouterr().err
    assert main(["--frames", "0"]) == 2
    assert "synthetic camera never ends" in capsys.readouterr().err
    if not default_weights_path().exists():
        assert main(["--output", str(tmp_path / "o")]) == 2
        assert "bundled checkpoint" in capsys.readouterr().err


DEMO_TOPICS = {
    "/roadseg_demo/image/compressed": "sensor_msgs/msg/CompressedImage",
    "/roadseg_demo/camera_info": "sensor_msgs/msg/CameraInfo",
    "/roadseg_demo/roadseg/mask/compressed": "sensor_msgs/msg/CompressedImage",
    "/roadseg_demo/roadseg/overlay/compressed": "sensor_msgs/msg/CompressedImage",
    "/roadseg_demo/roadseg/drivable_area": "roadseg_ros/msg/DrivableArea",
    "/roadseg_demo/roadseg/drivable_grid": "nav_msgs/msg/OccupancyGrid",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}


def _read_mcap(path: Path) -> dict[str, list[tuple[int, object]]]:
    """Every message of an MCAP file, read with rosbags' reader and deserialised by rclpy (not our code)."""
    import importlib

    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader

    def get_message(msgtype: str) -> type:
        package, _, name = msgtype.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), name)

    out: dict[str, list[tuple[int, object]]] = {}
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == DEMO_TOPICS
        for connection, time_ns, raw in reader.messages():
            out.setdefault(connection.topic, []).append(
                (time_ns, deserialize_message(raw, get_message(connection.msgtype))))
    return out


def test_demo_leaves_an_mcap_recording_foxglove_and_ros2_bag_can_open(tmp_path, weights, write_frame_folder):
    folder = tmp_path / "cam"
    frames = write_frame_folder(folder, 4)
    out = tmp_path / "demo"
    rc = main(["--source", str(folder), "--frames", "0", "--rate", "5", "--output", str(out),
               "--weights", str(weights), "--device", "cpu", "--timeout", "60", "--lossless-recording"])
    assert rc == 0
    mcap = out / "demo.mcap"
    assert mcap.is_file() and not any(p.name.startswith(".demo") for p in out.iterdir())
    assert mcap.read_bytes()[:8] == b"\x89MCAP0\r\n"
    messages = _read_mcap(mcap)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mcap"] == "demo.mcap"
    n = summary["frames"]
    assert 3 <= n <= 4
    for topic in ("/roadseg_demo/roadseg/overlay/compressed", "/roadseg_demo/roadseg/drivable_area"):
        assert len(messages[topic]) == n, topic
    assert len(messages["/roadseg_demo/image/compressed"]) == len(messages["/roadseg_demo/camera_info"]) == 4
    assert len(messages["/roadseg_demo/roadseg/mask/compressed"]) >= n
    assert messages["/diagnostics"] and messages["/roadseg_demo/roadseg/drivable_grid"]
    for topic, items in messages.items():
        times = [t for t, _ in items]
        assert times == sorted(times) and len(set(times)) == len(times), topic
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in items]
        assert stamps == sorted(stamps), topic
    # The input frames come back pixel for pixel (PNG), the mask keeps class ids, the overlay is JPEG.
    for (_, msg), frame in zip(messages["/roadseg_demo/image/compressed"], frames, strict=True):
        assert msg.format == "png"
        decoded = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(decoded, frame)
    mask = messages["/roadseg_demo/roadseg/mask/compressed"][0][1]
    decoded = cv2.imdecode(np.frombuffer(mask.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.ndim == 2 and decoded.shape == frames[0].shape[:2] and decoded.max() < 11
    assert messages["/roadseg_demo/roadseg/overlay/compressed"][0][1].format == "jpeg"


def test_foxglove_layout_shows_topics_the_demo_records():
    """config/roadseg.foxglove.json: every panel is placed, and every topic it shows is in demo.mcap
    (DEMO_TOPICS is what the recording test above finds in the real file)."""
    root = Path(__file__).resolve().parents[2]
    layout = json.loads((root / "config" / "roadseg.foxglove.json").read_text())
    panels = layout["configById"]

    def placed(node) -> set[str]:
        return {node} if isinstance(node, str) else placed(node["first"]) | placed(node["second"])

    assert placed(layout["layout"]) == set(panels)
    shown = set()
    for panel_id, config in panels.items():
        kind = panel_id.split("!")[0]
        if kind == "Image":
            shown |= {config["imageMode"]["imageTopic"], config["imageMode"]["calibrationTopic"]}
        elif kind == "3D":
            shown |= set(config["topics"])
        elif kind == "Plot":
            shown |= {p["value"].split(".")[0] for p in config["paths"]}
            fields = {p["value"].split(".", 1)[1] for p in config["paths"]}
            from roadseg_ros.msg import DrivableArea
            assert fields <= set(DrivableArea.get_fields_and_field_types()), fields
        elif kind == "RawMessages":
            shown.add(config["topicPath"])
        elif kind == "DiagnosticSummary":
            shown.add(config["topicToRender"])
    assert shown <= set(DEMO_TOPICS), shown - set(DEMO_TOPICS)
    assert {"/roadseg_demo/roadseg/overlay/compressed", "/roadseg_demo/roadseg/drivable_grid",
            "/roadseg_demo/roadseg/drivable_area"} <= shown


def _masks_by_input(messages: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input frame, mask) pairs of a demo recording, joined by stamp (a mask carries its input's stamp)."""
    def decode(msg, flags):
        return cv2.imdecode(np.frombuffer(msg.data, np.uint8), flags)

    inputs = {(m.header.stamp.sec, m.header.stamp.nanosec): decode(m, cv2.IMREAD_COLOR)
              for _, m in messages["/roadseg_demo/image/compressed"]}
    return [(inputs[(m.header.stamp.sec, m.header.stamp.nanosec)], decode(m, cv2.IMREAD_UNCHANGED))
            for _, m in messages["/roadseg_demo/roadseg/mask/compressed"]]


def test_round_trip_record_then_replay_gives_the_same_masks(tmp_path, weights):
    """The regression test to copy: record a run to MCAP, play the recording back into the node
    through camera_source, and get the same masks (same weights, CPU, deterministic)."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["--frames", "4", "--rate", "10", "--width", "96", "--height", "64", "--output", str(first),
                 "--weights", str(weights), "--device", "cpu", "--timeout", "90",
                 "--lossless-recording"]) == 0
    assert main(["--source", str(first / "demo.mcap"), "--topic", "/roadseg_demo/image/compressed",
                 "--frames", "0", "--output", str(second), "--weights", str(weights), "--device", "cpu",
                 "--timeout", "90", "--lossless-recording"]) == 0
    recorded = _masks_by_input(_read_mcap(first / "demo.mcap"))
    replayed = _masks_by_input(_read_mcap(second / "demo.mcap"))
    assert len(recorded) >= 3 and len(replayed) >= 3
    compared = 0
    for frame, mask in replayed:
        same_input = [m for f, m in recorded if np.array_equal(f, frame)]
        if same_input:                          # (a frame the first run dropped has no recorded mask)
            np.testing.assert_array_equal(mask, same_input[0])
            compared += 1
    assert compared >= 2, f"only {compared} replayed frames matched a recorded input"


def test_default_recording_stores_the_input_as_jpeg(tmp_path, weights, write_frame_folder):
    """Without --lossless-recording the input is JPEG (a fraction of PNG's size on camera frames), close
    to the frame the node was given."""
    folder = tmp_path / "cam"
    frames = write_frame_folder(folder, 3)
    out = tmp_path / "demo"
    assert main(["--source", str(folder), "--frames", "0", "--rate", "5", "--output", str(out),
                 "--weights", str(weights), "--device", "cpu", "--timeout", "60"]) == 0
    images = _read_mcap(out / "demo.mcap")["/roadseg_demo/image/compressed"]
    assert len(images) == 3
    for (_, msg), frame in zip(images, frames, strict=True):
        assert msg.format == "jpeg"
        decoded = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == frame.shape
        assert np.abs(decoded.astype(np.int16) - frame).mean() < 8
