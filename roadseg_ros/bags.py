"""Recorded drives: camera frames out of a rosbag2 recording, without ROS.

Perception is tested on recorded drives before it goes on a vehicle, and the recording
format of ROS 2 is rosbag2: a folder with ``metadata.yaml`` and sqlite3 (``.db3``) or MCAP
storage, or a single ``.mcap`` file as Foxglove and ``ros2 bag`` write it. This module
reads them with `rosbags <https://gitlab.com/ternaris/rosbags>`_, chosen over ``mcap`` +
``mcap-ros2-support`` because it is pure Python, reads *and* writes both storages (and
bag folders, not only MCAP files) and brings its own CDR typestore, so neither a ROS
install nor our message packages are needed: a laptop without ROS plays a bag too.

:class:`BagReader` plays one image topic (``sensor_msgs/Image`` or
``sensor_msgs/CompressedImage``) in recorded order, each frame with its recorded time
and the latest ``camera_info`` of the same camera when the bag has one. Every problem
(no such topic, several image topics and none chosen, a truncated or corrupt file, an
image encoding nobody knows) is a :class:`BagError` whose message is one line naming it;
frames yielded before the problem stay yielded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roadseg_ros.config import one_line
from roadseg_ros.image_codec import ImageFormatError, decode_compressed, decode_image_msg

__all__ = ["BagError", "BagReader", "BagFrame", "CameraModel", "McapWriter", "is_bag", "IMAGE_TYPES",
           "CAMERA_INFO_TYPE"]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
BAG_FILE_SUFFIXES = (".mcap", ".db3")


class BagError(RuntimeError):
    """A recording that cannot be played as asked; the message is one line naming the problem."""


def is_bag(path: Path) -> bool:
    """Whether ``path`` is a rosbag2 folder (it holds ``metadata.yaml``) or a single .mcap/.db3 file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.suffix.lower() in BAG_FILE_SUFFIXES


@dataclass(frozen=True)
class CameraModel:
    """The intrinsics of a recorded ``camera_info``: row-major 3x3 ``k`` for ``width`` x ``height``."""

    k: tuple[float, ...]
    width: int
    height: int

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera for frames resized to ``width`` x ``height`` (focal lengths and centre scale)."""
        if (width, height) == (self.width, self.height) or not self.width or not self.height:
            return self
        sx, sy = width / self.width, height / self.height
        k = list(self.k)
        k[0], k[1], k[2] = k[0] * sx, k[1] * sx, k[2] * sx
        k[4], k[5] = k[4] * sy, k[5] * sy
        return CameraModel(tuple(k), width, height)


@dataclass(frozen=True)
class BagFrame:
    """One recorded image: BGR pixels, when it was recorded (ns), its header, its camera if known."""

    image: np.ndarray
    time_ns: int
    stamp_ns: int
    frame_id: str
    camera: CameraModel | None


def _info_topic_for(image_topic: str) -> str:
    """Where a camera driver puts the camera_info of ``image_topic`` (image_transport's convention)."""
    base = image_topic.rsplit("/", 1)[0] if "/" in image_topic.strip("/") else ""
    if image_topic.endswith("/compressed"):      # .../image/compressed -> .../camera_info
        base = image_topic[: -len("/compressed")].rsplit("/", 1)[0]
    return f"{base}/camera_info"


class BagReader:
    """One image topic of a rosbag2 recording, played in recorded order.

    ``topic`` empty: the recording's only image topic; with several, :class:`BagError`
    lists them. Opening reads the recording's index only; :meth:`frames` reads the
    messages (each call is a new pass from the start).
    """

    def __init__(self, path: Path | str, topic: str = "") -> None:
        from rosbags.rosbag2 import Reader
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path).expanduser()
        self._reader_class = Reader
        self._typestore = get_typestore(Stores.LATEST)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        try:
            with Reader(self.path) as reader:
                topics = {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()}
                self.duration_ns = int(reader.duration) if reader.message_count else 0
        except Exception as exc:   # rosbags raises several types for unreadable files
            raise BagError(f"bag {self.path} cannot be opened (truncated, corrupt or not a rosbag2 "
                           f"recording): {one_line(exc)}") from None
        self.image_topics = {t: typ for t, (typ, _) in sorted(topics.items()) if typ in IMAGE_TYPES}
        if topic:
            topic = "/" + topic.lstrip("/")
            if topic not in topics:
                raise BagError(f"bag {self.path} has no topic {topic}; image topics: "
                               f"{', '.join(self.image_topics) or 'none'}")
            if topics[topic][0] not in IMAGE_TYPES:
                raise BagError(f"bag {self.path}: topic {topic} is {topics[topic][0]}, not an image; image "
                               f"topics: {', '.join(self.image_topics) or 'none'}")
        elif len(self.image_topics) == 1:
            topic = next(iter(self.image_topics))
        elif not self.image_topics:
            raise BagError(f"bag {self.path} holds no sensor_msgs/Image or CompressedImage topic "
                           f"(topics: {', '.join(sorted(topics)) or 'none'})")
        else:
            listed = ", ".join(f"{t} ({typ.rsplit('/', 1)[-1]})" for t, typ in self.image_topics.items())
            raise BagError(f"bag {self.path} holds several image topics, choose one with topic: {listed}")
        self.topic = topic
        self.msgtype = topics[topic][0]
        self.count = topics[topic][1]
        info = _info_topic_for(topic)
        self.info_topic = info if topics.get(info, ("",))[0] == CAMERA_INFO_TYPE else None

    def _decode(self, msg: Any) -> np.ndarray:
        if self.msgtype.endswith("CompressedImage"):
            image, order = decode_compressed(msg.format, msg.data)
        else:
            image, order = decode_image_msg(msg)
        return np.ascontiguousarray(image[..., ::-1] if order == "rgb" else image)

    def frames(self) -> Iterator[BagFrame]:
        """Yield the topic's frames (BGR uint8) with their camera, in recorded order; one pass."""
        where = f"bag {self.path}, topic {self.topic}"
        camera: CameraModel | None = None
        done = 0
        try:
            reader = self._reader_class(self.path)
            reader.open()
        except Exception as exc:
            raise BagError(f"{where}: cannot be opened: {one_line(exc)}") from None
        try:
            wanted = [c for c in reader.connections if c.topic in (self.topic, self.info_topic)]
            messages = reader.messages(connections=wanted)
            while True:
                try:
                    item = next(messages, None)
                    if item is None:
                        return
                    connection, time_ns, raw = item
                    msg = self._typestore.deserialize_cdr(raw, connection.msgtype)
                except Exception as exc:   # truncated chunk, bad CRC, undecodable CDR, ...
                    raise BagError(f"{where}: truncated or corrupt after {done} frames: "
                                   f"{one_line(exc)}") from None
                if connection.topic != self.topic:
                    camera = CameraModel(tuple(float(v) for v in msg.k), int(msg.width), int(msg.height))
                    continue
                try:
                    image = self._decode(msg)
                except ImageFormatError as exc:
                    raise BagError(f"{where}: frame {done}: {one_line(exc)}") from None
                stamp = msg.header.stamp
                done += 1
                yield BagFrame(image, int(time_ns), int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec),
                               str(msg.header.frame_id), camera)
        finally:
            reader.close()


