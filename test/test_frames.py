"""roadseg_ros.frames: image folders, videos and the synthetic camera as frame sources."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from roadseg_ros.config import IMAGE_EXTENSIONS
from roadseg_ros.frames import FrameSource, SourceError, VideoReader, image_files


def test_folder_source_sorted_and_non_looping(tmp_path, write_frame_folder):
    frames = write_frame_folder(tmp_path / "cam", 3)
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



def test_image_files_are_the_shared_extensions_in_name_order(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.pgm", "d.txt", "e.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()                    # a folder named like an image is no image
    assert [p.name for p in image_files(tmp_path)] == ["a.jpg", "b.PNG", "c.pgm"]
    assert ".pgm" in IMAGE_EXTENSIONS and ".mp4" not in IMAGE_EXTENSIONS


def test_video_reader_reports_rate_and_count(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (32, 24))
    for _ in range(3):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    with VideoReader(path) as video:
        assert video.fps == pytest.approx(12.0) and video.frame_count == 3
        assert len(list(video)) == 3
    with pytest.raises(SourceError, match="cannot open the video"):
        VideoReader(tmp_path / "nothing.mp4")


def test_bag_source_loops_with_increasing_times_and_a_scaled_camera(tmp_path, write_bag):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(3)]
    bag = write_bag(tmp_path / "drive", frames)
    source = FrameSource(str(bag), width=32, height=24, loop=True)
    assert source.kind == "bag" and source.bag.topic == "/cam/image_raw"
    it = source.source_frames()
    got = [next(it) for _ in range(7)]
    assert [f.image.shape for f in got] == [(24, 32, 3)] * 7
    times = [f.time_ns for f in got]
    assert np.diff(times).tolist() == [100_000_000] * 6            # the second pass follows the first
    assert got[0].camera.k[0] == pytest.approx(200.0) and got[0].camera.k[2] == pytest.approx(16.0)
    np.testing.assert_array_equal(got[3].image, got[0].image)
    once = FrameSource(str(next(bag.glob("*.mcap"))), loop=False)
    for image, original in zip(once.frames(), frames, strict=True):
        np.testing.assert_array_equal(image, original)


def test_bag_source_errors_name_the_problem(tmp_path, write_bag):
    bag = write_bag(tmp_path / "drive", [np.zeros((4, 6, 3), np.uint8)] * 2, encodings=["bgr8", "nope16"])
    with pytest.raises(SourceError, match="no topic /x"):
        FrameSource(str(bag), topic="/x")
    with pytest.raises(SourceError, match="topic 'cam' is for recordings"):
        FrameSource("synthetic", topic="cam")
    frames = FrameSource(str(bag), loop=False).frames()
    next(frames)
    with pytest.raises(SourceError, match="frame 1: .*nope16"):
        next(frames)
