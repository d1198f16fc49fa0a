"""roadseg_ros.pipeline without DDS: which products are computed, drops, rate limit, error isolation.

A real Segmenter (a tiny checkpoint) runs the network; the host side is played by plain
callables: ``decode`` takes numpy frames (a string payload stands for a malformed frame),
``emit`` records products and can hold the worker busy on an Event, so the drop tests
are deterministic rather than timing guesses.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from roadseg_ros.geometry import GridSpec
from roadseg_ros.image_codec import ImageFormatError
from roadseg_ros.pipeline import (
    OUTPUTS,
    DrivableAreaProduct,
    Frame,
    FramePipeline,
    GridProduct,
    PipelineSettings,
    SequenceGaps,
    ThrottledWarnings,
    plan_products,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
W, H = 96, 64


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory, save_tiny_checkpoint):
    from roadseg_ros.inference import Segmenter

    path = save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", (W, H))
    return Segmenter(path, device="cpu", warmup=False, num_threads=1)


def decode(payload):
    if isinstance(payload, str):
        if payload == "boom":
            raise RuntimeError("decoder crashed")
        raise ImageFormatError(f"bad frame {payload}")
    return payload, "rgb"


class Host:
    """Plays the node: what is subscribed, what was emitted, the warnings; can hold the worker."""

    def __init__(self, demand=OUTPUTS) -> None:
        self.demand = set(demand)
        self.emitted: list[tuple[str, object, object]] = []
        self.warnings: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.busy = threading.Event()
        self.lock = threading.Lock()

    def emit(self, name, value, frame) -> None:
        self.busy.set()
        self.hold.wait(10)
        with self.lock:
            self.emitted.append((name, value, frame))

    def names(self, payload_id: int | None = None) -> list[str]:
        with self.lock:
            return [n for n, _, f in self.emitted if payload_id is None or f.payload[0, 0, 0] == payload_id]


def make(segmenter, host: Host, **kw) -> FramePipeline:
    return FramePipeline(segmenter, drivable_classes=[3], decode=decode, demand=lambda: host.demand,
                         emit=host.emit, warn=host.warnings.append,
                         grid=GridSpec(0.5, 10.0, 4.0), camera_height_m=1.5, **kw)


def frame(i: int = 0) -> np.ndarray:
    image = np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8)
    image[0, 0, 0] = i                      # the frame's id, read back from emitted frames
    return image


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
    return value


# ----------------------------------------------------------------------------- what is computed
def test_plan_products() -> None:
    assert plan_products([], True).idle
    mask_only = plan_products(["mask"], True)
    assert mask_only.outputs == {"mask"}
    assert not (mask_only.confidence or mask_only.drivable or mask_only.camera)
    assert plan_products(["confidence"], False).confidence
    area = plan_products(["drivable_area"], False)
    assert area.confidence and area.drivable and area.outputs == {"drivable_area"}
    assert plan_products(["drivable_grid"], False).idle            # no intrinsics, no grid
    grid = plan_products(["drivable_grid", "overlay"], True)
    assert grid.drivable and not grid.confidence and grid.outputs == {"drivable_grid", "overlay"}
    with pytest.raises(ValueError, match="unknown outputs"):
        plan_products(["masks"], True)


@pytest.mark.parametrize("demand", [("mask",), ("overlay", "color_mask"), ("confidence",), ("drivable_area",),
                                    OUTPUTS])
def test_only_subscribed_products_are_emitted_in_order(segmenter, demand) -> None:
    host = Host(demand)
    pipe = make(segmenter, host)
    pipe.process(Frame(frame(1), time.monotonic()))    # synchronous: what one frame yields
    expected = [n for n in OUTPUTS if n in demand and n != "drivable_grid"]   # no camera_info yet
    assert host.names() == expected
    for name, value, f in host.emitted:
        assert f.color_order == "rgb"
        if name in ("mask", "confidence"):
            assert value.shape == (H, W) and value.dtype == np.uint8
        elif name in ("overlay", "color_mask"):
            assert value.shape == (H, W, 3)
        elif name == "drivable_area":
            assert isinstance(value, DrivableAreaProduct) and math.isnan(value.free_distance_ahead)
            assert value.total_latency_ms > 0 and (value.width, value.height) == (W, H)
    assert pipe.stats()["processed"] == 1


def test_the_grid_needs_camera_info_and_disabled_outputs_are_skipped(segmenter) -> None:
    host = Host(("mask", "drivable_grid", "drivable_area"))
    pipe = make(segmenter, host)
    assert not pipe.has_camera_info()
    pipe.set_camera_info([80.0, 0, W / 2, 0, 80.0, H / 2, 0, 0, 1], W, H)
    assert pipe.enable("mask", False) and not pipe.enable("device", False) and not pipe.set("device", "cuda")
    pipe.process(Frame(frame(2), time.monotonic()))
    assert host.names() == ["drivable_grid", "drivable_area"]
    grid = host.emitted[0][1]
    assert isinstance(grid, GridProduct) and grid.cells.shape == GridSpec(0.5, 10.0, 4.0).shape


def test_nothing_wanted_means_no_network_run(segmenter) -> None:
    host = Host(())
    pipe = make(segmenter, host)
    pipe.process(Frame(frame(3), time.monotonic()))
    host.demand = {"mask"}
    pipe.enable("mask", False)                    # wanted by a reader, but switched off
    pipe.process(Frame(frame(4), time.monotonic()))
    assert host.emitted == [] and pipe.stats()["idle"] == 2 and pipe.stats()["processed"] == 0


# ----------------------------------------------------------------------------- worker, drops, rate
def test_newest_frame_wins_and_replaced_frames_are_counted(segmenter) -> None:
    host = Host(("mask",))
    pipe = make(segmenter, host)
    pipe.start()
    try:
        host.hold.clear()
        pipe.submit(frame(10))
        assert host.busy.wait(20)                  # the worker is inside frame 10's emit
        for i in range(11, 16):
            pipe.submit(frame(i), skipped=1 if i == 15 else 0)
        stats = pipe.stats()
        assert stats["received"] == 6 and stats["dropped_in_slot"] == 4 and stats["dropped_in_queue"] == 1
        assert stats["dropped"] == 5
        host.hold.set()
        wait_for(lambda: pipe.stats()["processed"] == 2)
        assert [f.payload[0, 0, 0] for _, _, f in host.emitted] == [10, 15]   # the newest one, not 11
    finally:
        pipe.stop()
    assert not pipe.worker_alive


def test_rate_limit(segmenter) -> None:
    host = Host(("mask",))
    starts: list[float] = []
    pipe = make(segmenter, host, settings=PipelineSettings(max_rate_hz=5.0))
    inner = pipe.process
    pipe.process = lambda f: (starts.append(time.monotonic()), inner(f))   # when each frame began
    pipe.start()
    try:
        end = time.monotonic() + 1.3
        i = 0
        while time.monotonic() < end:
            pipe.submit(frame(i % 200))
            i += 1
            time.sleep(0.01)
        wait_for(lambda: len(starts) >= 2)
    finally:
        pipe.stop()
    gaps = np.diff(starts)
    assert 2 <= len(starts) <= 8, starts
    assert gaps.min() >= 0.19, gaps                     # 5 Hz: at least 0.2 s apart (timer slack)
    assert pipe.stats()["dropped_in_slot"] > 0


def test_bad_frames_are_isolated_and_warned_about_with_a_throttle(segmenter) -> None:
    host = Host(("mask",))
    pipe = make(segmenter, host, settings=PipelineSettings(warn_throttle_s=60.0), input_name="/cam/image")
    pipe.start()
    try:
        for payload in ("short", "short", "boom"):
            pipe.submit(payload)
            wait_for(lambda: sum(pipe.stats()[k] for k in ("rejected", "errors")) >= 1)
            wait_for(lambda: not pipe._slots)  # noqa: SLF001 - the frame was taken
            time.sleep(0.05)
        pipe.submit(frame(7))
        wait_for(lambda: pipe.stats()["processed"] == 1)
    finally:
        pipe.stop()
    stats = pipe.stats()
    assert stats["rejected"] == 2 and stats["errors"] == 1
    assert host.warnings == ["rejected frame from /cam/image: bad frame short",
                             "processing failed: RuntimeError: decoder crashed"]   # the repeat was throttled
    health = pipe.health()
    assert health.last_problem.startswith("processing failed") and not health.worker_alive
    assert health.latency_ms.size == 1 and health.latency_ms[0] > 0


def test_throttled_warnings_count_the_suppressed_repeats() -> None:
    said: list[str] = []
    interval = [60.0]
    warn = ThrottledWarnings(said.append, lambda: interval[0])
    warn("x")
    warn("x")
    warn("y")
    interval[0] = 0.0
    warn("x")
    assert said == ["x", "y", "x (1 more like this since the last warning)"]


def test_sequence_gaps() -> None:
    gaps = SequenceGaps()
    assert gaps.skipped(b"a", 1) == 0
    assert gaps.skipped(b"a", 2) == 0
    assert gaps.skipped(b"a", 6) == 3
    assert gaps.skipped(b"b", 9) == 0            # a new publisher starts its own count
    assert gaps.skipped(b"a", 3) == 0            # a restarted publisher is no loss
