"""roadseg_ros.bags on real rosbag2 recordings written by rosbags' Writer (MCAP and sqlite3)."""

from __future__ import annotations

import numpy as np
import pytest

from roadseg_ros.bags import BagError, BagReader, is_bag


def _frames(n: int, h: int = 12, w: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_plays_a_bag_folder_in_recorded_order_with_its_camera(tmp_path, write_bag, storage):
    frames = _frames(3)
    bag = write_bag(tmp_path / "drive", frames, storage=storage)
    assert is_bag(bag)
    reader = BagReader(bag)
    assert reader.topic == "/cam/image_raw" and reader.count == 3 and reader.info_topic == "/cam/camera_info"
    got = list(reader.frames())
    assert len(got) == 3
    for i, (frame, original) in enumerate(zip(got, frames)):
        np.testing.assert_array_equal(frame.image, original)
        assert frame.frame_id == "cam" and frame.camera is not None and frame.camera.k[0] == 100.0 + i
    times = [f.time_ns for f in got]
    assert np.diff(times).tolist() == [100_000_000, 100_000_000]
    assert got[0].stamp_ns == times[0]


def test_a_single_mcap_file_and_compressed_images(tmp_path, write_bag):
    frames = _frames(2)
    bag = write_bag(tmp_path / "drive", frames, topic="/cam/image/compressed", compressed=True)
    mcap = next(bag.glob("*.mcap"))
    assert is_bag(mcap)
    reader = BagReader(mcap)
    assert reader.topic == "/cam/image/compressed" and reader.info_topic == "/cam/camera_info"
    for frame, original in zip(reader.frames(), frames, strict=True):
        np.testing.assert_array_equal(frame.image, original)      # PNG: lossless


def test_several_image_topics_are_listed_and_one_is_chosen(tmp_path, write_bag):
    bag = write_bag(tmp_path / "drive", _frames(2), other_image_topic="/rear/image_raw")
    with pytest.raises(BagError, match="several image topics") as info:
        BagReader(bag)
    assert "/cam/image_raw (Image)" in str(info.value) and "/rear/image_raw (Image)" in str(info.value)
    assert "\n" not in str(info.value)
    assert BagReader(bag, topic="rear/image_raw").topic == "/rear/image_raw"


def test_missing_topic_and_non_image_topic_name_the_problem(tmp_path, write_bag):
    bag = write_bag(tmp_path / "drive", _frames(1))
    with pytest.raises(BagError, match=r"has no topic /front/image; image topics: /cam/image_raw"):
        BagReader(bag, topic="/front/image")
    with pytest.raises(BagError, match=r"/cam/camera_info is sensor_msgs/msg/CameraInfo, not an image"):
        BagReader(bag, topic="/cam/camera_info")


def test_unknown_encoding_stops_with_one_line_after_the_frames_before_it(tmp_path, write_bag):
    frames = _frames(3)
    bag = write_bag(tmp_path / "drive", frames, encodings=["bgr8", "bgr8", "weird42"])
    got = []
    with pytest.raises(BagError) as info:
        for frame in BagReader(bag).frames():
            got.append(frame)
    assert len(got) == 2
    message = str(info.value)
    assert "frame 2" in message and "weird42" in message and "/cam/image_raw" in message
    assert "\n" not in message


def test_truncated_and_corrupt_recordings_give_one_line(tmp_path, write_bag):
    bag = write_bag(tmp_path / "drive", _frames(3))
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    truncated = tmp_path / "cut.mcap"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(BagError, match="cut.mcap cannot be opened") as info:
        BagReader(truncated)
    assert "\n" not in str(info.value)
    garbage = tmp_path / "noise.mcap"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(BagError, match="noise.mcap cannot be opened"):
        BagReader(garbage)
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nope.mcap")


def test_mcap_writer_leaves_one_file_with_increasing_log_times(tmp_path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from roadseg_ros.bags import McapWriter

    store = get_typestore(Stores.LATEST)
    string_t = store.types["std_msgs/msg/String"]
    path = tmp_path / "out" / "run.mcap"
    writer = McapWriter(path)
    writer.add_topic("/a", "std_msgs/msg/String")
    writer.add_topic("/b", "my_pkg/msg/Thing", "uint32 count\nstring name\n")   # a type rosbags lacks
    thing_t = writer._typestore.types["my_pkg/msg/Thing"]
    for i in range(3):    # equal and decreasing times are made strictly increasing
        writer.write("/a", 1000, store.serialize_cdr(string_t(data=f"m{i}"), "std_msgs/msg/String"))
    writer.write("/b", 5, writer._typestore.serialize_cdr(thing_t(count=7, name="x"), "my_pkg/msg/Thing"))
    assert writer.close() == path and writer.close() == path
    assert [p.name for p in path.parent.iterdir()] == ["run.mcap"]
    with Reader(path) as reader:
        got = [(c.topic, t) for c, t, _ in reader.messages()]
    assert got == [("/a", 1000), ("/a", 1001), ("/a", 1002), ("/b", 1003)]
    assert writer.counts == {"/a": 3, "/b": 1}
