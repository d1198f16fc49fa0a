"""roadseg_ros.nodes.messages: each builder on its own, from the pipeline's products."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from roadseg_ros.geometry import GridSpec, GroundCamera, analyze_drivable, drivable_grid  # noqa: E402
from roadseg_ros.nodes.messages import (  # noqa: E402
    camera_info_msg,
    diagnostic_array,
    drivable_area_msg,
    grid_msg,
    product_msg,
    stamp_ns,
)
from roadseg_ros.pipeline import DrivableAreaProduct, Frame, GridProduct, Health  # noqa: E402


def _header(frame_id: str = "cam") -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def test_camera_info_from_fov_and_from_k():
    info = camera_info_msg(800, 600, fov_deg=90.0, header=_header("ego/rgb_front"))
    assert (info.width, info.height, info.header.frame_id) == (800, 600, "ego/rgb_front")
    assert list(info.k) == pytest.approx([400.0, 0.0, 400.0, 0.0, 400.0, 300.0, 0.0, 0.0, 1.0])
    assert list(info.p)[:4] == pytest.approx([400.0, 0.0, 400.0, 0.0]) and len(info.p) == 12
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    K = [500.0, 0.0, 320.5, 0.0, 505.0, 180.5, 0.0, 0.0, 1.0]
    assert list(camera_info_msg(640, 360, k=K).p) == [500.0, 0.0, 320.5, 0.0, 0.0, 505.0, 180.5, 0.0,
                                                     0.0, 0.0, 1.0, 0.0]


def test_image_products_keep_the_header_and_colour_order():
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 200                                     # red in RGB
    frame = Frame(payload=type("Msg", (), {"header": _header()})(), received=0.0, color_order="rgb")
    msg = product_msg("overlay", image, frame, model_name="m", weights="w")
    assert msg.encoding == "bgr8" and msg.header.frame_id == "cam" and stamp_ns(msg.header) == 12_000_000_345
    assert np.frombuffer(bytes(msg.data), np.uint8).reshape(4, 6, 3)[0, 0].tolist() == [0, 0, 200]
    mask = product_msg("mask", np.full((4, 6), 3, np.uint8), frame, model_name="m", weights="w")
    assert mask.encoding == "mono8" and set(bytes(mask.data)) == {3}
    with pytest.raises(ValueError, match="no message"):
        product_msg("sky", image, frame, model_name="m", weights="w")


def test_drivable_area_and_grid_messages():
    drivable = np.zeros((40, 60), bool)
    drivable[20:, 10:50] = True
    area = DrivableAreaProduct(width=60, height=40, analysis=analyze_drivable(drivable),
                               free_distance_ahead=math.nan, inference_latency_ms=3.0, total_latency_ms=5.0)
    msg = drivable_area_msg(_header(), area, "tiny", "w.pt")
    assert (msg.width, msg.height, msg.model_name, msg.weights) == (60, 40, "tiny", "w.pt")
    assert msg.drivable_ratio == pytest.approx(drivable.mean()) and math.isnan(msg.free_distance_ahead)
    assert msg.total_latency_ms == 5.0 and len(msg.main_region_polygon) >= 4
    spec = GridSpec(0.5, 10.0, 4.0)
    camera = GroundCamera.from_camera_info([50.0, 0, 30, 0, 50.0, 20, 0, 0, 1], 60, 40, 60, 40, 1.5, 0.0)
    grid = GridProduct(drivable_grid(drivable, camera, spec), camera, spec)
    in_image = grid_msg(_header(), grid)
    on_ground = grid_msg(_header(), grid, frame_id="base_footprint")
    assert (in_image.info.height, in_image.info.width) == spec.shape
    assert len(in_image.data) == spec.shape[0] * spec.shape[1]
    assert in_image.header.frame_id == "cam" and on_ground.header.frame_id == "base_footprint"
    assert on_ground.info.origin.position.y == -4.0 and on_ground.info.origin.orientation.w == 1.0


def test_diagnostics_levels():
    stats = {"received": 3, "processed": 2, "dropped": 1, "dropped_in_queue": 0, "dropped_in_slot": 1,
             "rejected": 0, "idle": 0, "errors": 0}
    empty = np.zeros(0)
    ok = Health(stats, 2.0, np.array([10.0, 30.0]), empty, empty, empty, True, "")
    msg = diagnostic_array("/roadseg: segmentation", "cpu", ok, {"model": "tiny"}, _header().stamp)
    status = msg.status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and values["model"] == "tiny"
    assert values["latency_ms_mean"] == "20.00"
    assert values["processing_ms_mean"] == "nan" and values["frames_dropped_waiting"] == "1"
    bad = Health({**stats, "rejected": 1}, 0.0, empty, empty, empty, empty, True, "rejected frame: x")
    assert diagnostic_array("n", "cpu", bad, {}, _header().stamp).status[0].level == DiagnosticStatus.WARN
    dead = Health(stats, 0.0, empty, empty, empty, empty, False, "")
    dead_status = diagnostic_array("n", "cpu", dead, {}, _header().stamp).status[0]
    assert dead_status.message == "worker thread stopped"


def test_classes_message_round_trip_and_clear_errors() -> None:
    from std_msgs.msg import String

    from roadseg_ros.nodes.messages import CLASSES_FORMAT, classes_from_msg, classes_msg

    msg = classes_msg("tiny", ["sky", "road"], [(1, 2, 3), (4, 5, 6)], [1])
    data = json.loads(msg.data)
    assert data == {"format": CLASSES_FORMAT, "model": "tiny", "class_names": ["sky", "road"],
                    "class_colors": [[1, 2, 3], [4, 5, 6]], "drivable_classes": [1]}
    assert classes_from_msg(msg) == data
    with pytest.raises(ValueError, match="not JSON"):
        classes_from_msg(String(data="{"))
    with pytest.raises(ValueError, match="format"):
        classes_from_msg(String(data='{"format": "other"}'))
    with pytest.raises(ValueError, match="drivable_classes"):
        classes_from_msg(classes_msg("tiny", ["sky"], [(1, 2, 3)], [4]))


def test_msg_definition_of_drivable_area_registers_and_round_trips() -> None:
    from rclpy.serialization import serialize_message
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from roadseg_ros.msg import DrivableArea
    from roadseg_ros.nodes.messages import msg_definition

    text = msg_definition(DrivableArea)
    assert "float32 drivable_ratio" in text and "geometry_msgs/Point32[] main_region_polygon" in text
    store = get_typestore(Stores.LATEST)
    store.register(get_types_from_msg(text, "roadseg_ros/msg/DrivableArea"))
    msg = DrivableArea(width=4, height=3, drivable_ratio=0.25, boundary_rows=[1, 2], model_name="m")
    back = store.deserialize_cdr(serialize_message(msg), "roadseg_ros/msg/DrivableArea")
    assert (back.width, back.height, back.model_name) == (4, 3, "m")
    assert back.drivable_ratio == pytest.approx(0.25) and list(back.boundary_rows) == [1, 2]
