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
                 "--device", "cpu", "--timeout", "60"]) == 1
    assert "several image topics" in capsys.readouterr().err      # which one? the user is told the names
    rc = main(["--source", str(bag), "--topic", "/rear/image_raw", "--frames", "0", "--output", str(out),
               "--weights", str(weights), "--device", "cpu", "--timeout", "60"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 2 <= summary["frames"] <= 3 and summary["image_size"] == [80, 48]


def test_demo_errors_are_one_clear_message(tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "none.pt"), "--output", str(tmp_path / "o")]) == 1
    assert "none.pt does not exist" in capsys.readouterr().err
    assert main(["--source", str(tmp_path / "missing.mp4"), "--weights", __file__,
                 "--output", str(tmp_path / "o")]) == 1
    assert "missing.mp4' does not exist" in capsys.readouterr().err
    assert main(["--frames", "0"]) == 1
    assert "synthetic camera never ends" in capsys.readouterr().err
    if not default_weights_path().exists():
        assert main(["--output", str(tmp_path / "o")]) == 1
        assert "bundled checkpoint" in capsys.readouterr().err
