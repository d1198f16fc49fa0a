"""Shared test set-up.

Every test session gets its own DDS domain, confined to this host, so that parallel
runs (and other ROS graphs on the machine) never see each other's topics, and its own
cache of converted networks.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import numpy as np
import pytest

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# Converted networks (OpenVINO, ONNX Runtime) are cached per test session, never in the user's cache.
if "ROADSEG_CACHE_DIR" not in os.environ:
    import tempfile
    os.environ["ROADSEG_CACHE_DIR"] = tempfile.mkdtemp(prefix="roadseg-test-cache-")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: tiny nets on a shared 2-core box are slower with OpenMP contention.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the
    previous count is restored afterwards. torch is imported here, not at the top, so test
    modules that never use it do not pay for loading it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def save_tiny_checkpoint():
    """Factory: write a randomly initialised CAMVID11 ``tiny_segnet`` checkpoint to ``path``.

    Tests that only need *a* loadable checkpoint (nodes, demo, tools) use it instead of the
    bundled weights, so they stay fast and do not depend on what was trained.
    """
    import torch

    from roadseg_ros.checkpoint import Checkpoint, save_checkpoint
    from roadseg_ros.classes import CAMVID11
    from roadseg_ros.models import build_model

    def save(path, input_size: tuple[int, int], training: dict | None = None):
        torch.manual_seed(0)
        model = build_model("tiny_segnet", num_classes=CAMVID11.num_classes)
        ckpt = Checkpoint(arch="tiny_segnet", arch_kwargs={}, class_names=list(CAMVID11.class_names),
                          class_colors=list(CAMVID11.class_colors), drivable_classes=[3],
                          mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=input_size,
                          state_dict=model.state_dict(), training=training or {})
        return save_checkpoint(ckpt, path)

    return save


def _write_frame_folder(folder, n: int) -> list[np.ndarray]:
    """n distinct BGR frames as PNGs whose sorted order differs from creation order."""
    import cv2

    folder.mkdir()
    frames = []
    for i in range(n):
        frame = np.zeros((30, 40, 3), np.uint8)
        frame[..., 0] = 20 * i
        frame[i, :, 2] = 255
        frames.append(frame)
    for i in reversed(range(n)):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), frames[i])
    (folder / "notes.txt").write_text("not an image")
    return frames


@pytest.fixture(scope="session")
def write_frame_folder():
    """Factory: ``(folder, n)`` writes n distinct 40x30 BGR PNG frames (plus a text file) and returns them."""
    return _write_frame_folder


def _write_bag(path, frames: list[np.ndarray], *, topic: str = "/cam/image_raw", compressed: bool = False,
               camera_info: bool = True, storage: str = "mcap", period_ns: int = 100_000_000,
               encodings: list[str] | None = None, other_image_topic: str | None = None):
    """Write a real rosbag2 recording with rosbags' Writer (no ROS): ``frames`` (BGR) on ``topic``.

    Image (bgr8, or ``encodings[i]``) or CompressedImage (PNG, lossless, so a test can compare
    pixels); a ``camera_info`` beside the image topic before every frame when ``camera_info``.
    Returns the bag folder.
    """
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    types = store.types
    time_t, header_t = types["builtin_interfaces/msg/Time"], types["std_msgs/msg/Header"]
    image_t, compressed_t = types["sensor_msgs/msg/Image"], types["sensor_msgs/msg/CompressedImage"]
    info_t, roi_t = types["sensor_msgs/msg/CameraInfo"], types["sensor_msgs/msg/RegionOfInterest"]
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    start = 1_700_000_000 * 1_000_000_000
    base = topic[: -len("/compressed")] if compressed else topic
    info_topic = base.rsplit("/", 1)[0] + "/camera_info"
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        msgtype = compressed_t.__msgtype__ if compressed else image_t.__msgtype__
        image_conn = writer.add_connection(topic, msgtype, typestore=store)
        info_conn = (writer.add_connection(info_topic, info_t.__msgtype__, typestore=store)
                     if camera_info else None)
        other = writer.add_connection(other_image_topic, image_t.__msgtype__, typestore=store) \
            if other_image_topic else None
        for i, frame in enumerate(frames):
            t = start + i * period_ns
            header = header_t(stamp=time_t(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000), frame_id="cam")
            h, w = frame.shape[:2]
            if info_conn is not None:
                k = np.array([100.0 + i, 0, w / 2, 0, 100.0 + i, h / 2, 0, 0, 1])
                info = info_t(header=header, height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5),
                              k=k, r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
                              roi=roi_t(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                writer.write(info_conn, t - 1000, store.serialize_cdr(info, info_t.__msgtype__))
            if compressed:
                ok, png = cv2.imencode(".png", frame)
                msg = compressed_t(header=header, format="png", data=png.ravel())
            else:
                encoding = encodings[i] if encodings else "bgr8"
                msg = image_t(header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=w * 3,
                              data=np.ascontiguousarray(frame).ravel())
            writer.write(image_conn, t, store.serialize_cdr(msg, msgtype))
            if other is not None:
                msg = image_t(header=header, height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3,
                              data=np.ascontiguousarray(frame).ravel())
                writer.write(other, t, store.serialize_cdr(msg, image_t.__msgtype__))
    return path


@pytest.fixture(scope="session")
def write_bag():
    """Factory: ``write_bag(path, frames, **options)``, a real rosbag2 recording (see ``_write_bag``)."""
    return _write_bag
