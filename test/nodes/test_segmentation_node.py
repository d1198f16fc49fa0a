"""The segmentation node through real rclpy and Fast DDS, in-process and across processes.

One node (plus a harness node that plays camera and consumer) is shared by most tests
of this module; tests that need other read-only parameters start their own. Every wait
is a bounded poll (discovery, outputs, counters), never a fixed sleep.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from roadseg_ros.data.synthetic import render_scene, render_scene_with_info  # noqa: E402
from roadseg_ros.geometry import analyze_drivable, sample_rows  # noqa: E402
from roadseg_ros.image_codec import SUPPORTED_ENCODINGS  # noqa: E402
from roadseg_ros.nodes.params import SEGMENTATION  # noqa: E402
from roadseg_ros.nodes.segmentation_node import SegmentationNode  # noqa: E402
from roadseg_ros.visualize import colorize, overlay  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RCLError = _rclpy.RCLError
W, H = 320, 192
CAMERA_HEIGHT = 1.5
# A straight, empty road seen by a level camera: the scene's geometry is known exactly.
SCENE_OPTS = {"camera_height": CAMERA_HEIGHT, "horizon": 0.45, "hfov_deg": 70.0, "curvature": 0.0,
              "car_density": 0.0}
GRID = {"grid_resolution_m": 0.25, "grid_extent_forward_m": 20.0, "grid_extent_side_m": 6.0}


def make_node(ctx, weights: Path, namespace: str, **params) -> SegmentationNode:
    values = {"weights": str(weights), "device": "cpu", "camera_height_m": CAMERA_HEIGHT,
              "camera_pitch_deg": 0.0, "warn_throttle_s": 0.0, **GRID, **params}
    return SegmentationNode(namespace=namespace, context=ctx,
                            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


@pytest.fixture(scope="module")
def env(ros_context, trained_model, nt):
    # The harness (with its reliable camera publisher) exists first, so input_qos auto picks reliable.
    harness = nt.Harness(ros_context, "/main")
    node = make_node(ros_context, trained_model.path, "/main")
    spinner = nt.Spinner(ros_context, harness.node, node)
    image, label, info = render_scene_with_info(11, W, H, **SCENE_OPTS)
    cam = nt.camera_info(W, H, info.focal_px)
    cam.k[2], cam.k[5] = info.cx, info.horizon_row
    harness.wait_matched(node)
    nt.wait_for(lambda: harness.node.count_subscribers("/main/camera_info") >= 1, 20, "camera_info reader")
    harness.info_pub.publish(cam)
    nt.wait_for(lambda: node.pipeline.has_camera_info(), 20, "camera_info at the node")
    yield SimpleNamespace(ctx=ros_context, node=node, h=harness, spinner=spinner, image=image, label=label,
                          info=info, counter=iter(range(10**6)), nt=nt)
    spinner.stop()
    node.destroy_node()
    harness.destroy()


def send(env, image: np.ndarray, encoding: str = "rgb8", color_order: str = "rgb") -> str:
    """Publish a frame with a fresh frame_id and return that id."""
    frame_id = f"f{next(env.counter)}"
    env.h.image_pub.publish(env.nt.image_msg(image, encoding, frame_id, color_order, stamp=(1700, 42)))
    return frame_id


def to_array(msg: Image) -> np.ndarray:
    ch = {"mono8": 1, "bgr8": 3}[msg.encoding]
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :msg.width * ch] \
        .reshape(msg.height, msg.width, ch).squeeze()


# ---------------------------------------------------------------------- outputs
def test_every_output_for_a_synthetic_scene(env) -> None:
    fid = send(env, env.image)
    out = {name: env.h.wait_output(name, fid) for name in ("mask", "overlay", "color_mask", "confidence",
                                                            "drivable_area", "drivable_grid")}
    for name in ("mask", "overlay", "color_mask", "confidence"):
        msg = out[name]
        assert (msg.width, msg.height) == (W, H), name
        assert msg.encoding == ("mono8" if name in ("mask", "confidence") else "bgr8"), name
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (1700, 42, fid)
    mask = to_array(out["mask"])
    iou = env.nt.road_iou(mask, env.label)
    assert iou >= 0.5, f"node mask agrees poorly with the scene's road: IoU {iou:.2f}"
    colors = env.node.segmenter.class_colors
    np.testing.assert_array_equal(to_array(out["color_mask"]), colorize(mask, colors, color_order="bgr"))
    expected_overlay = overlay(env.image, mask, colors, 0.5, color_order="rgb")[..., ::-1]
    np.testing.assert_array_equal(to_array(out["overlay"]), expected_overlay)
    conf = to_array(out["confidence"]).astype(np.float64) / 255.0
    assert conf.min() >= 1.0 / 11 - 1 / 255    # a max softmax over 11 classes is at least 1/11

    da = out["drivable_area"]
    road = mask == 3
    ref = analyze_drivable(road, conf, boundary_rows=sample_rows(H, 16))
    assert (da.header.frame_id, da.header.stamp.sec, da.width, da.height) == (fid, 1700, W, H)
    assert da.drivable_ratio == pytest.approx(road.mean(), abs=1e-6)
    assert da.main_region_ratio == pytest.approx(ref.main_region_ratio, abs=1e-6)
    assert 0.05 < da.main_region_ratio <= da.drivable_ratio
    assert da.mean_confidence == pytest.approx(ref.mean_confidence, abs=0.01)
    assert list(da.boundary_rows) == ref.boundary_rows.tolist()
    assert list(da.left_boundary) == ref.left_boundary.tolist()
    assert list(da.right_boundary) == ref.right_boundary.tolist()
    poly = np.array([[p.x, p.y] for p in da.main_region_polygon])
    assert len(poly) >= 3 and poly[:, 1].max() == H - 1
    assert cv2.pointPolygonTest(poly.astype(np.float32), (W / 2, H - 3), False) >= 0
    assert da.model_name == "tiny_segnet" and da.weights.endswith("tiny_road.pt")
    assert 0 < da.inference_latency_ms <= da.total_latency_ms
    assert da.free_distance_ahead > 0


def test_drivable_grid_matches_the_known_camera(env) -> None:
    """Level camera at 1.5 m: a cell (X, Y) is seen at u = cx - f Y / X, v = cy + f h / X."""
    fid = send(env, env.image)
    grid_msg = env.h.wait_output("drivable_grid", fid)
    mask = to_array(env.h.wait_output("mask", fid))
    da = env.h.wait_output("drivable_area", fid)
    info = env.info
    res, fwd, side = GRID["grid_resolution_m"], GRID["grid_extent_forward_m"], GRID["grid_extent_side_m"]
    rows, cols = int(2 * side / res), int(fwd / res)
    assert (grid_msg.info.width, grid_msg.info.height) == (cols, rows)
    assert grid_msg.info.resolution == pytest.approx(res)
    assert grid_msg.header.frame_id == fid and grid_msg.header.stamp.sec == 1700
    grid = np.array(grid_msg.data, dtype=np.int8).reshape(rows, cols)

    X = (np.arange(cols) + 0.5) * res
    Y = -side + (np.arange(rows) + 0.5) * res
    XX, YY = np.meshgrid(X, Y)
    u = info.cx - info.focal_px * YY / XX
    v = info.horizon_row + info.focal_px * CAMERA_HEIGHT / XX
    ui, vi = np.rint(u).astype(int), np.rint(v).astype(int)
    visible = (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    assert (grid[~visible] == -1).all()
    expected = np.where(mask[vi.clip(0, H - 1), ui.clip(0, W - 1)] == 3, 0, 100)
    agree = (grid[visible] == expected[visible]).mean()
    assert agree > 0.98, f"grid disagrees with the projected mask in {1 - agree:.1%} of visible cells"
    # Ground truth: the road straight ahead, 4..12 m, within +-1 m of the camera, is free.
    ahead = visible & (XX > 4) & (XX < 12) & (np.abs(YY) < 1.0)
    assert ahead.any()
    assert (env.label[vi[ahead], ui[ahead]] == 3).all()          # premise: really road in the scene
    assert (grid[ahead] == 0).mean() > 0.9
    # The origin pose puts cell (0, 0) at X=0, Y=-side on the ground, in the optical frame (level camera).
    o = grid_msg.info.origin.position
    assert (o.x, o.y, o.z) == pytest.approx((side, CAMERA_HEIGHT, 0.0))
    # Free distance: the top of the drivable run in the principal column, projected to the ground.
    col = mask[:, int(round(info.cx))] == 3
    top = H - 1
    while top > 0 and col[top - 1]:
        top -= 1
    expected_free = info.focal_px * CAMERA_HEIGHT / (top - info.horizon_row) if top > info.horizon_row \
        else math.inf
    assert da.free_distance_ahead == pytest.approx(expected_free, rel=1e-4)


def test_mask_agreement_with_the_bundled_model(ros_context, nt) -> None:
    harness = nt.Harness(ros_context, "/bundled", outputs=("mask",))
    node = SegmentationNode(namespace="/bundled", context=ros_context,
                            parameter_overrides=[Parameter("device", value="cpu")])
    spinner = nt.Spinner(ros_context, harness.node, node)
    try:
        harness.wait_matched(node)
        ious = []
        for seed in (21, 22, 23):
            image, label = render_scene(seed, 640, 360)
            msg = nt.image_msg(image, "rgb8", f"b{seed}")
            harness.image_pub.publish(msg)
            ious.append(nt.road_iou(to_array(harness.wait_output("mask", f"b{seed}", 60)), label))
        # Measured on these three frames: mean road IoU 0.972 (torch fp32, OpenVINO bf16 and int8
        # alike; 0.96-0.98 each). A little below that, so a real loss of quality fails here.
        assert np.mean(ious) >= 0.95, f"bundled model road IoU on synthetic scenes {np.mean(ious):.3f}"
    finally:
        spinner.stop()
        node.destroy_node()
        harness.destroy()


# Issue 21's limits for the runtimes: arg-max agreement with torch fp32 on the same frame.
BACKEND_AGREEMENT = {("openvino", "fp32"): 0.999, ("openvino", "bf16"): 0.995, ("onnxruntime", "fp32"): 0.999}


def test_every_backend_gives_the_products_torch_gives(ros_context, nt) -> None:
    """The bundled model through the node with each runtime: same mask and drivable area as torch."""
    from roadseg_ros.backends import runtime_missing

    image = render_scene(31, 640, 360)[0]
    results = {}
    for backend, precision in [("torch", "fp32"), *BACKEND_AGREEMENT]:
        if runtime_missing(backend):
            continue
        ns = f"/be_{backend}_{precision}"
        harness = nt.Harness(ros_context, ns, outputs=("mask", "drivable_area"))
        node = SegmentationNode(namespace=ns, context=ros_context, parameter_overrides=[
            Parameter("device", value="cpu"), Parameter("backend", value=backend),
            Parameter("precision", value=precision)])
        spinner = nt.Spinner(ros_context, harness.node, node)
        try:
            assert (node.segmenter.backend, node.segmenter.precision) == (backend, precision)
            harness.wait_matched(node)
            harness.image_pub.publish(nt.image_msg(image, "rgb8", "f"))
            mask = to_array(harness.wait_output("mask", "f", 60))
            results[(backend, precision)] = (mask, harness.wait_output("drivable_area", "f", 60))
        finally:
            spinner.stop()
            node.destroy_node()
            harness.destroy()
    reference, ref_area = results.pop(("torch", "fp32"))
    assert results, "no runtime besides torch is installed"
    for key, (mask, area) in results.items():
        agree = float((mask == reference).mean())
        assert agree >= BACKEND_AGREEMENT[key], f"{key}: mask agrees with torch on {agree:.4f} of the pixels"
        assert abs(area.drivable_ratio - ref_area.drivable_ratio) <= 1 - BACKEND_AGREEMENT[key]


# ---------------------------------------------------------------------- encodings
@pytest.fixture(scope="module")
def reference_mask(env) -> np.ndarray:
    return to_array(env.h.wait_output("mask", send(env, env.image)))


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_every_encoding(env, reference_mask, encoding: str) -> None:
    fid = send(env, env.image, encoding)
    mask = to_array(env.h.wait_output("mask", fid))
    assert mask.shape == (H, W)
    lossless = not any(k in encoding for k in ("mono", "C1", "yuv", "uyvy", "yuyv"))
    if lossless:     # 8-bit colour, 16-bit colour (x257 keeps the high byte), alpha, either order
        np.testing.assert_array_equal(mask, reference_mask)
    elif "mono" not in encoding and "C1" not in encoding:   # 4:2:2 chroma subsampling changes little
        assert (mask == reference_mask).mean() > 0.9
    overlay_msg = env.h.wait_output("overlay", fid)
    assert overlay_msg.encoding == "bgr8" and (overlay_msg.width, overlay_msg.height) == (W, H)


def test_bgr_input_gives_the_same_mask(env, reference_mask) -> None:
    fid = send(env, np.ascontiguousarray(env.image[..., ::-1]), "bgr8", color_order="bgr")
    np.testing.assert_array_equal(to_array(env.h.wait_output("mask", fid)), reference_mask)
    # ... while the same bytes declared rgb8 are another (colour-swapped) picture.
    swapped = np.ascontiguousarray(env.image[..., ::-1])
    fid = send(env, swapped, "rgb8")
    assert not np.array_equal(to_array(env.h.wait_output("mask", fid)), reference_mask)


# ---------------------------------------------------------------------- malformed frames
def _bad_frames(image: np.ndarray) -> dict[str, Image]:
    from roadseg_ros.image_codec import fill_image_msg

    def base(encoding: str = "rgb8") -> Image:
        return fill_image_msg(Image(), image, encoding)

    short = base()
    short.data = short.data[: len(short.data) // 2]
    small_step = base()
    small_step.step = W * 3 - 1
    zero = Image(encoding="rgb8", width=0, height=0, step=0)
    absurd = base()
    absurd.width, absurd.height, absurd.step = 100_000, 2, 300_000
    unknown = base()
    unknown.encoding = "bayer_grbg8"
    empty_encoding = base()
    empty_encoding.encoding = ""
    odd_yuv = Image(encoding="yuv422", width=7, height=2, step=14, data=bytes(28))
    return {"short data": short, "step too small": small_step, "zero size": zero, "absurd size": absurd,
            "unknown encoding": unknown, "empty encoding": empty_encoding, "odd yuv width": odd_yuv}


@pytest.mark.parametrize("case", ["short data", "step too small", "zero size", "absurd size",
                                  "unknown encoding", "empty encoding", "odd yuv width"])
def test_malformed_frame_is_rejected_and_the_next_good_one_processed(env, case: str) -> None:
    before = env.node.stats()["rejected"]
    bad = _bad_frames(env.image)[case]
    bad.header.frame_id = f"bad-{case}"
    env.h.image_pub.publish(bad)
    env.nt.wait_for(lambda: env.node.stats()["rejected"] > before, 20, f"the {case} frame to be rejected")
    assert env.h.get("mask", f"bad-{case}") is None
    fid = send(env, env.image)
    env.h.wait_output("mask", fid)
    status = env.nt.wait_for(lambda: (s := env.h.latest_status()) and int(s["frames_rejected"]) > before
                             and s, 10, "diagnostics counting the rejected frame")
    assert status["_level"] == DiagnosticStatus.WARN and "rejected" in status["_message"]


# ---------------------------------------------------------------------- parameters
def test_runtime_parameter_changes(env) -> None:
    node = env.node
    ok = node.set_parameters([Parameter("overlay_alpha", value=0.25)])[0]
    assert ok.successful
    bad = node.set_parameters([Parameter("overlay_alpha", value=1.5)])[0]
    assert not bad.successful and "overlay_alpha" in bad.reason
    assert node.get_parameter("overlay_alpha").value == 0.25
    for name, value in [("max_rate_hz", -1.0), ("warn_throttle_s", -3.0)]:
        res = node.set_parameters([Parameter(name, value=value)])[0]
        assert not res.successful and res.reason, name
        assert node.get_parameter(name).value != value
    for name, value in [("weights", "/tmp/other.pt"), ("input_qos", "reliable"), ("camera_height_m", 2.0),
                        ("device", "cpu"), ("grid_resolution_m", 1.0)]:
        res = node.set_parameters([Parameter(name, value=value)])[0]
        assert not res.successful and "read-only" in res.reason, name
    wrong_type = node.set_parameters([Parameter("overlay_alpha", value="half")])[0]
    assert not wrong_type.successful
    # The new alpha is used for the next overlay.
    fid = send(env, env.image)
    mask = to_array(env.h.wait_output("mask", fid))
    expected = overlay(env.image, mask, node.segmenter.class_colors, 0.25)[..., ::-1]
    np.testing.assert_array_equal(to_array(env.h.wait_output("overlay", fid)), expected)
    assert node.set_parameters([Parameter("overlay_alpha", value=0.5)])[0].successful


def test_disabled_and_unsubscribed_outputs_are_not_computed(env) -> None:
    node = env.node
    assert node.set_parameters([Parameter("publish_overlay", value=False)])[0].successful
    try:
        fid = send(env, env.image)
        env.h.wait_output("mask", fid)
        env.h.wait_output("drivable_area", fid)
        assert env.h.get("overlay", fid) is None
    finally:
        assert node.set_parameters([Parameter("publish_overlay", value=True)])[0].successful
    # Nothing wanted at all: the network does not run (counted as idle, not processed).
    flags = [Parameter(f"publish_{n}", value=False) for n in ("mask", "overlay", "color_mask", "confidence",
                                                              "drivable_area", "drivable_grid")]
    before = node.stats()
    assert all(r.successful for r in node.set_parameters(flags))
    try:
        send(env, env.image)
        env.nt.wait_for(lambda: node.stats()["idle"] > before["idle"], 20, "an idle frame")
        assert node.stats()["processed"] == before["processed"]
    finally:
        assert all(r.successful for r in node.set_parameters(
            [Parameter(p.name, value=True) for p in flags]))


def test_burst_of_200_frames(env) -> None:
    """Full speed: the node survives, processes the newest frame and reports the drops."""
    big = cv2.resize(env.image, (640, 384))
    before = env.node.stats()
    frames = [env.nt.image_msg(big, "rgb8", f"burst{i}") for i in range(200)]
    for msg in frames:
        env.h.image_pub.publish(msg)
    env.h.wait_output("mask", "burst199", 60)
    # The counters are updated once all of a frame's outputs are out (the mask goes first).
    after = env.nt.wait_for(lambda: (s := env.node.stats())["processed"] > before["processed"] and s, 10,
                            "the processed counter")
    assert after["dropped"] > before["dropped"], (before, after)
    assert after["dropped"] == after["dropped_in_queue"] + after["dropped_in_slot"]
    processed = after["processed"] - before["processed"]
    assert 1 <= processed < 200
    status = env.nt.wait_for(lambda: (s := env.h.latest_status()) and int(s["frames_dropped"]) > 0 and s,
                             10, "diagnostics reporting drops")
    assert status["model"] == "tiny_segnet" and status["device"] == "cpu"
    if platform.libc_ver()[0] == "glibc":   # the CPU Segmenter tuned the allocator, and says so
        assert status["allocator"].startswith("glibc malloc"), status["allocator"]
    assert float(status["latency_ms_mean"]) > 0 or status["latency_ms_mean"] == "nan"
    assert env.node.pipeline.worker_alive
    # And it still works afterwards.
    env.h.wait_output("mask", send(env, env.image))


def test_declared_parameters_have_descriptions_and_ranges(env) -> None:
    for p in SEGMENTATION.params:
        d = env.node.describe_parameter(p.name)
        assert d.description, p.name
        assert d.read_only == (not p.dynamic), p.name
        if isinstance(p.default, float) and p.low is not None:
            assert d.floating_point_range[0].from_value == p.low, p.name


# ---------------------------------------------------------------------- QoS and compressed input
def test_input_qos_auto_follows_the_publishers(ros_context, trained_model, nt) -> None:
    harness = nt.Harness(ros_context, "/qos", image_reliable=False, outputs=("mask",))
    node = make_node(ros_context, trained_model.path, "/qos")
    spinner = nt.Spinner(ros_context, harness.node, node)

    def reader_reliability():
        infos = harness.node.get_subscriptions_info_by_topic("/qos/image")
        return infos[0].qos_profile.reliability if len(infos) == 1 else None

    try:
        nt.wait_for(lambda: reader_reliability() == ReliabilityPolicy.BEST_EFFORT, 20, "a best-effort reader")
        harness.wait_matched(node)
        image, _ = render_scene(3, 160, 96)
        harness.image_pub.publish(nt.image_msg(image, "rgb8", "q1"))
        harness.wait_output("mask", "q1")
        # The best-effort camera goes away and a reliable one appears: the node follows.
        harness.node.destroy_publisher(harness.image_pub)
        from rclpy.qos import QoSProfile
        harness.image_pub = harness.node.create_publisher(
            Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        nt.wait_for(lambda: reader_reliability() == ReliabilityPolicy.RELIABLE, 20, "a reliable reader")
        nt.wait_for(lambda: harness.image_pub.get_subscription_count() >= 1, 20, "matching")
        harness.image_pub.publish(nt.image_msg(image, "rgb8", "q2"))
        harness.wait_output("mask", "q2")
    finally:
        spinner.stop()
        node.destroy_node()
        harness.destroy()


def test_compressed_input(ros_context, trained_model, nt) -> None:
    harness = nt.Harness(ros_context, "/jpeg", outputs=("mask",), image_type=CompressedImage,
                         image_topic="image/compressed")
    node = make_node(ros_context, trained_model.path, "/jpeg", compressed_input=True, input_qos="reliable")
    spinner = nt.Spinner(ros_context, harness.node, node)
    try:
        harness.wait_matched(node)
        image, label = render_scene(11, W, H, **SCENE_OPTS)
        for fmt, ext in (("png", ".png"), ("jpeg", ".jpg")):
            ok, buf = cv2.imencode(ext, image[..., ::-1])
            assert ok
            msg = CompressedImage(format=fmt, data=buf.tobytes())
            msg.header.frame_id = fmt
            harness.image_pub.publish(msg)
            mask = to_array(harness.wait_output("mask", fmt))
            assert mask.shape == (H, W)
            assert nt.road_iou(mask, label) >= 0.5
        before = node.stats()["rejected"]
        bad = CompressedImage(format="jpeg", data=b"\xff\xd8 not really a jpeg")
        harness.image_pub.publish(bad)
        nt.wait_for(lambda: node.stats()["rejected"] > before, 20, "the corrupt JPEG to be rejected")
        ok, buf = cv2.imencode(".png", image[..., ::-1])
        msg = CompressedImage(format="png", data=buf.tobytes())
        msg.header.frame_id = "after"
        harness.image_pub.publish(msg)
        harness.wait_output("mask", "after")
    finally:
        spinner.stop()
        node.destroy_node()
        harness.destroy()


# ---------------------------------------------------------------------- separate processes
def _node_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "roadseg_ros.nodes.segmentation_node", "--ros-args", *args]


def _interrupt(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Ctrl-C, then SIGKILL only if that does not end it (a killed participant leaves DDS shared
    memory behind)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


STARTUP_CASES = {
    "alpha out of range": (["-p", "overlay_alpha:=1.5"], "overlay_alpha"),
    "wrong type": (["-p", "max_rate_hz:=fast"], "max_rate_hz"),
    "bad qos choice": (["-p", "input_qos:=sometimes"], "input_qos"),
    "bad device": (["-p", "device:=tpu"], "device"),
    "missing weights": (["-p", "weights:=/nonexistent/model.pt"], "/nonexistent/model.pt"),
    "broken weights": (["-p", "weights:={broken}"], "broken.pt"),
    "unknown drivable class": (["-p", "drivable_classes:=runway"], "runway"),
    "only one input size": (["-p", "input_width:=320"], "input_height"),
    "grid too large": (["-p", "grid_resolution_m:=0.01", "-p", "grid_extent_forward_m:=1000.0"], "cells"),
}
if not __import__("torch").cuda.is_available():
    STARTUP_CASES["unavailable cuda"] = (["-p", "device:=cuda"], "cuda")


@pytest.fixture(scope="module")
def startup_results(trained_model, tmp_path_factory):
    """Start every bad configuration, a few processes at a time (each pays the torch import).

    Not all at once: ten DDS participants starting together on two cores can outlast Fast
    DDS's shared-memory port lock timeout, after which a participant may hang in its
    creation (eProsima/Fast-DDS#6117); that happened once in a CI run here. Three at a
    time keeps the suite quick without that race.
    """
    broken = tmp_path_factory.mktemp("broken") / "broken.pt"
    broken.write_bytes(b"this is not a checkpoint")
    commands = {}
    for case, (args, _) in STARTUP_CASES.items():
        args = [a.format(broken=broken) for a in args]
        if not any(a.startswith("weights:=") for a in args):
            args = ["-p", f"weights:={trained_model.path}", *args]
        commands[case] = _node_cmd(*args)
    results = {}
    cases = list(commands)
    for start in range(0, len(cases), 3):
        procs = {case: subprocess.Popen(commands[case], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=ROOT) for case in cases[start:start + 3]}
        for case, p in procs.items():
            try:
                out, err = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                out, err = _interrupt(p, 10)
                err = f"{err}\n[test] {case}: no exit within 120 s"
            results[case] = (p.returncode, out, err)
    return results


@pytest.mark.parametrize("case", list(STARTUP_CASES))
def test_invalid_configuration_exits_with_one_clear_line(startup_results, case: str) -> None:
    rc, out, err = startup_results[case]
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]
    assert rc == 2, f"{case}: exit status {rc}, not 2 (configuration error)\n{out}{err}"
    assert len(lines) == 1, f"{case}: expected one line, got:\n{out}{err}"
    assert "Traceback" not in err
    assert STARTUP_CASES[case][1] in lines[0], lines[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_node_in_another_process(ros_context, trained_model, nt, sig) -> None:
    """Cross-process DDS with the deployment params file; clean exit on Ctrl-C and on SIGTERM."""
    ns = f"/proc_{sig.name.lower()}"
    proc = subprocess.Popen(_node_cmd("--params-file", str(ROOT / "config" / "roadseg.yaml"),
                                      "-p", f"weights:={trained_model.path}", "-p", "device:=cpu",
                                      "-r", f"__ns:={ns}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, RCUTILS_LOGGING_BUFFERED_STREAM="0"))
    harness = nt.Harness(ros_context, ns, outputs=("mask", "drivable_area"))
    spinner = nt.Spinner(ros_context, harness.node)
    try:
        harness.wait_matched(timeout=90)
        image, label = render_scene(11, 640, 360, **SCENE_OPTS)
        for i in range(3):      # a few frames: the first may race the node's own output matching
            harness.image_pub.publish(nt.image_msg(image, "rgb8", f"x{i}"))
            try:
                mask = to_array(harness.wait_output("mask", f"x{i}", 15))
                break
            except AssertionError:
                if i == 2:
                    raise
        assert mask.shape == (360, 640)
        assert nt.road_iou(mask, label) >= 0.5
        da = harness.wait_output("drivable_area", f"x{i}")
        assert (da.width, da.height) == (640, 360) and math.isnan(da.free_distance_ahead)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        spinner.stop()
        harness.destroy()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Exception" not in err, err


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_stays_bounded_under_a_flood(ros_context, trained_model, nt) -> None:
    """1280x720 frames as fast as this process can publish them: the node's memory levels off."""
    ns = "/flood"
    proc = subprocess.Popen(_node_cmd("-p", f"weights:={trained_model.path}", "-p", "device:=cpu",
                                      "-p", "input_qos:=reliable", "-r", f"__ns:={ns}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    harness = nt.Harness(ros_context, ns, outputs=("mask",))
    spinner = nt.Spinner(ros_context, harness.node)
    image = cv2.resize(render_scene(5, 640, 360)[0], (1280, 720))
    msg = nt.image_msg(image, "rgb8", "flood")

    def offer(m) -> bool:
        try:
            harness.image_pub.publish(m)
            return True
        except RCLError:    # the reliable writer's history is full: Fast DDS back-pressure, retried below
            return False

    def flood(frames: int, tag: str) -> int:
        accepted = sum(offer(msg) for _ in range(frames))
        last = nt.image_msg(image, "rgb8", tag)
        for attempt in range(5):    # reliable depth 1: the last one may be overwritten by nothing
            offer(last)
            try:
                harness.wait_output("mask", tag, 20)
                return accepted
            except AssertionError:
                if attempt == 4:
                    raise
        return accepted

    try:
        harness.wait_matched(timeout=90)
        flood(60, "warm")                       # allocator and DDS buffers reach their working size
        rss = [_rss_mib(proc.pid)]
        accepted = []
        for phase in range(4):
            accepted.append(flood(300, f"flood{phase}"))
            rss.append(_rss_mib(proc.pid))
        assert proc.poll() is None
        status = nt.wait_for(lambda: (s := harness.latest_status()) and int(s["frames_dropped"]) > 0 and s,
                             20, "diagnostics reporting drops")
        # Up to 1,200 frames of 2.6 MiB were offered (3 GiB): a node that queued them would grow
        # by that much. Measured: growth levels off within a few MiB, with an occasional one-off
        # peak of up to ~100 MiB (DDS buffers in flight; the tuned allocator keeps its peak).
        assert sum(accepted) >= 600, accepted    # measured: 1,199-1,200 of 1,200 taken
        assert rss[-1] - rss[0] < 256, (rss, status)
        assert rss[-1] - rss[-2] < 128, rss
    finally:
        if proc.poll() is None:
            _interrupt(proc, 30)
        spinner.stop()
        harness.destroy()
