"""The segmentation node: camera images in, road masks, overlays and drivable area out.

A thin rclpy adapter over :class:`roadseg_ros.inference.Segmenter`. Design points:

* **The executor never blocks.** The image callback only stores the newest message in a
  one-element slot (a frame overwritten there before the worker took it is counted as
  dropped, and so are frames the depth-1 input queue skipped: gaps in the publisher's
  sequence numbers). A dedicated worker thread decodes, runs the network and publishes. Memory
  is bounded whatever the input rate: one frame waiting, one being processed.
* **No needless work.** Decoding is a view of the message buffer wherever the encoding
  allows (:mod:`roadseg_ros.image_codec`); outputs nobody subscribes to (or disabled by
  their ``publish_*`` flag) are not computed, and when no output is wanted at all the
  network does not run.
* **Bad frames never stop the node.** A malformed or unsupported frame is rejected with
  a throttled warning naming the problem and counted in ``/diagnostics``.
* **Input QoS** ``auto`` follows the publishers on the topic (reliable when all of them
  are, best effort otherwise, depth 1), re-checked every second so a camera started
  after the node is followed too. Large images across processes need a reliable reader
  with default Fast DDS (measured: best effort lost 37 of 40 1.9 MB frames).
* **Output QoS**: reliable, depth 1 for images and the grid (a reliable writer matches
  both reliable and best-effort readers, and lets multi-megabyte overlays arrive across
  processes; depth 1 because only the newest result matters and a slow reader must not
  make the writer hold old frames); reliable depth 10 for ``~/drivable_area`` (small,
  and a logger wants every one) and ``/diagnostics``.

Run: ``python -m roadseg_ros.nodes.segmentation_node --ros-args -p weights:=model.pt``
(``ros2 run roadseg_ros segmentation_node`` on a ROS install); defaults in
``config/roadseg.yaml``.
"""

from __future__ import annotations

import array
import collections
import logging
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point32
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from roadseg_ros.allocator import allocator_status, keep_freed_memory
from roadseg_ros.geometry import (
    GridSpec,
    GroundCamera,
    analyze_drivable,
    drivable_from_mask,
    drivable_grid,
    sample_rows,
)
from roadseg_ros.image_codec import ImageFormatError, decode_compressed, decode_image_msg, fill_image_msg
from roadseg_ros.msg import DrivableArea
from roadseg_ros.nodes.params import PARAMS, ConfigError, declare_parameters, validate

__all__ = ["SegmentationNode", "main", "ConfigError", "configure_process"]

#: CPython's thread switch interval while the node runs (default 5 ms), see configure_process().
GIL_SWITCH_INTERVAL_S = 0.0005

DEFAULT_NODE_NAME = "roadseg"
_DYNAMIC = {p.name for p in PARAMS if p.dynamic}


def _qos(reliable: bool, depth: int = 1) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


