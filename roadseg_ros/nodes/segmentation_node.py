"""The segmentation node: camera images in, road masks, overlays and drivable area out.

Wiring only, in the manner of image_pipeline's CalibrationNode: parameters, subscriptions,
message conversion and publishing. The work (newest-frame slot, worker thread, drops, rate
limit, which outputs to compute, the network and the drivable analysis) is done by
:class:`roadseg_ros.pipeline.FramePipeline`, which knows no ROS.

* **The executor never blocks**: the image callback hands the message to the pipeline's
  one-frame slot; gaps in the publisher's sequence numbers are passed along as drops.
* **Input QoS** ``auto`` follows the publishers on the topic (reliable when all of them
  are, best effort otherwise, depth 1), re-checked every second so a camera started
  after the node is followed too. Large images across processes need a reliable reader
  with default Fast DDS (measured: best effort lost 37 of 40 1.9 MB frames).
* **Output QoS**: reliable, depth 1 for images and the grid (a reliable writer matches
  both reliable and best-effort readers, and lets multi-megabyte overlays arrive across
  processes; depth 1 because only the newest result matters and a slow reader must not
  make the writer hold old frames); reliable depth 10 for ``~/drivable_area`` (small,
  and a logger wants every one) and ``/diagnostics``.
* **What the mask means**: ``~/classes`` (std_msgs/String, JSON from
  :func:`~roadseg_ros.nodes.messages.classes_msg`: class names, RGB colours, drivable
  ids; reliable, transient local, so a program started later still gets it) and the
  same facts as read-only parameters ``model.class_names``, ``model.class_colors``
  (flat r, g, b per class) and ``model.drivable_classes`` for ``ros2 param get``.

Run: ``python -m roadseg_ros.nodes.segmentation_node --ros-args -p weights:=model.pt``
(``ros2 run roadseg_ros segmentation_node`` on a ROS install); defaults in
``config/roadseg.yaml``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from roadseg_ros.allocator import allocator_status
from roadseg_ros.config import ConfigError
from roadseg_ros.geometry import GridSpec
from roadseg_ros.image_codec import decode_compressed, decode_image_msg
from roadseg_ros.msg import DrivableArea
from roadseg_ros.nodes.common import EngineLogHandler, run_node
from roadseg_ros.nodes.messages import classes_msg, diagnostic_array, product_msg
from roadseg_ros.nodes.params import MODEL_FACTS, SEGMENTATION, declare_parameters
from roadseg_ros.pipeline import FramePipeline, PipelineSettings, SequenceGaps
from roadseg_ros.runtime import configure_process, load_segmenter

__all__ = ["SegmentationNode", "main", "ConfigError"]

DEFAULT_NODE_NAME = "roadseg"
_OUTPUT_TYPES = {"mask": Image, "overlay": Image, "color_mask": Image, "confidence": Image,
                 "drivable_area": DrivableArea, "drivable_grid": OccupancyGrid}


def _qos(reliable: bool, depth: int = 1) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


class SegmentationNode(Node):
    """Road segmentation node; see the module docstring. ``node_kwargs`` go to ``Node``.

    Raises :class:`ConfigError` (one line) for invalid parameters, unusable weights or
    an unavailable device.
    """

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._log_handler = EngineLogHandler(self)   # e.g. the engine's CPU fallback warning
        logging.getLogger("roadseg_ros").addHandler(self._log_handler)
        self.pipeline: FramePipeline | None = None
        try:
            self._setup()
        except BaseException:
            self._teardown()
            super().destroy_node()
            raise

    def _setup(self) -> None:
        self._cfg = declare_parameters(self, SEGMENTATION)
        self._load_model()
        self._create_outputs(self.create_publisher)
        self._publish_classes()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._start_processing()

    # The steps of _setup, apart so that the managed node (managed_segmentation_node.py) runs the
    # same wiring as lifecycle transitions: configure = model + outputs, activate = the rest.
    def _load_model(self) -> None:
        """Load the network (ConfigError when unusable) and mirror its taxonomy in read-only parameters."""
        cfg = self._cfg
        self.segmenter, drivable = load_segmenter(
            cfg["weights"], device=cfg["device"], precision=cfg["precision"], backend=cfg["backend"],
            input_size=(cfg["input_width"], cfg["input_height"]), num_threads=cfg["num_threads"],
            drivable_classes=cfg["drivable_classes"], keep_aspect=cfg["keep_aspect"],
            cache_dir=cfg["cache_dir"], how="-p weights:=PATH")
        seg = self.segmenter
        self._drivable = list(drivable)
        self._weights_label = str(seg.weights_path or "")
        facts = {"model.class_names": [str(n) for n in seg.class_names],
                 "model.class_colors": [int(c) for rgb in seg.class_colors for c in rgb],
                 "model.drivable_classes": [int(c) for c in drivable]}
        for name, value in facts.items():
            # (rclpy cannot type an empty list; the topic still says it. Declared already: a managed
            # node configured again, from the same read-only weights.)
            if value and not self.has_parameter(name):
                # ignore_override: these describe the loaded model, a -p cannot change them.
                self.declare_parameter(name, value, ParameterDescriptor(
                    name=name, description=MODEL_FACTS[name], read_only=True), ignore_override=True)

    def _create_outputs(self, create_publisher: Callable[..., Publisher]) -> None:
        """The products', ``/diagnostics`` and ``~/classes`` publishers, made by ``create_publisher``."""
        self._pubs = {name: create_publisher(msg_type, f"~/{name}",
                                             _qos(True, 10 if name == "drivable_area" else 1))
                      for name, msg_type in _OUTPUT_TYPES.items()}
        self._diag_pub = create_publisher(DiagnosticArray, "/diagnostics", _qos(True, 10))
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._classes_pub = create_publisher(String, "~/classes", latched)

    def _publish_classes(self) -> None:
        """Latch the model's taxonomy (class names, colours, drivable ids) on ``~/classes``.

        Published once: transient local keeps it for every reader that joins later (an
        evaluator, a recorder, Foxglove), so downstream programs need no hard-coded ids.
        """
        seg = self.segmenter
        self._classes_pub.publish(classes_msg(seg.model_name, seg.class_names, seg.class_colors,
                                              self._drivable))

    def _start_processing(self) -> None:
        """Subscribe to the camera and camera_info, build the pipeline, start its worker and the timers."""
        cfg, seg = self._cfg, self.segmenter
        self._compressed = cfg["compressed_input"]
        self._image_topic = "image/compressed" if self._compressed else "image"
        self._image_sub = None
        self._sub_reliable: bool | None = None
        self._gaps = SequenceGaps()
        self._subscribe_image(self._wanted_reliability())

        settings = PipelineSettings()
        for name in SEGMENTATION.dynamic():
            _apply_setting(settings, name, cfg[name])
        self.pipeline = FramePipeline(
            seg, drivable_classes=self._drivable, decode=self._decode, demand=self._demand,
            emit=self._publish, warn=self.get_logger().warning, settings=settings,
            grid=GridSpec(cfg["grid_resolution_m"], cfg["grid_extent_forward_m"], cfg["grid_extent_side_m"]),
            camera_height_m=cfg["camera_height_m"], camera_pitch_deg=cfg["camera_pitch_deg"],
            boundary_rows=cfg["boundary_rows"], input_name=self._image_sub.topic_name)
        self._timers = [self.create_timer(1.0, self._recheck_input_qos)] if cfg["input_qos"] == "auto" else []
        self._info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                                  _qos(False))
        self._timers.append(self.create_timer(cfg["diagnostics_period_s"], self._publish_diagnostics))
        self.pipeline.start()
        w, h = seg.input_size
        shape = " pixels, shaped like the camera" if seg.keep_aspect else ""
        self.get_logger().info(
            f"ready: {seg.model_name} from {self._weights_label or 'memory'} on {seg.device} "
            f"({seg.backend} {seg.precision}, network {w}x{h}{shape}); input {self._image_sub.topic_name} "
            f"({'reliable' if self._sub_reliable else 'best effort'}, qos {cfg['input_qos']})")

    def _stop_processing(self) -> None:
        """Undo :meth:`_start_processing`: unsubscribe, stop the timers, stop and drop the worker."""
        for timer in getattr(self, "_timers", []):
            self.destroy_timer(timer)
        self._timers = []
        for sub in (getattr(self, "_image_sub", None), getattr(self, "_info_sub", None)):
            if sub is not None:
                self.destroy_subscription(sub)
        self._image_sub = self._info_sub = None
        if self.pipeline is not None:
            self.pipeline.stop()    # the frame in progress is finished first
            self.pipeline = None

    # ------------------------------------------------------------------ input
    def _wanted_reliability(self) -> bool:
        mode = self._cfg["input_qos"]
        if mode != "auto":
            return mode == "reliable"
        infos = self.get_publishers_info_by_topic(self.resolve_topic_name(self._image_topic))
        if not infos:
            return bool(self._sub_reliable)
        return all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)

    def _subscribe_image(self, reliable: bool) -> None:
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        self._image_sub = self.create_subscription(CompressedImage if self._compressed else Image,
                                                   self._image_topic, self._on_image, _qos(reliable))
        self._sub_reliable = reliable

    def _recheck_input_qos(self) -> None:
        """``input_qos: auto``: follow the publishers when they change (e.g. a camera started later)."""
        wanted = self._wanted_reliability()
        if wanted != self._sub_reliable:
            self.get_logger().info(f"input_qos auto: publishers on {self._image_sub.topic_name} are "
                                   f"{'all reliable' if wanted else 'not all reliable'}; resubscribing "
                                   f"{'reliable' if wanted else 'best effort'}")
            self._subscribe_image(wanted)

    def _on_image(self, msg: Any, info: dict) -> None:
        # rclpy passes the MessageInfo too: publisher gid and sequence number reveal frames the
        # depth-1 input queue overwrote before the executor took them (or a best-effort link lost).
        gid = ((info or {}).get("publisher_gid") or {}).get("data")
        seq = (info or {}).get("publication_sequence_number")
        skipped = self._gaps.skipped(bytes(gid), seq) if gid is not None and seq else 0
        pipeline = self.pipeline    # (None once a managed node deactivated, under a multi-threaded executor)
        if pipeline is not None:
            pipeline.submit(msg, skipped=skipped)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.set_camera_info(msg.k, msg.width, msg.height)

    def _decode(self, msg: Any) -> tuple[Any, str]:
        side = self._cfg["max_image_side"]
        if self._compressed:
            return decode_compressed(msg.format, msg.data, max_side=side)
        return decode_image_msg(msg, max_side=side)

    # ------------------------------------------------------------------ output
    def _demand(self) -> list[str]:
        return [name for name, pub in self._pubs.items() if pub.get_subscription_count() > 0]

    def _publish(self, name: str, value: Any, frame: Any) -> None:
        self._pubs[name].publish(product_msg(name, value, frame, model_name=self.segmenter.model_name,
                                             weights=self._weights_label,
                                             grid_frame_id=self._cfg["grid_frame_id"]))

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        current = {name: self.get_parameter(name).value for name in self._cfg}
        for p in params:
            reason = SEGMENTATION.validate(p.name, p.value, current)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for p in params:
            self._cfg[p.name] = p.value     # kept for the next _start_processing (a managed node's activate)
            if self.pipeline is not None:
                _apply_setting(self.pipeline, p.name, p.value)
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        seg = self.segmenter
        extra = {"device": str(seg.device), "backend": seg.backend, "precision": seg.precision,
                 "backend_reason": seg.backend_reason, "allocator": allocator_status(),
                 "model": seg.model_name, "weights": self._weights_label,
                 "input_topic": self._image_sub.topic_name,
                 "input_reliability": "reliable" if self._sub_reliable else "best_effort"}
        self._diag_pub.publish(diagnostic_array(
            f"{self.get_fully_qualified_name()}: segmentation", str(seg.device),
            self.pipeline.health(self._cfg["diagnostics_period_s"]), extra, self.get_clock().now().to_msg()))

    def stats(self) -> dict[str, int]:
        """The pipeline's frame counters (see :meth:`FramePipeline.stats`)."""
        return self.pipeline.stats()

    # ------------------------------------------------------------------ shutdown
    def _teardown(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
        logging.getLogger("roadseg_ros").removeHandler(self._log_handler)

    def destroy_node(self) -> None:
        """Stop the worker (it finishes the frame in progress) before the publishers go away."""
        self._teardown()
        super().destroy_node()


def _apply_setting(target: FramePipeline | PipelineSettings, name: str, value: Any) -> bool:
    """A dynamic node parameter onto the pipeline: ``publish_<output>`` switches an output,
    the others (``overlay_alpha``, ``max_rate_hz``, ``warn_throttle_s``) carry their names over."""
    if name.startswith("publish_"):
        return target.enable(name[len("publish_"):], bool(value))
    return target.set(name, value)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``segmentation_node``; returns the process exit status."""
    configure_process()
    return run_node("segmentation_node", SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
