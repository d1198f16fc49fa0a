"""``camera_source``: play a video file, an image folder or synthetic scenes as a live camera.

Without a robot or a simulator at hand, the segmentation node still needs a camera: this
node publishes ``image`` (sensor_msgs/Image) and ``camera_info`` at a fixed rate from

* ``source: synthetic`` - the project's synthetic road scenes (no data needed; the demo),
* ``source: <video file>`` - anything OpenCV can decode (mp4, avi, ...),
* ``source: <folder>`` - the images in it in sorted file-name order, so recorded KITTI
  or CARLA frames (``CameraRGB/``) replay as a camera.

Both messages of a frame carry the same header (stamp = publish time, ``frame_id``), as a
camera driver's would, so the node can pair them. The intrinsics come from the
``camera_matrix`` parameter when given, else from an ideal pinhole with the horizontal
field of view ``fov_deg`` (how CARLA cameras are described).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from roadseg_ros.carla_utils import camera_info_fields
from roadseg_ros.image_codec import SUPPORTED_ENCODINGS, fill_image_msg
from roadseg_ros.nodes.common import declare_defaults

#: File name endings read from an image folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")

#: Default parameters (name -> value); the launch-file test checks launch files against these.
DEFAULT_PARAMETERS: dict[str, object] = {
    "source": "synthetic",
    "rate_hz": 10.0,
    "width": 0,              # 0: the source's own size (synthetic: 640)
    "height": 0,             # 0: the source's own size (synthetic: 360)
    "frame_id": "camera",
    "encoding": "bgr8",
    "loop": True,
    "max_frames": 0,         # 0: endless (or until a non-looping source ends)
    "fov_deg": 90.0,
    "camera_matrix": [0.0],  # 9 values (row-major K) override fov_deg; [0.0]: unset
    "reliability": "reliable",
    "qos_depth": 5,
    "seed": 0,
    "speed_mps": 8.0,        # synthetic: how fast the virtual car drives down the road
    "wait_for_subscribers": False,  # hold frame 0 until image and camera_info have subscribers (replays)
}


class SourceError(RuntimeError):
    """A frame source that cannot be opened or read; the message names it."""


class FrameSource:
    """Iterates BGR uint8 frames from one of the three kinds of source (no ROS here)."""

    def __init__(self, source: str, *, width: int = 0, height: int = 0, loop: bool = True, seed: int = 0,
                 metres_per_frame: float = 0.8):
        self.source = source
        self.metres_per_frame = float(metres_per_frame)
        self.width, self.height = int(width), int(height)
        self.loop = loop
        self.seed = int(seed)
        if (self.width > 0) != (self.height > 0):
            raise SourceError(f"set both width and height (or neither), got {self.width}x{self.height}")
        if source == "synthetic":
            self.kind = "synthetic"
            self._files: list[Path] = []
            from roadseg_ros.data.synthetic import render_scene  # torch-free, only needed here
            self._render = render_scene
            return
        path = Path(source).expanduser()
        if not path.exists():
            raise SourceError(f"camera source {source!r} does not exist; give 'synthetic', a video file "
                              f"or a folder of images ({', '.join(IMAGE_EXTENSIONS)})")
        if path.is_dir():
            self.kind = "folder"
            self._files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not self._files:
                raise SourceError(f"image folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        else:
            self.kind = "video"
            capture = cv2.VideoCapture(str(path))
            ok = capture.isOpened()
            ok = ok and capture.read()[0]
            capture.release()
            if not ok:
                raise SourceError(f"video file {path} cannot be opened or holds no frames "
                                  "(unsupported format or corrupt)")
        self.path = path

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        if self.width > 0 and (frame.shape[1], frame.shape[0]) != (self.width, self.height):
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return frame

    def frames(self) -> Iterator[np.ndarray]:
        """Yield frames (BGR, HxWx3 uint8) until the source ends (endless if it loops)."""
        if self.kind == "synthetic":
            w, h = (self.width, self.height) if self.width > 0 else (640, 360)
            i = 0
            while True:
                # One road, driven along: frame i is i * metres_per_frame further down it.
                rgb, _ = self._render(self.seed, width=w, height=h, distance=i * self.metres_per_frame)
                yield np.ascontiguousarray(rgb[..., ::-1])
                i += 1
        while True:
            if self.kind == "folder":
                for f in self._files:
                    frame = cv2.imread(str(f), cv2.IMREAD_COLOR)
                    if frame is None:
                        raise SourceError(f"image {f} cannot be read (corrupt or not an image)")
                    yield self._fit(frame)
            else:
                capture = cv2.VideoCapture(str(self.path))
                try:
                    while True:
                        ok, frame = capture.read()
                        if not ok:
                            break
                        yield self._fit(frame)
                finally:
                    capture.release()
            if not self.loop:
                return


class CameraSource(Node):
    """Publishes ``image`` and ``camera_info`` from a :class:`FrameSource` at ``rate_hz``.

    ``finished`` turns true once ``max_frames`` were published or a non-looping source
    ended; ``main`` exits then, and the demo watches it.
    """

    def __init__(self, **node_kwargs) -> None:
        node_kwargs.setdefault("node_name", "camera_source")
        super().__init__(**node_kwargs)
        p = declare_defaults(self, DEFAULT_PARAMETERS)
        if p["rate_hz"] <= 0:
            raise ValueError(f"rate_hz must be > 0, got {p['rate_hz']}")
        if p["encoding"] not in SUPPORTED_ENCODINGS:
            raise ValueError(f"encoding {p['encoding']!r} is not supported; "
                             f"valid: {', '.join(SUPPORTED_ENCODINGS)}")
        reliability = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
        if p["reliability"] not in reliability:
            raise ValueError(f"reliability {p['reliability']!r} is not valid; choose reliable or best_effort")
        k = [float(v) for v in p["camera_matrix"]]
        if k != [0.0] and len(k) != 9:
            raise ValueError(f"camera_matrix needs 9 values (row-major 3x3 K), got {len(k)}")
        self._camera_matrix = k if len(k) == 9 else None
        self.source = FrameSource(p["source"], width=p["width"], height=p["height"], loop=p["loop"],
                                  seed=p["seed"], metres_per_frame=p["speed_mps"] / p["rate_hz"])
        self._frames = self.source.frames()
        self._params = p
        self.max_frames = int(p["max_frames"])
        self.frames_published = 0
        self.finished = False
        self._info_cache: tuple[tuple[int, int], CameraInfo] | None = None
        qos = QoSProfile(depth=int(p["qos_depth"]), reliability=reliability[p["reliability"]])
        self.image_pub = self.create_publisher(Image, "image", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self.timer = self.create_timer(1.0 / p["rate_hz"], self._tick)
        self.get_logger().info(f"publishing {self.source.kind} source {p['source']!r} at {p['rate_hz']} Hz "
                               f"on {self.image_pub.topic_name} ({p['encoding']})")

    def camera_info(self, width: int, height: int) -> CameraInfo:
        """CameraInfo for a frame of this size (cached; the header is filled per frame)."""
        if self._info_cache is not None and self._info_cache[0] == (width, height):
            return self._info_cache[1]
        fields = camera_info_fields(width, height, float(self._params["fov_deg"]))
        if self._camera_matrix is not None:
            fields["k"] = self._camera_matrix
            K = self._camera_matrix
            fields["p"] = [K[0], K[1], K[2], 0.0, K[3], K[4], K[5], 0.0, K[6], K[7], K[8], 0.0]
        info = CameraInfo()
        info.width, info.height = fields["width"], fields["height"]
        info.distortion_model = fields["distortion_model"]
        info.d, info.k, info.r, info.p = fields["d"], fields["k"], fields["r"], fields["p"]
        self._info_cache = ((width, height), info)
        return info

    def _tick(self) -> None:
        if self.finished:
            return
        if self._params["wait_for_subscribers"] and self.frames_published == 0 and (
                self.image_pub.get_subscription_count() == 0 or self.info_pub.get_subscription_count() == 0):
            return
        try:
            frame = next(self._frames)
        except StopIteration:
            self._finish(f"source ended after {self.frames_published} frames")
            return
        except SourceError as exc:
            self.get_logger().error(str(exc))
            self._finish("source error")
            return
        stamp = self.get_clock().now().to_msg()
        msg = fill_image_msg(Image(), frame, self._params["encoding"], color_order="bgr")
        msg.header.stamp = stamp
        msg.header.frame_id = self._params["frame_id"]
        info = self.camera_info(msg.width, msg.height)
        info.header = msg.header
        self.image_pub.publish(msg)
        self.info_pub.publish(info)
        self.frames_published += 1
        if self.max_frames and self.frames_published >= self.max_frames:
            self._finish(f"published max_frames={self.max_frames}")

    def _finish(self, why: str) -> None:
        self.finished = True
        self.timer.cancel()
        self.get_logger().info(f"camera source done: {why}")


def main(args: list[str] | None = None) -> int:
    """Run the node until the source ends (or Ctrl-C); 1 on a bad source or parameter."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = CameraSource()
        except (SourceError, ValueError) as exc:
            print(f"camera_source: error: {exc}", file=sys.stderr)
            return 1
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
        # Give reliable subscribers a moment to fetch the last frames before the writer goes away.
        linger_until = time.monotonic() + 0.5
        while rclpy.ok() and time.monotonic() < linger_until:
            rclpy.spin_once(node, timeout_sec=0.1)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
