"""ROS messages from the engine's results: images, DrivableArea, OccupancyGrid, CameraInfo, diagnostics.

The pipeline computes numpy arrays and small dataclasses; turning them into messages is
the nodes' business and lives here, one builder per message, so the segmentation node
stays wiring and a builder can be tested on its own.
"""

from __future__ import annotations

import array
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point32
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from roadseg_ros.geometry import intrinsics_from_fov
from roadseg_ros.image_codec import fill_image_msg
from roadseg_ros.msg import DrivableArea
from roadseg_ros.pipeline import DrivableAreaProduct, Frame, GridProduct, Health

__all__ = ["product_msg", "image_msg", "drivable_area_msg", "grid_msg", "camera_info_msg",
           "diagnostic_array", "stamp_ns", "compressed_msg", "msg_definition", "classes_msg",
           "classes_from_msg", "CLASSES_FORMAT"]

#: ``format`` field of the ``~/classes`` JSON, bumped if its meaning ever changes.
CLASSES_FORMAT = "roadseg_ros/classes/1"


def stamp_ns(header: Any) -> int:
    """A header's stamp in nanoseconds (for pairing and latency)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def image_msg(header: Any, image: np.ndarray, encoding: str, color_order: str = "rgb") -> Image:
    """sensor_msgs/Image of ``image`` (mono8 class ids or confidences, bgr8 colours) with ``header``."""
    return fill_image_msg(Image(header=header), image, encoding, color_order=color_order)


def drivable_area_msg(header: Any, area: DrivableAreaProduct, model_name: str, weights: str) -> DrivableArea:
    """roadseg_ros/DrivableArea of one frame (see msg/DrivableArea.msg for the fields)."""
    a = area.analysis
    msg = DrivableArea(header=header)
    msg.width, msg.height = area.width, area.height
    msg.drivable_ratio = float(a.drivable_ratio)
    msg.mean_confidence = float(a.mean_confidence)
    msg.boundary_rows = a.boundary_rows.tolist()
    msg.left_boundary = a.left_boundary.tolist()
    msg.right_boundary = a.right_boundary.tolist()
    msg.main_region_polygon = [Point32(x=float(x), y=float(y), z=0.0) for x, y in a.polygon]
    msg.main_region_ratio = float(a.main_region_ratio)
    msg.free_distance_ahead = float(area.free_distance_ahead)
    msg.model_name = model_name
    msg.weights = weights
    msg.inference_latency_ms = area.inference_latency_ms
    msg.total_latency_ms = area.total_latency_ms
    return msg


def grid_msg(header: Any, grid: GridProduct, frame_id: str = "") -> OccupancyGrid:
    """nav_msgs/OccupancyGrid of the drivable ground.

    ``frame_id`` empty: the grid is placed in the image's frame (its pose computed from the
    camera's height and pitch); otherwise in that ground-aligned frame at the camera's foot
    point (x forward, y left).
    """
    spec = grid.spec
    msg = OccupancyGrid()
    msg.header.stamp = header.stamp
    msg.header.frame_id = frame_id or header.frame_id
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(spec.resolution_m)
    msg.info.height, msg.info.width = grid.cells.shape
    pose = msg.info.origin
    if frame_id:
        pose.position.x, pose.position.y = 0.0, -float(spec.side_m)
        pose.orientation.w = 1.0
    else:
        (pose.position.x, pose.position.y, pose.position.z), q = grid.camera.grid_pose(spec)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q
    data = array.array("b")
    data.frombytes(grid.cells.reshape(-1).view(np.uint8))
    msg.data = data
    return msg


def product_msg(name: str, value: Any, frame: Frame, *, model_name: str, weights: str,
                grid_frame_id: str = "") -> Any:
    """The message of one pipeline product (``name`` as in :data:`roadseg_ros.pipeline.OUTPUTS`)."""
    header = frame.payload.header
    if name in ("mask", "confidence"):
        return image_msg(header, value, "mono8")
    if name == "color_mask":
        return image_msg(header, value, "bgr8", color_order="bgr")
    if name == "overlay":
        return image_msg(header, value, "bgr8", color_order=frame.color_order)
    if name == "drivable_grid":
        return grid_msg(header, value, grid_frame_id)
    if name == "drivable_area":
        return drivable_area_msg(header, value, model_name, weights)
    raise ValueError(f"no message for product {name!r}")


def camera_info_msg(width: int, height: int, *, fov_deg: float = 90.0, k: Sequence[float] | None = None,
                    header: Any = None) -> CameraInfo:
    """sensor_msgs/CameraInfo of an undistorted camera: ``k`` (row-major 3x3) when given, else the
    ideal pinhole with horizontal field of view ``fov_deg`` (how CARLA cameras are described)."""
    K = [float(v) for v in k] if k is not None else \
        intrinsics_from_fov(width, height, fov_deg).reshape(-1).tolist()
    info = CameraInfo()
    if header is not None:
        info.header = header
    info.width, info.height = int(width), int(height)
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = K
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [K[0], K[1], K[2], 0.0, K[3], K[4], K[5], 0.0, K[6], K[7], K[8], 0.0]
    return info


def _mean(a: np.ndarray) -> str:
    return f"{a.mean():.2f}" if a.size else "nan"


def diagnostic_array(name: str, hardware_id: str, health: Health, extra: Mapping[str, str],
                     stamp: Any) -> DiagnosticArray:
    """/diagnostics message of a pipeline: level and message from its health, every counter and
    latency as a key/value, then ``extra`` (device, model, input topic, ...)."""
    stats = health.stats
    status = DiagnosticStatus(name=name, hardware_id=hardware_id)
    if not health.worker_alive:
        status.level, status.message = DiagnosticStatus.ERROR, "worker thread stopped"
    elif stats["rejected"] or stats["errors"]:
        status.level = DiagnosticStatus.WARN
        status.message = f"{stats['rejected']} frames rejected, {stats['errors']} failed; last: " \
                         f"{health.last_problem}"[:300]
    else:
        status.level, status.message = DiagnosticStatus.OK, f"{health.rate_hz:.1f} frames/s"
    lat = health.latency_ms
    values = {
        "rate_hz": f"{health.rate_hz:.2f}",
        "latency_ms_mean": _mean(lat),
        "latency_ms_max": f"{lat.max():.2f}" if lat.size else "nan",
        "processing_ms_mean": _mean(health.processing_ms),
        "predict_ms_mean": _mean(health.predict_ms),
        "inference_ms_mean": _mean(health.inference_ms),
        "frames_received": str(stats["received"]),
        "frames_processed": str(stats["processed"]),
        "frames_dropped": str(stats["dropped"]),
        "frames_dropped_in_input_queue": str(stats["dropped_in_queue"]),
        "frames_dropped_waiting": str(stats["dropped_in_slot"]),
        "frames_rejected": str(stats["rejected"]),
        "frames_failed": str(stats["errors"]),
        "frames_without_subscribers": str(stats["idle"]),
        **extra,
    }
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg



def classes_msg(model: str, class_names: Sequence[str], class_colors: Sequence[Sequence[int]],
                drivable_classes: Sequence[int]) -> String:
    """std_msgs/String holding the model's taxonomy as JSON (the segmentation node's ``~/classes``).

    ``~/mask`` is class ids and means nothing without this: ``{"format", "model",
    "class_names": [...], "class_colors": [[r, g, b], ...], "drivable_classes": [ids]}``;
    index i of the lists describes mask value i. JSON in a standard message rather than a
    package message so that any program (a Python script, Foxglove, a node in another
    language) reads it without our message package built.
    """
    return String(data=json.dumps({
        "format": CLASSES_FORMAT, "model": model, "class_names": [str(n) for n in class_names],
        "class_colors": [[int(c) for c in rgb] for rgb in class_colors],
        "drivable_classes": sorted(int(c) for c in drivable_classes)}))


def classes_from_msg(msg: String) -> dict[str, Any]:
    """The taxonomy ``classes_msg`` wrote; ``ValueError`` naming the problem for anything else."""
    try:
        data = json.loads(msg.data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"classes message is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CLASSES_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise ValueError(f"classes message has format {found!r}, expected {CLASSES_FORMAT!r}")
    names, drivable = data.get("class_names"), data.get("drivable_classes")
    if not isinstance(names, list) or not isinstance(drivable, list) \
            or any(not isinstance(c, int) or not 0 <= c < max(len(names), 1) for c in drivable):
        raise ValueError("classes message: drivable_classes must be ids of class_names")
    return data


def compressed_msg(header: Any, bgr: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> CompressedImage:
    """sensor_msgs/CompressedImage of a BGR (or single-channel) image: ``jpeg`` or lossless ``png``."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, data = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"could not encode a {bgr.shape} image as {fmt}")
    return CompressedImage(header=header, format=fmt, data=data.tobytes())


_IDL_TO_MSG = {"float": "float32", "double": "float64", "boolean": "bool", "octet": "byte",
               "long double": "float64"}


def msg_definition(msg_class: type) -> str:
    """The ``.msg`` text of an rclpy message class, from its field table (constants left out).

    A recording needs each type's definition; rosbags knows the standard ones, this gives
    it ours (DrivableArea) from the generated class, so the recording never disagrees with
    the message the node really publishes.
    """
    lines = []
    for name, idl in msg_class.get_fields_and_field_types().items():
        array = ""
        if idl.startswith("sequence<"):
            idl, array = idl[len("sequence<"):-1], "[]"
            if "," in idl:                                 # bounded sequence<T, N>
                idl, bound = (s.strip() for s in idl.split(","))
                array = f"[<={bound}]"
        elif idl.endswith("]") and "[" in idl:
            idl, array = idl[: idl.index("[")], idl[idl.index("["):]
        lines.append(f"{_IDL_TO_MSG.get(idl, idl)}{array} {name}")
    return "\n".join(lines) + "\n"
