"""Where frames come from: image folders, video files, recordings and the synthetic road, without ROS.

The camera source node plays these as a live camera and ``roadseg-infer`` segments them
offline; both read folders, videos and rosbag2 recordings (:mod:`roadseg_ros.bags`)
through the functions here, so they agree on which files are images, in which order they
come and how a video or a bag is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from roadseg_ros.bags import BagError, BagReader, CameraModel, is_bag
from roadseg_ros.config import IMAGE_EXTENSIONS

__all__ = ["SourceError", "image_files", "VideoReader", "FrameSource", "SourceFrame", "SYNTHETIC_SIZE"]

#: Size of the synthetic camera's frames when none is asked for (the demo's).
SYNTHETIC_SIZE = (640, 360)


class SourceError(RuntimeError):
    """A frame source that cannot be opened or read; the message names it."""


def image_files(folder: Path) -> list[Path]:
    """The images in ``folder`` (by :data:`~roadseg_ros.config.IMAGE_EXTENSIONS`), sorted by name.

    Sorted by file name because recorded frames are numbered (KITTI ``000123.png``, CARLA
    ``CameraRGB/000123.png``), so name order is time order.
    """
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


class VideoReader:
    """An opened video file: its frame rate, its frame count (when the container says) and its frames.

    Raises :class:`SourceError` when OpenCV cannot open it. Iterating yields BGR uint8
    frames until the video ends; :meth:`close` (or leaving a ``with`` block) releases it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"{self.path}: cannot open the video (corrupt or unsupported codec)")

    @property
    def fps(self) -> float:
        """Frames per second from the container; 30 when it gives none (some AVI/MJPEG files)."""
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0

    @property
    def frame_count(self) -> int | None:
        return int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            ok, frame = self._capture.read()
            if not ok:
                return
            yield frame

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class SourceFrame:
    """A frame with what a recording knows about it: recorded time (ns, monotonic across loops) and camera.

    Both are ``None`` for sources without them (synthetic, folders, videos).
    """

    image: np.ndarray
    time_ns: int | None = None
    camera: CameraModel | None = None


class FrameSource:
    """Iterates BGR uint8 frames from ``"synthetic"``, images, a video or a rosbag2 recording.

    ``width``/``height`` (both or neither) resize folder, video and bag frames and set the
    synthetic camera's size; ``loop`` restarts a folder, video or bag at its end (the
    synthetic road never ends). The synthetic camera drives ``metres_per_frame`` down one
    road per frame, seeded by ``seed``. A recording (a rosbag2 folder or a .mcap/.db3 file)
    plays its image topic ``topic`` (empty: its only one) with recorded times and camera.
    """

    def __init__(self, source: str, *, width: int = 0, height: int = 0, loop: bool = True, seed: int = 0,
                 metres_per_frame: float = 0.8, topic: str = "") -> None:
        self.source = source
        self.metres_per_frame = float(metres_per_frame)
        self.width, self.height = int(width), int(height)
        self.loop = loop
        self.seed = int(seed)
        if (self.width > 0) != (self.height > 0):
            raise SourceError(f"set both width and height (or neither), got {self.width}x{self.height}")
        self._files: list[Path] = []
        self.bag: BagReader | None = None
        path = Path(source).expanduser()
        if topic and (source == "synthetic" or not is_bag(path)):
            raise SourceError(f"topic {topic!r} is for recordings (rosbag2 folder, .mcap, .db3); "
                              f"{source!r} is not one")
        if source == "synthetic":
            self.kind = "synthetic"
            return
        if not path.exists():
            raise SourceError(f"camera source {source!r} does not exist; give 'synthetic', a video file "
                              f"or a folder of images ({', '.join(IMAGE_EXTENSIONS)})")
        self.path = path
        if is_bag(path):
            self.kind = "bag"
            try:
                self.bag = BagReader(path, topic)
            except BagError as exc:
                raise SourceError(str(exc)) from None
            if self.bag.count == 0:
                raise SourceError(f"bag {path}: topic {self.bag.topic} holds no messages")
            return
        if path.is_dir():
            self.kind = "folder"
            self._files = image_files(path)
            if not self._files:
                raise SourceError(f"image folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            return
        self.kind = "video"
        try:
            with VideoReader(path) as video:
                ok = next(iter(video), None) is not None
        except SourceError:
            ok = False
        if not ok:
            raise SourceError(f"video file {path} cannot be opened or holds no frames "
                              "(unsupported format or corrupt)")

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        if self.width > 0 and (frame.shape[1], frame.shape[0]) != (self.width, self.height):
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return frame

    def frames(self) -> Iterator[np.ndarray]:
        """Yield frames (BGR, HxWx3 uint8) until the source ends (endless if it loops)."""
        if self.kind == "bag":
            for frame in self.source_frames():
                yield frame.image
            return
        if self.kind == "synthetic":
            yield from self._synthetic()
            return
        while True:
            if self.kind == "folder":
                for f in self._files:
                    frame = cv2.imread(str(f), cv2.IMREAD_COLOR)
                    if frame is None:
                        raise SourceError(f"image {f} cannot be read (corrupt or not an image)")
                    yield self._fit(frame)
            else:
                with VideoReader(self.path) as video:
                    for frame in video:
                        yield self._fit(frame)
            if not self.loop:
                return

    def source_frames(self) -> Iterator[SourceFrame]:
        """Like :meth:`frames`, each frame with its recorded time and camera when the source has them.

        A looping recording keeps its times increasing: each pass starts one recorded frame
        interval after the previous pass ended. A bag that turns out unreadable part-way
        raises :class:`SourceError` after the frames before the problem.
        """
        if self.kind != "bag":
            for image in self.frames():
                yield SourceFrame(image)
            return
        assert self.bag is not None
        start: int | None = None     # recorded time the current pass is shifted to start at
        while True:
            first = last = gap = None
            try:
                for frame in self.bag.frames():
                    if first is None:
                        first = frame.time_ns
                        start = first if start is None else start
                    elif last is not None:
                        gap = frame.time_ns - last
                    last = frame.time_ns
                    image = self._fit(frame.image)
                    camera = frame.camera.scaled(image.shape[1], image.shape[0]) if frame.camera else None
                    yield SourceFrame(image, start + frame.time_ns - first, camera)
            except BagError as exc:
                raise SourceError(str(exc)) from None
            if not self.loop or first is None:
                return
            start += (last - first) + (gap or 100_000_000)

    def _synthetic(self) -> Iterator[np.ndarray]:
        from roadseg_ros.data.synthetic import render_scene  # the scene generator, only needed here

        w, h = (self.width, self.height) if self.width > 0 else SYNTHETIC_SIZE
        i = 0
        while True:
            # One road, driven along: frame i is i * metres_per_frame further down it.
            rgb, _ = render_scene(self.seed, width=w, height=h, distance=i * self.metres_per_frame)
            yield np.ascontiguousarray(rgb[..., ::-1])
            i += 1