class _RosLogHandler(logging.Handler):
    """Forwards the engine's Python log records (e.g. the CPU fallback warning) to the node's logger."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        else:
            self._logger.info(text)


def default_num_threads() -> int:
    """CPU threads for the network when ``num_threads`` is 0: half the cores, at least one.

    Torch's default (every core) makes its OpenMP threads wait for each other whenever the
    camera driver or another node takes a core: measured on a 2-core machine, predict went
    from ~30 ms with one thread to over a second with two under such load. Half the cores
    leaves room for the rest of the ROS graph.
    """
    return max(1, (os.cpu_count() or 2) // 2)


class SegmentationNode(Node):
    """Road segmentation node; see the module docstring. ``node_kwargs`` go to ``Node``.

    Raises :class:`ConfigError` (one line) for invalid parameters, unusable weights or
    an unavailable device.
    """

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._log_handler = _RosLogHandler(self)
        logging.getLogger("roadseg_ros").addHandler(self._log_handler)
        self._worker: threading.Thread | None = None
        try:
            self._setup()
        except BaseException:
            self._teardown()
            super().destroy_node()
            raise

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg = declare_parameters(self)
        self._cfg = cfg
        self._live = {name: cfg[name] for name in _DYNAMIC}
        self.segmenter, self._drivable = self._load_segmenter(cfg)
        seg = self.segmenter
        self._colors = [tuple(c) for c in seg.class_colors]
        self._weights_label = str(seg.weights_path or "")
        self._grid_spec = GridSpec(cfg["grid_resolution_m"], cfg["grid_extent_forward_m"],
                                   cfg["grid_extent_side_m"])

        # State shared between the executor (callbacks) and the worker thread.
        self._cond = threading.Condition()
        self._slot: tuple[Any, float] | None = None
        self._stop = False
        self._stats = {"received": 0, "processed": 0, "dropped": 0, "dropped_in_queue": 0,
                       "dropped_in_slot": 0, "rejected": 0, "idle": 0, "errors": 0}
        self._last_seq: dict[bytes, int] = {}
        # (finish time, latency from arrival ms, processing ms, inference ms, predict ms) of recent frames
        self._window: collections.deque[tuple[float, ...]] = collections.deque(maxlen=2000)
        self._last_problem = ""
        self._warned: dict[str, tuple[float, int]] = {}
        self._camera_info: tuple[tuple[float, ...], int, int] | None = None
        self._cameras: dict[tuple, GroundCamera | None] = {}

        self._pubs = {
            "mask": self.create_publisher(Image, "~/mask", _qos(True)),
            "overlay": self.create_publisher(Image, "~/overlay", _qos(True)),
            "color_mask": self.create_publisher(Image, "~/color_mask", _qos(True)),
            "confidence": self.create_publisher(Image, "~/confidence", _qos(True)),
            "drivable_area": self.create_publisher(DrivableArea, "~/drivable_area", _qos(True, 10)),
            "drivable_grid": self.create_publisher(OccupancyGrid, "~/drivable_grid", _qos(True)),
        }
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", _qos(True, 10))

        self._image_type = CompressedImage if cfg["compressed_input"] else Image
        self._image_topic = "image/compressed" if cfg["compressed_input"] else "image"
        self._image_sub = None
        self._sub_reliable: bool | None = None
        self._subscribe_image(self._wanted_reliability())
        if cfg["input_qos"] == "auto":
            self._qos_timer = self.create_timer(1.0, self._recheck_input_qos)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, _qos(False))
        self._diag_period = cfg["diagnostics_period_s"]
        self._diag_last = time.monotonic()
        self._diag_processed = 0
        self.create_timer(self._diag_period, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._worker = threading.Thread(target=self._run_worker, name="roadseg-worker", daemon=True)
        self._worker.start()
        w, h = seg.input_size
        self.get_logger().info(
            f"ready: {seg.model_name} from {self._weights_label or 'memory'} on {seg.device} "
            f"({seg.precision}, network {w}x{h}); input {self._image_sub.topic_name} "
            f"({'reliable' if self._sub_reliable else 'best effort'}, qos {cfg['input_qos']})")

    def _load_segmenter(self, cfg: dict[str, Any]) -> tuple[Any, list[int]]:
        """The Segmenter and the drivable class ids; ConfigError for anything unusable."""
        # torch is imported only below, so configuration errors are reported without waiting for it.
        if cfg["weights"]:
            path = Path(cfg["weights"]).expanduser()
            if not path.is_file():
                raise ConfigError(f"weights file {path} does not exist (parameter weights)")
        else:
            from roadseg_ros.checkpoint import default_weights_path

            path = default_weights_path()
            if not path.is_file():
                raise ConfigError(f"the bundled checkpoint {path} is missing; pass one with "
                                  "-p weights:=/path/to/checkpoint.pt")
        width, height = cfg["input_width"], cfg["input_height"]
        if (width == 0) != (height == 0):
            raise ConfigError(f"input_width={width} and input_height={height}: set both, or both to 0 "
                              "(the checkpoint's size)")
        from roadseg_ros.checkpoint import CheckpointError, load_checkpoint
        from roadseg_ros.inference import Segmenter

        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            raise ConfigError(f"cannot load weights: {' '.join(str(exc).split())}") from None
        # Checked before the model is built, so a wrong name fails fast and with nothing else printed.
        drivable = self._resolve_classes(cfg["drivable_classes"], list(ckpt.class_names),
                                         list(ckpt.drivable_classes))
        try:
            seg = Segmenter(ckpt, device=cfg["device"], precision=cfg["precision"],
                            input_size=(width, height) if width else None, warmup=True,
                            num_threads=cfg["num_threads"] or default_num_threads())
        except (CheckpointError, RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(f"cannot start the model from {path} on device {cfg['device']!r} "
                              f"({cfg['precision']}): {' '.join(str(exc).split())}") from None
        seg.weights_path = path
        return seg, drivable

    @staticmethod
    def _resolve_classes(text: str, names: list[str], default: list[int]) -> list[int]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        if not items:
            return list(default)
        ids = []
        for item in items:
            if item.isdigit():
                cid = int(item)
                if cid >= len(names):
                    raise ConfigError(f"invalid parameter drivable_classes: class id {cid} is out of range "
                                      f"(the model has {len(names)} classes: 0..{len(names) - 1})")
            elif item in names:
                cid = names.index(item)
            else:
                raise ConfigError(f"invalid parameter drivable_classes: no class {item!r}; the model's "
                                  f"classes: {', '.join(names)}")
            ids.append(cid)
        return sorted(set(ids))

    # ------------------------------------------------------------------ input QoS
    def _wanted_reliability(self) -> bool:
        mode = self._cfg["input_qos"]
        if mode != "auto":
            return mode == "reliable"
        topic = self.resolve_topic_name(self._image_topic)
        infos = self.get_publishers_info_by_topic(topic)
        if not infos:
            return bool(self._sub_reliable) if self._sub_reliable is not None else False
        return all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)

    def _subscribe_image(self, reliable: bool) -> None:
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        self._image_sub = self.create_subscription(self._image_type, self._image_topic, self._on_image,
                                                   _qos(reliable))
        self._sub_reliable = reliable

    def _recheck_input_qos(self) -> None:
        """``input_qos: auto``: follow the publishers when they change (e.g. a camera started later)."""
        wanted = self._wanted_reliability()
        if wanted != self._sub_reliable:
            self.get_logger().info(f"input_qos auto: publishers on {self._image_sub.topic_name} are "
                                   f"{'all reliable' if wanted else 'not all reliable'}; resubscribing "
                                   f"{'reliable' if wanted else 'best effort'}")
            self._subscribe_image(wanted)

    # ------------------------------------------------------------------ callbacks (executor)
    def _on_image(self, msg: Any, info: dict) -> None:
        # Two parameters: rclpy passes the MessageInfo (publisher gid, sequence number) too.
        now = time.monotonic()
        # Frames the depth-1 input queue overwrote before the executor took them (or that a
        # best-effort link lost) show as gaps in the publisher's sequence numbers.
        skipped = 0
        if info:
            gid = (info.get("publisher_gid") or {}).get("data")
            seq = info.get("publication_sequence_number")
            if gid is not None and seq:
                last = self._last_seq.get(bytes(gid))
                if last is not None and seq > last + 1:
                    skipped = seq - last - 1
                if len(self._last_seq) > 64:
                    self._last_seq.clear()
                self._last_seq[bytes(gid)] = seq
        with self._cond:
            self._stats["received"] += 1
            self._stats["dropped_in_queue"] += skipped
            if self._slot is not None:
                self._stats["dropped_in_slot"] += 1
            self._stats["dropped"] = self._stats["dropped_in_queue"] + self._stats["dropped_in_slot"]
            self._slot = (msg, now)
            self._cond.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = (tuple(float(v) for v in msg.k), int(msg.width), int(msg.height))

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        current = {name: self.get_parameter(name).value for name in self._cfg}
        for p in params:
            reason = validate(p.name, p.value, current)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for p in params:
            if p.name in self._live:
                self._live[p.name] = p.value
        with self._cond:
            self._cond.notify()   # a new max_rate_hz applies at once
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ worker
    def _run_worker(self) -> None:
        next_start = 0.0
        while True:
            with self._cond:
                while self._slot is None and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                rate = float(self._live["max_rate_hz"])
                if rate > 0:
                    wait = next_start - time.monotonic()
                    if wait > 0:
                        self._cond.wait(wait)    # newer frames may replace the waiting one meanwhile
                        continue
                msg, received = self._slot
                self._slot = None
            started = time.monotonic()
            if rate > 0:
                next_start = started + 1.0 / rate
            try:
                self._process(msg, received)
            except Exception as exc:  # keep the node alive; the reason goes to the log and diagnostics
                with self._cond:
                    self._stats["errors"] += 1
                self._warn(f"processing failed: {type(exc).__name__}: {exc}")
            del msg

    def _warn(self, text: str) -> None:
        """Throttled warning (per distinct text), with the count of repeats suppressed meanwhile."""
        now = time.monotonic()
        self._last_problem = text
        last, suppressed = self._warned.get(text, (-math.inf, 0))
        if now - last >= float(self._live["warn_throttle_s"]):
            extra = f" ({suppressed} more like this since the last warning)" if suppressed else ""
            self.get_logger().warning(text + extra)
            if len(self._warned) > 256:
                self._warned.clear()
            self._warned[text] = (now, 0)
        else:
            self._warned[text] = (last, suppressed + 1)

    def _active_outputs(self) -> dict[str, bool]:
        return {name: bool(self._live[f"publish_{name}"]) and pub.get_subscription_count() > 0
                for name, pub in self._pubs.items()}

    def _camera(self, width: int, height: int) -> GroundCamera | None:
        info = self._camera_info
        if info is None:
            return None
        key = (info, width, height)
        if key not in self._cameras:
            if len(self._cameras) > 16:
                self._cameras.clear()
            k, iw, ih = info
            try:
                self._cameras[key] = GroundCamera.from_camera_info(
                    k, iw, ih, width, height, self._cfg["camera_height_m"], self._cfg["camera_pitch_deg"])
            except ValueError as exc:
                self._warn(f"camera_info unusable for ground geometry: {exc}")
                self._cameras[key] = None
        return self._cameras[key]

    def _process(self, msg: Any, received: float) -> None:
        t0 = time.perf_counter()
        max_side = self._cfg["max_image_side"]
        try:
            if self._image_type is CompressedImage:
                image, order = decode_compressed(msg.format, msg.data, max_side=max_side)
            else:
                image, order = decode_image_msg(msg, max_side=max_side)
        except ImageFormatError as exc:
            with self._cond:
                self._stats["rejected"] += 1
            self._warn(f"rejected frame from {self._image_sub.topic_name}: {exc}")
            return
        active = self._active_outputs()
        height, width = image.shape[:2]
        camera = self._camera(width, height) if active["drivable_grid"] or active["drivable_area"] else None
        active["drivable_grid"] = active["drivable_grid"] and camera is not None
        if not any(active.values()):
            with self._cond:
                self._stats["idle"] += 1
            return
        header = msg.header
        pred = self.segmenter.predict(image, color_order=order,
                                      with_confidence=active["confidence"] or active["drivable_area"])
        mask = pred.mask
        if active["mask"]:
            self._pubs["mask"].publish(fill_image_msg(Image(header=header), mask, "mono8"))
        if active["confidence"]:
            conf8 = (pred.confidence * 255.0 + 0.5).astype(np.uint8)   # 0..1 -> 0..255
            self._pubs["confidence"].publish(fill_image_msg(Image(header=header), conf8, "mono8"))
        if active["color_mask"] or active["overlay"]:
            from roadseg_ros.visualize import colorize, overlay
            if active["color_mask"]:
                colored = colorize(mask, self._colors, color_order="bgr")
                self._pubs["color_mask"].publish(fill_image_msg(Image(header=header), colored, "bgr8",
                                                                color_order="bgr"))
            if active["overlay"]:
                blended = overlay(np.ascontiguousarray(image), mask, self._colors,
                                  float(self._live["overlay_alpha"]), color_order=order)
                self._pubs["overlay"].publish(fill_image_msg(Image(header=header), blended, "bgr8",
                                                             color_order=order))
        drivable = drivable_from_mask(mask, self._drivable) \
            if active["drivable_area"] or active["drivable_grid"] else None
        if active["drivable_grid"]:
            self._pubs["drivable_grid"].publish(self._grid_msg(header, drivable, camera))
        if active["drivable_area"]:
            da = self._drivable_area_msg(header, drivable, pred, camera)
            da.total_latency_ms = float((time.perf_counter() - t0) * 1e3)
            self._pubs["drivable_area"].publish(da)
        done = time.perf_counter()
        now = time.monotonic()
        with self._cond:
            self._stats["processed"] += 1
            self._window.append((now, (now - received) * 1e3, (done - t0) * 1e3,
                                 pred.timing.get("inference_ms", 0.0), pred.timing.get("total_ms", 0.0)))

    def _drivable_area_msg(self, header: Any, drivable: np.ndarray, pred: Any,
                           camera: GroundCamera | None) -> DrivableArea:
        h, w = drivable.shape
        analysis = analyze_drivable(drivable, pred.confidence,
                                    boundary_rows=sample_rows(h, self._cfg["boundary_rows"]))
        msg = DrivableArea(header=header)
        msg.width, msg.height = w, h
        msg.drivable_ratio = float(analysis.drivable_ratio)
        msg.mean_confidence = float(analysis.mean_confidence)
        msg.boundary_rows = analysis.boundary_rows.tolist()
        msg.left_boundary = analysis.left_boundary.tolist()
        msg.right_boundary = analysis.right_boundary.tolist()
        msg.main_region_polygon = [Point32(x=float(x), y=float(y), z=0.0) for x, y in analysis.polygon]
        msg.main_region_ratio = float(analysis.main_region_ratio)
        msg.free_distance_ahead = float(camera.free_distance_ahead(analysis.main_region)) \
            if camera is not None else math.nan
        msg.model_name = self.segmenter.model_name
        msg.weights = self._weights_label
        msg.inference_latency_ms = float(pred.timing.get("inference_ms", math.nan))
        return msg

    def _grid_msg(self, header: Any, drivable: np.ndarray, camera: GroundCamera) -> OccupancyGrid:
        spec = self._grid_spec
        grid = drivable_grid(drivable, camera, spec)
        msg = OccupancyGrid()
        msg.header.stamp = header.stamp
        msg.header.frame_id = self._cfg["grid_frame_id"] or header.frame_id
        msg.info.map_load_time = header.stamp
        msg.info.resolution = float(spec.resolution_m)
        msg.info.height, msg.info.width = grid.shape
        pose = msg.info.origin
        if self._cfg["grid_frame_id"]:
            pose.position.x, pose.position.y = 0.0, -float(spec.side_m)
            pose.orientation.w = 1.0
        else:
            (pose.position.x, pose.position.y, pose.position.z), q = camera.grid_pose(spec)
            pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q
        data = array.array("b")
        data.frombytes(grid.reshape(-1).view(np.uint8))
        msg.data = data
        return msg

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._cond:
            stats = dict(self._stats)
            window = [e for e in self._window if e[0] >= now - max(self._diag_period, 1.0)]
        elapsed = max(now - self._diag_last, 1e-6)
        rate = (stats["processed"] - self._diag_processed) / elapsed
        self._diag_last, self._diag_processed = now, stats["processed"]
        lat = np.array([e[1] for e in window]) if window else np.zeros(0)
        proc = np.array([e[2] for e in window]) if window else np.zeros(0)
        inf = np.array([e[3] for e in window]) if window else np.zeros(0)
        pred = np.array([e[4] for e in window]) if window else np.zeros(0)
        seg = self.segmenter
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: segmentation",
                                  hardware_id=str(seg.device))
        worker_alive = self._worker is not None and self._worker.is_alive()
        if not worker_alive:
            status.level, status.message = DiagnosticStatus.ERROR, "worker thread stopped"
        elif stats["rejected"] or stats["errors"]:
            status.level = DiagnosticStatus.WARN
            status.message = f"{stats['rejected']} frames rejected, {stats['errors']} failed; last: " \
                             f"{self._last_problem}"[:300]
        else:
            status.level, status.message = DiagnosticStatus.OK, f"{rate:.1f} frames/s"
        values = {
            "rate_hz": f"{rate:.2f}",
            "latency_ms_mean": f"{lat.mean():.2f}" if lat.size else "nan",
            "latency_ms_max": f"{lat.max():.2f}" if lat.size else "nan",
            "processing_ms_mean": f"{proc.mean():.2f}" if proc.size else "nan",
            "predict_ms_mean": f"{pred.mean():.2f}" if pred.size else "nan",
            "inference_ms_mean": f"{inf.mean():.2f}" if inf.size else "nan",
            "frames_received": str(stats["received"]),
            "frames_processed": str(stats["processed"]),
            "frames_dropped": str(stats["dropped"]),
            "frames_dropped_in_input_queue": str(stats["dropped_in_queue"]),
            "frames_dropped_waiting": str(stats["dropped_in_slot"]),
            "frames_rejected": str(stats["rejected"]),
            "frames_failed": str(stats["errors"]),
            "frames_without_subscribers": str(stats["idle"]),
            "device": str(seg.device),
            "precision": seg.precision,
            "allocator": allocator_status(),
            "model": seg.model_name,
            "weights": self._weights_label,
            "input_topic": self._image_sub.topic_name,
            "input_reliability": "reliable" if self._sub_reliable else "best_effort",
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def stats(self) -> dict[str, int]:
        """Frame counters, for tests and tools.

        ``dropped`` = ``dropped_in_queue`` (skipped by the depth-1 input queue, from gaps in
        the publishers' sequence numbers) + ``dropped_in_slot`` (replaced by a newer frame
        while waiting for the worker); ``idle``: frames not processed because no output
        was wanted.
        """
        with self._cond:
            return dict(self._stats)

    # ------------------------------------------------------------------ shutdown
    def _teardown(self) -> None:
        cond = getattr(self, "_cond", None)
        if cond is not None:
            with cond:
                self._stop = True
                cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)
        logging.getLogger("roadseg_ros").removeHandler(self._log_handler)

    def destroy_node(self) -> None:
        """Stop the worker (it finishes the frame in progress) before the publishers go away."""
        self._teardown()
        super().destroy_node()


def configure_process() -> None:
    """Process-wide settings for a process that hosts the node; call before other threads start.

    * The tuned allocator (:func:`roadseg_ros.allocator.keep_freed_memory`): the inference
      worker thread otherwise page-faults its buffers in every frame. Before rclpy.init
      starts the DDS threads, so every thread shares the one tuned arena.
    * A 0.5 ms GIL switch interval: the executor thread(s) and, in the demo, the camera
      and recorder nodes share the GIL with the worker, and with CPython's default 5 ms
      the worker can wait that long for it between two of the network's operators.
      Measured with ``./dev.sh demo`` (three nodes in one process, 2 cores): 2.4-3.8
      frames/s with the default, 8.3 with 0.5 ms.
    """
    keep_freed_memory()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``segmentation_node``; returns the process exit status."""
    configure_process()
    try:
        rclpy.init(args=args)
    except Exception as exc:  # malformed --ros-args and the like
        print(f"[roadseg] error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    node = None
    status = 0
    try:
        node = SegmentationNode()
        rclpy.spin(node)
    except ConfigError as exc:
        print(f"[roadseg] error: {exc}", file=sys.stderr)
        status = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
