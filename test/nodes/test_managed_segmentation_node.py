"""The managed (lifecycle) segmentation node, driven through its real lifecycle services over DDS.

``change_state`` and ``get_state`` (lifecycle_msgs) are called from the harness node, as
``ros2 lifecycle set`` or a lifecycle manager would: every transition, what each state
holds (model, publishers, subscription, worker), a failed configure, ``autostart``, the
products against the plain node's on the same frame, and the executable in its own process.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from roadseg_ros.config import ConfigError  # noqa: E402
from roadseg_ros.data.synthetic import render_scene_with_info  # noqa: E402
from roadseg_ros.nodes.managed_segmentation_node import ManagedSegmentationNode  # noqa: E402
from roadseg_ros.nodes.messages import classes_from_msg  # noqa: E402
from roadseg_ros.nodes.segmentation_node import SegmentationNode  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
W, H = 320, 192
SCENE_OPTS = {"camera_height": 1.5, "horizon": 0.45, "hfov_deg": 70.0, "curvature": 0.0, "car_density": 0.0}
IMAGES = ("mask", "overlay", "color_mask", "confidence")
T = Transition


def _params(weights: Path, **extra: Any) -> list[Parameter]:
    values = {"weights": str(weights), "device": "cpu", "camera_height_m": 1.5, "camera_pitch_deg": 0.0,
              "warn_throttle_s": 0.0, "grid_resolution_m": 0.25, "grid_extent_forward_m": 20.0,
              "grid_extent_side_m": 6.0, **extra}
    return [Parameter(k, value=v) for k, v in values.items()]


class Lifecycle:
    """Clients of one lifecycle node's ``change_state`` and ``get_state`` services (on ``node``)."""

    def __init__(self, node: Any, target: str, nt: Any) -> None:
        self.nt = nt
        self.change = node.create_client(ChangeState, f"{target}/change_state")
        self.get = node.create_client(GetState, f"{target}/get_state")
        nt.wait_for(lambda: self.change.service_is_ready() and self.get.service_is_ready(), 60,
                    f"the lifecycle services of {target}")

    def _call(self, client: Any, request: Any) -> Any:
        future = client.call_async(request)
        self.nt.wait_for(future.done, 60, f"a reply from {client.srv_name}")
        return future.result()

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success


def _latched_classes(harness: Any) -> list[String]:
    got: list[String] = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    harness.node.create_subscription(String, f"{harness.prefix}/classes", got.append, qos)
    return got


def _send(harness: Any, nt: Any, image: np.ndarray, frame_id: str) -> None:
    harness.image_pub.publish(nt.image_msg(image, "rgb8", frame_id, stamp=(1700, 42)))


# ---------------------------------------------------------------------- transitions
def test_every_transition_through_the_lifecycle_services(ros_context, trained_model, nt) -> None:
    harness = nt.Harness(ros_context, "/life")
    classes = _latched_classes(harness)
    node = ManagedSegmentationNode(namespace="/life", context=ros_context,
                                   parameter_overrides=_params(trained_model.path))
    spinner = nt.Spinner(ros_context, harness.node, node)
    image = render_scene_with_info(11, W, H, **SCENE_OPTS)[0]
    mask_topic = "/life/roadseg/mask"
    try:
        life = Lifecycle(harness.node, "/life/roadseg", nt)
        # Unconfigured: parameters only.
        assert life.state() == "unconfigured"
        assert node.segmenter is None and node.pipeline is None
        assert node.get_parameter("autostart").value is False
        assert harness.node.count_publishers(mask_topic) == 0
        assert harness.image_pub.get_subscription_count() == 0

        # configure: the model and the publishers, but no camera subscription and no worker yet.
        assert life.transition(T.TRANSITION_CONFIGURE)
        assert life.state() == "inactive"
        assert node.segmenter is not None and node.pipeline is None
        nt.wait_for(lambda: harness.node.count_publishers(mask_topic) == 1, 20, "the mask publisher")
        assert harness.image_pub.get_subscription_count() == 0
        assert node.get_parameter("model.class_names").value[3] == "road"

        # activate: subscribed, worker running, products and the latched taxonomy published.
        assert life.transition(T.TRANSITION_ACTIVATE)
        assert life.state() == "active"
        harness.wait_matched(node)
        _send(harness, nt, image, "a1")
        mask = harness.wait_output("mask", "a1")
        assert (mask.width, mask.height) == (W, H)
        harness.wait_output("drivable_area", "a1")
        nt.wait_for(lambda: classes, 20, "the latched ~/classes")
        assert classes_from_msg(classes[-1])["model"] == "tiny_segnet"
        pipeline = node.pipeline
        assert pipeline.worker_alive

        # deactivate: unsubscribed and the worker thread ended; the model stays loaded.
        assert life.transition(T.TRANSITION_DEACTIVATE)
        assert life.state() == "inactive"
        assert node.pipeline is None and not pipeline.worker_alive
        assert node.segmenter is not None
        del pipeline    # (the one reference to the network that is the test's own)
        nt.wait_for(lambda: harness.image_pub.get_subscription_count() == 0, 20, "the node to unsubscribe")
        _send(harness, nt, image, "while-inactive")

        # activate again: works at once, and the frame sent while inactive was never processed.
        assert life.transition(T.TRANSITION_ACTIVATE)
        harness.wait_matched(node)
        _send(harness, nt, image, "a2")
        harness.wait_output("mask", "a2")
        assert harness.get("mask", "while-inactive") is None

        # deactivate + cleanup: the publishers go and the network is freed.
        segmenter = weakref.ref(node.segmenter)
        assert life.transition(T.TRANSITION_DEACTIVATE)
        assert life.transition(T.TRANSITION_CLEANUP)
        assert life.state() == "unconfigured"
        assert node.segmenter is None
        gc.collect()
        assert segmenter() is None, "cleanup left the network referenced"
        nt.wait_for(lambda: harness.node.count_publishers(mask_topic) == 0, 20, "the publishers to go")

        # The whole way up again (the model.* parameters are already declared: same weights).
        assert life.transition(T.TRANSITION_CONFIGURE) and life.transition(T.TRANSITION_ACTIVATE)
        harness.wait_matched(node)
        _send(harness, nt, image, "a3")
        harness.wait_output("mask", "a3")

        # shutdown from active: finalized, nothing left running.
        pipeline = node.pipeline
        assert life.transition(T.TRANSITION_ACTIVE_SHUTDOWN)
        assert life.state() == "finalized"
        assert node.pipeline is None and not pipeline.worker_alive and node.segmenter is None
    finally:
        spinner.stop()
        node.destroy_node()
        harness.destroy()