class McapWriter:
    """An MCAP recording (rosbag2 storage ``mcap``) of serialised (CDR) messages, written with rosbags.

    The file is what ``ros2 bag play file.mcap`` and Foxglove open. rosbags writes a bag
    *folder*; the recording is made in a hidden folder beside ``path`` and its ``.mcap``
    moved to ``path`` on :meth:`close`, so a finished run leaves one file (a crashed one,
    the hidden folder). Log times are made strictly increasing, as players expect.
    """

    def __init__(self, path: Path | str) -> None:
        import shutil

        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path).expanduser()
        self._folder = self.path.parent / f".{self.path.stem}.recording"
        shutil.rmtree(self._folder, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._typestore = get_typestore(Stores.LATEST)
        self._writer = Writer(self._folder, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._last_ns = 0
        self.closed = False

    def add_topic(self, topic: str, msgtype: str, msgdef: str | None = None) -> None:
        """Declare ``topic`` of ``msgtype`` (``pkg/msg/Name``); ``msgdef``: .msg text if rosbags lacks it."""
        if topic in self._connections:
            return
        if msgtype not in self._typestore.fielddefs:
            if msgdef is None:
                raise BagError(f"no definition of {msgtype} for the recording")
            from rosbags.typesys import get_types_from_msg

            self._typestore.register(get_types_from_msg(msgdef, msgtype))
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
        self.counts[topic] = 0

    def write(self, topic: str, time_ns: int, cdr: bytes) -> None:
        """Append one serialised message of ``topic`` (declared first) logged at ``time_ns``."""
        if self.closed:
            return
        self._last_ns = max(int(time_ns), self._last_ns + 1)
        self._writer.write(self._connections[topic], self._last_ns, cdr)
        self.counts[topic] += 1

    def close(self) -> Path:
        """Finish the file and move it to ``path``; safe to call more than once."""
        import shutil

        if not self.closed:
            self.closed = True
            self._writer.close()
            written = next(self._folder.glob("*.mcap"))
            written.replace(self.path)
            shutil.rmtree(self._folder, ignore_errors=True)
        return self.path
