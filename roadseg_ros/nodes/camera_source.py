"""``camera_source``: play a video file, an image folder or synthetic scenes as a live camera.

Without a robot or a simulator at hand, the segmentation node still needs a camera: this
node publishes ``image`` (sensor_msgs/Image) and ``camera_info`` at a fixed rate from

* ``source: synthetic`` - the project's synthetic road scenes (no data needed; the demo),
* ``source: <video file>`` - anything OpenCV can decode (mp4, avi, ...),
* ``source: <folder>`` - the images in it in sorted file-name order, so recorded KITTI
  or CARLA frames (``CameraRGB/``) replay as a camera;
* ``source: <recording>`` - a rosbag2 folder (sqlite3 or MCAP) or a single ``.mcap`` file:
  its image topic (``topic``; Image or CompressedImage) at the recorded timing scaled
  by ``bag_rate`` (0: at ``rate_hz``), with the recording's camera_info when it has one.

Both messages of a frame carry the same header (stamp = publish time, ``frame_id``), as a
camera driver's would, so the node can pair them. The intrinsics come from the
``camera_matrix`` parameter when given, else from an ideal pinhole with the horizontal
field of view ``fov_deg`` (how CARLA cameras are described); a recording's own
``camera_info`` comes before ``fov_deg``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from roadseg_ros.config import ConfigError
from roadseg_ros.frames import FrameSource, SourceError, SourceFrame
from roadseg_ros.image_codec import fill_image_msg
from roadseg_ros.nodes.common import run_node
from roadseg_ros.nodes.messages import camera_info_msg
from roadseg_ros.nodes.params import CAMERA_SOURCE, declare_parameters

__all__ = ["CameraSource", "FrameSource", "SourceError", "main"]


class CameraSource(Node):
    """Publishes ``image`` and ``camera_info`` from a :class:`FrameSource` at ``rate_hz``.

    ``finished`` turns true once ``max_frames`` were published or a non-looping source
    ended; ``main`` exits then, and the demo watches it.
    """

    def __init__(self, **node_kwargs: Any) -> None:
        node_kwargs.setdefault("node_name", "camera_source")
        super().__init__(**node_kwargs)
        p = declare_parameters(self, CAMERA_SOURCE)
        k = [float(v) for v in p["camera_matrix"]]
        self._camera_matrix = k if len(k) == 9 else None
        try:
            self.source = FrameSource(p["source"], width=p["width"], height=p["height"], loop=p["loop"],
                                      seed=p["seed"], metres_per_frame=p["speed_mps"] / p["rate_hz"],
                                      topic=p["topic"])
        except SourceError as exc:
            raise ConfigError(str(exc)) from None
        reliability = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
        self._frames = self.source.source_frames()
        # A recording at its recorded timing: a short poll that publishes each frame when due.
        self._recorded_timing = self.source.kind == "bag" and p["bag_rate"] > 0
        self._next: SourceFrame | None = None
        self._clock_start: tuple[int, int] | None = None     # (steady ns, recorded ns) of frame 0
        self._params = p
        self.max_frames = int(p["max_frames"])
        self.frames_published = 0
        self.finished = False
        self._info_cache: tuple[tuple, CameraInfo] | None = None
        qos = QoSProfile(depth=int(p["qos_depth"]), reliability=reliability[p["reliability"]])
        self.image_pub = self.create_publisher(Image, "image", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        period = 0.002 if self._recorded_timing else 1.0 / p["rate_hz"]
        self.timer = self.create_timer(period, self._tick)
        how = f"{p['bag_rate']}x recorded timing" if self._recorded_timing else f"{p['rate_hz']} Hz"
        what = f"{p['source']!r} topic {self.source.bag.topic}" if self.source.bag else repr(p["source"])
        self.get_logger().info(f"publishing {self.source.kind} source {what} at {how} "
                               f"on {self.image_pub.topic_name} ({p['encoding']})")

    def camera_info(self, width: int, height: int, recorded_k: tuple[float, ...] | None = None) -> CameraInfo:
        """CameraInfo for a frame of this size (cached; the header is filled per frame).

        ``camera_matrix`` when set, else the recording's K, else the ``fov_deg`` pinhole.
        """
        k = self._camera_matrix or (list(recorded_k) if recorded_k else None)
        key = (width, height, tuple(k) if k else None)
        if self._info_cache is not None and self._info_cache[0] == key:
            return self._info_cache[1]
        info = camera_info_msg(width, height, fov_deg=float(self._params["fov_deg"]), k=k)
        self._info_cache = (key, info)
        return info

    def _due(self, frame: SourceFrame) -> bool:
        """Recorded timing: whether ``frame`` is due now (the first frame always is)."""
        if not self._recorded_timing or frame.time_ns is None:
            return True
        now = time.monotonic_ns()
        if self._clock_start is None:
            self._clock_start = (now, frame.time_ns)
            return True
        steady0, recorded0 = self._clock_start
        return now - steady0 >= (frame.time_ns - recorded0) / float(self._params["bag_rate"])

    def _tick(self) -> None:
        if self.finished:
            return
        if self._params["wait_for_subscribers"] and self.frames_published == 0 and (
                self.image_pub.get_subscription_count() == 0 or self.info_pub.get_subscription_count() == 0):
            return
        try:
            if self._next is None:
                self._next = next(self._frames)
        except StopIteration:
            self._finish(f"source ended after {self.frames_published} frames")
            return
        except SourceError as exc:
            self.get_logger().error(str(exc))
            self._finish("source error")
            return
        if not self._due(self._next):
            return
        frame, self._next = self._next, None
        stamp = self.get_clock().now().to_msg()
        msg = fill_image_msg(Image(), frame.image, self._params["encoding"], color_order="bgr")
        msg.header.stamp = stamp
        msg.header.frame_id = self._params["frame_id"]
        info = self.camera_info(msg.width, msg.height, frame.camera.k if frame.camera else None)
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
    """Run the node until the source ends (or Ctrl-C); 2 on a bad source or parameter."""
    # After the last frame, spin a moment so reliable subscribers can fetch it before the writer goes.
    return run_node("camera_source", CameraSource, args, until=lambda node: node.finished, linger_s=0.5)


if __name__ == "__main__":
    sys.exit(main())