def test_an_impossible_transition_is_refused_and_the_node_stays_usable(ros_context, trained_model,
                                                                       nt) -> None:
    harness = nt.Harness(ros_context, "/refuse", outputs=("mask",))
    node = ManagedSegmentationNode(namespace="/refuse", context=ros_context,
                                   parameter_overrides=_params(trained_model.path))
    spinner = nt.Spinner(ros_context, harness.node, node)
    try:
        life = Lifecycle(harness.node, "/refuse/roadseg", nt)
        assert not life.transition(T.TRANSITION_ACTIVATE)       # not configured yet
        assert not life.transition(T.TRANSITION_CLEANUP)
        assert life.state() == "unconfigured"
        assert life.transition(T.TRANSITION_CONFIGURE) and life.transition(T.TRANSITION_ACTIVATE)
        assert not life.transition(T.TRANSITION_CONFIGURE)      # already configured
        assert life.state() == "active"
    finally:
        spinner.stop()
        node.destroy_node()
        harness.destroy()


def test_a_failed_configure_stays_unconfigured_with_one_clear_error(ros_context, nt, tmp_path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is not a checkpoint")
    harness = nt.Harness(ros_context, "/badweights", outputs=())
    errors: list[Log] = []
    rosout_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def on_log(msg: Log) -> None:
        if msg.name == "badweights.roadseg" and msg.level >= Log.ERROR:
            errors.append(msg)

    harness.node.create_subscription(Log, "/rosout", on_log, rosout_qos)
    node = ManagedSegmentationNode(namespace="/badweights", context=ros_context,
                                   parameter_overrides=_params(broken))
    spinner = nt.Spinner(ros_context, harness.node, node)
    try:
        life = Lifecycle(harness.node, "/badweights/roadseg", nt)
        assert not life.transition(T.TRANSITION_CONFIGURE)
        assert life.state() == "unconfigured"
        assert node.segmenter is None
        assert node.configure_error and "broken.pt" in node.configure_error
        nt.wait_for(lambda: errors, 20, "the error on /rosout")
        assert life.state() == "unconfigured"     # (one more round trip for a late second error)
        assert [e.msg for e in errors] == [node.configure_error], [e.msg for e in errors]
        assert "\n" not in errors[0].msg and "Traceback" not in errors[0].msg
        assert harness.node.count_publishers("/badweights/roadseg/mask") == 0
        assert not life.transition(T.TRANSITION_ACTIVATE)
        assert life.state() == "unconfigured"
    finally:
        spinner.stop()
        node.destroy_node()
        harness.destroy()


# ---------------------------------------------------------------------- autostart and products
def test_autostart_failure_is_a_config_error_like_the_plain_nodes(ros_context, tmp_path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ConfigError, match="broken.pt") as err:
        ManagedSegmentationNode(namespace="/auto_bad", context=ros_context,
                                parameter_overrides=_params(broken, autostart=True))
    assert "\n" not in str(err.value)


def _compare(name: str, plain: Any, managed: Any) -> None:
    if name in IMAGES:
        assert (plain.width, plain.height, plain.encoding, plain.step) == \
            (managed.width, managed.height, managed.encoding, managed.step), name
        assert bytes(plain.data) == bytes(managed.data), f"{name} differs"
    elif name == "drivable_grid":
        assert plain.info == managed.info and list(plain.data) == list(managed.data)
    else:   # drivable_area: every field but the measured latencies
        for field in plain.get_fields_and_field_types():
            if field == "header" or field.endswith("latency_ms"):
                continue
            a, b = getattr(plain, field), getattr(managed, field)
            if field == "main_region_polygon":
                assert [(p.x, p.y) for p in a] == [(p.x, p.y) for p in b], field
            elif isinstance(a, float):
                assert np.isclose(a, b, equal_nan=True), field
            elif isinstance(a, (str, int)):
                assert a == b, field
            else:
                assert list(a) == list(b), field
    assert plain.header.frame_id == managed.header.frame_id and plain.header.stamp == managed.header.stamp


def test_autostart_reaches_active_and_its_products_equal_the_plain_nodes(ros_context, trained_model,
                                                                         nt) -> None:
    plain_h = nt.Harness(ros_context, "/twin_plain")
    managed_h = nt.Harness(ros_context, "/twin_managed")
    plain = SegmentationNode(namespace="/twin_plain", context=ros_context,
                             parameter_overrides=_params(trained_model.path))
    managed = ManagedSegmentationNode(namespace="/twin_managed", context=ros_context,
                                      parameter_overrides=_params(trained_model.path, autostart=True))
    spinner = nt.Spinner(ros_context, plain_h.node, managed_h.node, plain, managed)
    image, _, info = render_scene_with_info(11, W, H, **SCENE_OPTS)
    try:
        assert Lifecycle(managed_h.node, "/twin_managed/roadseg", nt).state() == "active"
        for harness, node in ((plain_h, plain), (managed_h, managed)):
            harness.wait_matched(node)
            cam = nt.camera_info(W, H, info.focal_px)
            cam.k[2], cam.k[5] = info.cx, info.horizon_row
            nt.wait_for(lambda h=harness: h.node.count_subscribers(f"{h.ns}/camera_info") >= 1, 20,
                        "camera_info reader")
            harness.info_pub.publish(cam)
            nt.wait_for(lambda n=node: n.pipeline.has_camera_info(), 20, "camera_info at the node")
            _send(harness, nt, image, "same")
        for name in (*IMAGES, "drivable_area", "drivable_grid"):
            _compare(name, plain_h.wait_output(name, "same"), managed_h.wait_output(name, "same"))
        assert np.isfinite(managed_h.wait_output("drivable_area", "same").free_distance_ahead)
    finally:
        spinner.stop()
        plain.destroy_node()
        managed.destroy_node()
        plain_h.destroy()
        managed_h.destroy()


# ---------------------------------------------------------------------- the executable
def _node_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "roadseg_ros.nodes.managed_segmentation_node", *args]


