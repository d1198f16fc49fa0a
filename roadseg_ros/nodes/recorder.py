"""``recorder``: write what the segmentation node produced to disk, and how fast it did.

Subscribes an overlay image (``overlay``, remap it to e.g. ``/roadseg/overlay``) and the
node's ``drivable_area`` (roadseg_ros/DrivableArea). It writes

* ``overlay.mp4`` - the overlay frames as a video (frame rate ``video_fps``),
* ``snapshot_NNNN.png`` - every ``snapshot_every``-th overlay frame (0: none),
* ``summary.json`` - frames, receive rate, latency percentiles and the mean drivable ratio,
* ``mcap_name`` (``recording.mcap``; empty: none) - an MCAP recording of the graph, for
  ``ros2 bag play`` and Foxglove (layout: ``config/roadseg.foxglove.json``): the input
  ``image`` and ``camera_info``, ``mask``, ``overlay``, ``drivable_area``,
  ``drivable_grid`` and ``/diagnostics``, each under the topic name it had. Images are
  stored as ``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` so a minute of
  driving stays small: the input as JPEG by default (``input_format: png`` stores it
  lossless, so a replay gives the node the very pixels it saw: what a regression test
  needs; the demo's ``--lossless-recording``), the mask as PNG (it keeps its class ids),
  the overlay as JPEG (``jpeg_quality``). Log times are receipt times.

under ``output_dir``, and stops by itself after ``max_frames`` overlay frames (0: on
shutdown). Latency is measured two ways: from the image's header stamp to the overlay's
receipt here (camera to screen, transport included; meaningful when the stamp and this
node share a clock, as on one machine) and as the node's own ``total_latency_ms``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image

from roadseg_ros.bags import McapWriter
from roadseg_ros.image_codec import ImageFormatError, decode_image_msg
from roadseg_ros.msg import DrivableArea
from roadseg_ros.nodes.common import run_node
from roadseg_ros.nodes.messages import compressed_msg, msg_definition, stamp_ns
from roadseg_ros.nodes.params import RECORDER, declare_parameters

#: After the last overlay frame, how long to wait for the DrivableArea messages still due.
AREA_GRACE_S = 2.0


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/mean/max of ``values`` (None when there are none: JSON has no NaN)."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "max": None, "count": 0}
    a = np.asarray(values, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(a.mean()),
            "max": float(a.max()), "count": int(a.size)}


class Recorder(Node):
    """Writes the overlay video, snapshots and ``summary.json``; see the module docstring."""

    def __init__(self, **node_kwargs: Any) -> None:
        node_kwargs.setdefault("node_name", "recorder")
        super().__init__(**node_kwargs)
        p = declare_parameters(self, RECORDER)
        self.output_dir = Path(p["output_dir"]).expanduser()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.video_path = self.output_dir / p["video_name"]
        self.summary_path = self.output_dir / "summary.json"
        self.max_frames = int(p["max_frames"])
        self.video_fps = float(p["video_fps"])
        self.snapshot_every = int(p["snapshot_every"])
        self.frames = 0
        self.snapshots: list[str] = []
        self.stamp_latency_ms: list[float] = []
        self.node_latency_ms: list[float] = []
        self.inference_latency_ms: list[float] = []
        self.drivable_ratios: list[float] = []
        self.decode_errors = 0
        self.first_receipt: float | None = None
        self.last_receipt: float | None = None
        self.image_size: tuple[int, int] | None = None
        self.model_name = ""
        self._writer: cv2.VideoWriter | None = None
        self._closed = False
        # The executor thread (max_frames reached) and the host (seeing ``done``) may both close:
        # the second must wait until the first has written summary.json.
        self._close_lock = threading.Lock()
        self._full_since: float | None = None
        self._grace_timer = self.create_timer(0.2, self._check_full)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.overlay_sub = self.create_subscription(Image, "overlay", self._on_overlay, qos)
        self.area_sub = self.create_subscription(DrivableArea, "drivable_area", self._on_area, qos)
        self.mcap: McapWriter | None = None
        self.mcap_path = self.output_dir / p["mcap_name"] if p["mcap_name"] else None
        self._jpeg_quality = int(p["jpeg_quality"])
        self._input_format = str(p["input_format"])
        if self.mcap_path is not None:
            self._start_mcap(qos)
        self.get_logger().info(f"recording {self.overlay_sub.topic_name} and {self.area_sub.topic_name} "
                               f"to {self.output_dir}")

    # ------------------------------------------------------------------ the MCAP recording
    def _start_mcap(self, qos: QoSProfile) -> None:
        self.mcap = McapWriter(self.mcap_path)
        self._mcap_topics: dict[str, str] = {}
        compressed = "sensor_msgs/msg/CompressedImage"
        self._add_mcap_topic(self.overlay_sub.topic_name + "/compressed", compressed)
        self._add_mcap_topic(self.area_sub.topic_name, "roadseg_ros/msg/DrivableArea",
                             msg_definition(DrivableArea))
        self.image_sub = self.create_subscription(
            Image, "image",
            lambda m: self._record_image(self.image_sub.topic_name, m, self._input_format), qos)
        self.mask_sub = self.create_subscription(
            Image, "mask", lambda m: self._record_image(self.mask_sub.topic_name, m, "png"), qos)
        for sub_topic in (self.image_sub.topic_name, self.mask_sub.topic_name):
            self._add_mcap_topic(sub_topic + "/compressed", compressed)
        # Messages stored as they are: taken serialised (raw) and written without a round trip.
        for msg_type, topic in ((CameraInfo, "camera_info"), (OccupancyGrid, "drivable_grid"),
                                (DiagnosticArray, "/diagnostics")):
            sub = self.create_subscription(msg_type, topic, lambda raw, t=topic: self._record_raw(t, raw),
                                           qos, raw=True)
            self._mcap_topics[topic] = sub.topic_name
            name = msg_type.__module__.split(".")[0] + "/msg/" + msg_type.__name__
            self._add_mcap_topic(sub.topic_name, name)
        self.get_logger().info(f"recording MCAP {self.mcap_path}")

    def _add_mcap_topic(self, topic: str, msgtype: str, msgdef: str | None = None) -> None:
        assert self.mcap is not None
        self.mcap.add_topic(topic, msgtype, msgdef)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _record_raw(self, topic: str, raw: bytes) -> None:
        if self.mcap is not None and not self._closed:
            self.mcap.write(self._mcap_topics[topic], self._now_ns(), raw)

    def _decode(self, msg: Image, what: str) -> tuple[np.ndarray, str] | None:
        """``decode_image_msg``, or ``None`` after counting and (throttled) reporting a bad frame."""
        try:
            return decode_image_msg(msg)
        except ImageFormatError as exc:
            self.decode_errors += 1
            self.get_logger().warning(f"{what}: {exc}", throttle_duration_sec=5.0)
            return None

    def _record_image(self, topic: str, msg: Image, fmt: str, bgr: np.ndarray | None = None) -> None:
        """An image as CompressedImage on ``<topic>/compressed`` (PNG or JPEG)."""
        if self.mcap is None or self._closed:
            return
        if bgr is None:
            decoded = self._decode(msg, f"{topic} frame not recorded")
            if decoded is None:
                return
            image, order = decoded
            if msg.encoding in ("mono8", "8UC1"):
                bgr = np.ascontiguousarray(image[..., 0])       # class ids stay one channel
            else:
                bgr = np.ascontiguousarray(image if order == "bgr" else image[..., ::-1])
        out = compressed_msg(msg.header, bgr, fmt, self._jpeg_quality)
        self.mcap.write(topic + "/compressed", self._now_ns(), serialize_message(out))

    @property
    def done(self) -> bool:
        """True once the recording is closed: ``max_frames`` overlay frames were written and
        their DrivableArea messages arrived (or ``area_grace_s`` passed without them)."""
        return self._closed

    @property
    def _full(self) -> bool:
        return self.max_frames > 0 and self.frames >= self.max_frames

    def _check_full(self) -> None:
        if self._closed or self._full_since is None:
            return
        if len(self.drivable_ratios) >= self.max_frames or time.monotonic() - self._full_since > AREA_GRACE_S:
            self.get_logger().info(f"recorded max_frames={self.max_frames} frames")
            self.close()

    def _stamp_latency(self, header) -> float:
        return (self.get_clock().now().nanoseconds - stamp_ns(header)) / 1e6

    def _on_overlay(self, msg: Image) -> None:
        if self._closed or self._full:
            return
        latency = self._stamp_latency(msg.header)
        decoded = self._decode(msg, "overlay frame skipped")
        if decoded is None:
            return
        image, order = decoded
        bgr = np.ascontiguousarray(image if order == "bgr" else image[..., ::-1])
        size = (bgr.shape[1], bgr.shape[0])
        if self._writer is None:
            self.image_size = size
            self._writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.video_fps, size)
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot open a video writer for {self.video_path} (mp4v, {size})")
        elif size != self.image_size:
            bgr = cv2.resize(bgr, self.image_size, interpolation=cv2.INTER_AREA)
        self._writer.write(bgr)
        self._record_image(self.overlay_sub.topic_name, msg, "jpeg", bgr)
        now = time.monotonic()
        self.first_receipt = now if self.first_receipt is None else self.first_receipt
        self.last_receipt = now
        self.stamp_latency_ms.append(latency)
        if self.snapshot_every > 0 and self.frames % self.snapshot_every == 0:
            path = self.output_dir / f"snapshot_{self.frames:04d}.png"
            cv2.imwrite(str(path), bgr)
            self.snapshots.append(path.name)
        self.frames += 1
        if self._full:
            self._full_since = time.monotonic()
            self._check_full()

    def _on_area(self, msg: DrivableArea) -> None:
        if self._closed or (self._full and len(self.drivable_ratios) >= self.max_frames):
            return
        if self.mcap is not None:
            self.mcap.write(self.area_sub.topic_name, self._now_ns(), serialize_message(msg))
        self.drivable_ratios.append(float(msg.drivable_ratio))
        self.node_latency_ms.append(float(msg.total_latency_ms))
        self.inference_latency_ms.append(float(msg.inference_latency_ms))
        self.model_name = msg.model_name
        self._check_full()

    def summary(self) -> dict:
        """What ``summary.json`` holds (also usable before closing)."""
        duration = (self.last_receipt - self.first_receipt) if self.frames > 1 else 0.0
        ratios = [r for r in self.drivable_ratios if not math.isnan(r)]
        return {
            "frames": self.frames,
            "drivable_area_messages": len(self.drivable_ratios),
            "duration_s": duration,
            "rate_hz": (self.frames - 1) / duration if duration > 0 else None,
            "image_size": list(self.image_size) if self.image_size else None,
            "latency_ms": {
                "stamp_to_overlay": percentiles(self.stamp_latency_ms),
                "node_total": percentiles(self.node_latency_ms),
                "node_inference": percentiles(self.inference_latency_ms),
            },
            "mean_drivable_ratio": float(np.mean(ratios)) if ratios else None,
            "model_name": self.model_name,
            "decode_errors": self.decode_errors,
            "video": self.video_path.name if self._writer is not None else None,
            "snapshots": self.snapshots,
            "mcap": self.mcap_path.name if self.mcap_path is not None else None,
            "mcap_messages": dict(self.mcap.counts) if self.mcap is not None else {},
        }

    def close(self) -> dict:
        """Finish the video and write ``summary.json``; safe to call more than once."""
        with self._close_lock:
            return self._close()

    def _close(self) -> dict:
        summary = self.summary()
        if not self._closed:
            self._closed = True
            if self._writer is not None:
                self._writer.release()
            if self.mcap is not None:
                self.mcap.close()
            self.summary_path.write_text(json.dumps(summary, indent=2) + "\n")
            self.get_logger().info(f"wrote {self.summary_path} ({self.frames} frames)")
        return summary


def main(args: list[str] | None = None) -> int:
    """Record until ``max_frames`` or Ctrl-C; the summary is written either way."""
    return run_node("recorder", Recorder, args, until=lambda node: node.done,
                    on_exit=lambda node: node.close())


if __name__ == "__main__":
    sys.exit(main())