def test_help_lists_autostart() -> None:
    out = subprocess.run(_node_cmd("--help"), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "managed_segmentation_node" in out.stdout and "autostart: bool = false" in out.stdout


def test_autostart_with_broken_weights_exits_2_with_one_line(tmp_path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is not a checkpoint")
    out = subprocess.run(_node_cmd("--ros-args", "-p", "autostart:=true", "-p", f"weights:={broken}"),
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(lines) == 1 and "broken.pt" in lines[0], lines


def test_lifecycle_driven_from_another_process(ros_context, trained_model, nt) -> None:
    """The executable in its own process, configured and activated over DDS, stopped by Ctrl-C."""
    ns = "/life_proc"
    proc = subprocess.Popen(_node_cmd("--ros-args", "-p", f"weights:={trained_model.path}",
                                      "-p", "device:=cpu", "-r", f"__ns:={ns}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, RCUTILS_LOGGING_BUFFERED_STREAM="0"))
    harness = nt.Harness(ros_context, ns, outputs=("mask",))
    spinner = nt.Spinner(ros_context, harness.node)
    try:
        life = Lifecycle(harness.node, f"{ns}/roadseg", nt)
        assert life.state() == "unconfigured"
        assert life.transition(T.TRANSITION_CONFIGURE) and life.transition(T.TRANSITION_ACTIVATE)
        harness.wait_matched(timeout=60)
        image = render_scene_with_info(3, W, H, **SCENE_OPTS)[0]
        for i in range(3):      # the first may race the node's own output matching
            _send(harness, nt, image, f"p{i}")
            try:
                harness.wait_output("mask", f"p{i}", 15)
                break
            except AssertionError:
                if i == 2:
                    raise
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        spinner.stop()
        harness.destroy()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
