"""The frame pipeline: newest-frame slot, worker thread, counters, and the products of a frame.

What the segmentation node does with a camera frame, without ROS, so it can be tested
frame by frame and reused by any host (the node today; a multi-camera host later):

* **The caller never blocks.** :meth:`FramePipeline.submit` only stores the frame in a
  one-frame slot and wakes the worker; a frame replaced there before the worker took it is
  counted as dropped (and so are gaps in a publisher's sequence numbers, which the host
  passes along). Memory stays bounded whatever the input rate: one frame waiting, one in
  work.
* **No needless work.** :func:`plan_products` turns "which outputs someone reads and the
  settings enable" into what to compute: no network run when nothing is wanted, no
  confidence map unless the confidence image or the drivable analysis needs it, no grid
  without camera intrinsics.
* **Bad frames never stop it.** A frame the decoder rejects (``ImageFormatError``) is
  counted as rejected, any other failure as an error; both get a throttled warning naming
  the problem, and the worker goes on with the next frame.
* **Products leave as soon as they exist**: ``emit(name, value, frame)`` is called for the
  mask first, before the overlay and the drivable analysis are computed, so the mask's
  latency does not include theirs.

Several cameras later: frames already carry a ``source`` key and camera geometry is
kept per source; one pipeline (one model, one worker) can take a slot per source and
batch the waiting frames into one ``Segmenter.predict`` call (it accepts NxHxWx3).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from roadseg_ros.geometry import (
    DrivableAnalysis,
    GridSpec,
    GroundCamera,
    analyze_drivable,
    drivable_from_mask,
    drivable_grid,
    sample_rows,
)
from roadseg_ros.image_codec import ImageFormatError

__all__ = ["OUTPUTS", "Frame", "Plan", "plan_products", "PipelineSettings", "DrivableAreaProduct",
           "GridProduct", "Health", "FramePipeline", "ThrottledWarnings", "SequenceGaps"]

logger = logging.getLogger(__name__)

#: Every product a frame can yield, in the order they are emitted.
OUTPUTS = ("mask", "confidence", "color_mask", "overlay", "drivable_grid", "drivable_area")


# ----------------------------------------------------------------------------- what to compute
@dataclass(frozen=True)
class Plan:
    """What one frame needs: the outputs to emit and the intermediate results they rest on."""

    outputs: frozenset[str]
    confidence: bool       # Segmenter.predict(with_confidence=...)
    drivable: bool         # the boolean drivable mask (area and grid)
    camera: bool           # ground geometry is looked up (area's free distance, grid)

    @property
    def idle(self) -> bool:
        """Nothing to emit: the network does not run at all."""
        return not self.outputs


def plan_products(wanted: Iterable[str], have_camera: bool) -> Plan:
    """The :class:`Plan` for ``wanted`` outputs; the grid needs camera intrinsics, so without
    them it is left out (the drivable area then reports no free distance)."""
    outputs = set(wanted) & set(OUTPUTS)
    unknown = set(wanted) - set(OUTPUTS)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; valid: {', '.join(OUTPUTS)}")
    if not have_camera:
        outputs.discard("drivable_grid")
    return Plan(outputs=frozenset(outputs),
                confidence=bool(outputs & {"confidence", "drivable_area"}),
                drivable=bool(outputs & {"drivable_area", "drivable_grid"}),
                camera=bool(outputs & {"drivable_area", "drivable_grid"}))


@dataclass
class PipelineSettings:
    """Settings that may change while frames flow (the node's dynamic parameters)."""

    overlay_alpha: float = 0.5
    max_rate_hz: float = 0.0           # 0: as fast as possible
    warn_throttle_s: float = 5.0
    enabled: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(OUTPUTS, True))

    def set(self, name: str, value: Any) -> bool:
        """Change ``overlay_alpha``, ``max_rate_hz`` or ``warn_throttle_s``; False for any other name."""
        if name not in ("overlay_alpha", "max_rate_hz", "warn_throttle_s"):
            return False
        setattr(self, name, float(value))
        return True

    def enable(self, output: str, on: bool) -> bool:
        """Switch one of :data:`OUTPUTS` on or off; False for a name that is none of them."""
        if output not in self.enabled:
            return False
        self.enabled[output] = bool(on)
        return True


@dataclass(frozen=True)
class Frame:
    """A frame in flight: the host's payload (e.g. a ROS message, decoded by the worker), when
    it arrived (``time.monotonic()``), from which source, and once decoded its colour order."""

    payload: Any
    received: float
    source: str = ""
    color_order: str = "rgb"


@dataclass(frozen=True)
class DrivableAreaProduct:
    """The ``drivable_area`` product: image-space analysis plus what the message reports beside it."""

    width: int
    height: int
    analysis: DrivableAnalysis
    free_distance_ahead: float      # NaN without camera geometry
    inference_latency_ms: float
    total_latency_ms: float


@dataclass(frozen=True)
class GridProduct:
    """The ``drivable_grid`` product: cell values and the geometry that places the grid."""

    cells: np.ndarray               # int8 rows x cols (GridSpec.shape)
    camera: GroundCamera
    spec: GridSpec


@dataclass(frozen=True)
class Health:
    """A diagnostics snapshot: counters, the recent window's rate and latencies, the worker's state."""

    stats: dict[str, int]
    rate_hz: float
    latency_ms: np.ndarray          # arrival -> all products out, per frame of the window
    processing_ms: np.ndarray
    inference_ms: np.ndarray
    predict_ms: np.ndarray
    worker_alive: bool
    last_problem: str


# ----------------------------------------------------------------------------- small helpers
class ThrottledWarnings:
    """At most one warning per distinct text per ``interval_s()`` seconds, then the count of repeats."""

    def __init__(self, warn: Callable[[str], None], interval_s: Callable[[], float]) -> None:
        self._warn = warn
        self._interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}
        self.last_text = ""

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        self.last_text = text
        last, suppressed = self._last.get(text, (-math.inf, 0))
        if now - last >= self._interval_s():
            extra = f" ({suppressed} more like this since the last warning)" if suppressed else ""
            self._warn(text + extra)
            if len(self._last) > 256:
                self._last.clear()
            self._last[text] = (now, 0)
        else:
            self._last[text] = (last, suppressed + 1)


class SequenceGaps:
    """Frames lost before they reached us, from gaps in each publisher's sequence numbers.

    A depth-1 input queue overwrites frames the host had no time to take, and a best-effort
    link loses some; neither is visible otherwise.
    """

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def skipped(self, publisher: bytes, sequence: int) -> int:
        last = self._last.get(publisher)
        if len(self._last) > 64:
            self._last.clear()
        self._last[publisher] = sequence
        return sequence - last - 1 if last is not None and sequence > last + 1 else 0


# ----------------------------------------------------------------------------- the pipeline
class FramePipeline:
    """Newest-frame slot + worker thread + the products of each frame; see the module docstring.

    ``segmenter``: anything with ``predict(image, color_order=, with_confidence=)`` returning
    a :class:`~roadseg_ros.inference.Prediction`, and ``class_colors``.
    ``decode(payload) -> (HxWx3 uint8 image, color order)`` runs on the worker; it raises
    ``ImageFormatError`` for a frame to reject. ``demand()`` names the outputs someone
    reads now (the settings' ``enabled`` flags are applied on top). ``emit(name, value,
    frame)`` hands each product to the host. ``warn(text)`` receives throttled warnings;
    ``input_name`` (e.g. the topic) names where rejected frames came from.
    """

    def __init__(self, segmenter: Any, *, drivable_classes: Iterable[int],
                 decode: Callable[[Any], tuple[np.ndarray, str]],
                 demand: Callable[[], Iterable[str]],
                 emit: Callable[[str, Any, Frame], None],
                 warn: Callable[[str], None],
                 settings: PipelineSettings | None = None,
                 grid: GridSpec | None = None, camera_height_m: float = 1.5, camera_pitch_deg: float = 0.0,
                 boundary_rows: int = 16, window: int = 2000, input_name: str = "the input") -> None:
        self.segmenter = segmenter
        self.input_name = input_name
        self.drivable_classes = list(drivable_classes)
        self.settings = settings or PipelineSettings()
        self.grid = grid or GridSpec(0.2, 30.0, 10.0)
        self.camera_height_m = float(camera_height_m)
        self.camera_pitch_deg = float(camera_pitch_deg)
        self.boundary_rows = int(boundary_rows)
        self._colors = [tuple(c) for c in segmenter.class_colors]
        self._decode, self._demand, self._emit = decode, demand, emit
        self.warn = ThrottledWarnings(warn, lambda: float(self.settings.warn_throttle_s))
        self._cond = threading.Condition()
        self._slots: dict[str, Frame] = {}
        self._stop = False
        self._worker: threading.Thread | None = None
        self._stats = {"received": 0, "processed": 0, "dropped": 0, "dropped_in_queue": 0,
                       "dropped_in_slot": 0, "rejected": 0, "idle": 0, "errors": 0}
        # (finish time, latency from arrival ms, processing ms, inference ms, predict ms) of recent frames
        self._window: collections.deque[tuple[float, ...]] = collections.deque(maxlen=window)
        self._camera_info: dict[str, tuple[tuple[float, ...], int, int]] = {}
        self._cameras: dict[tuple, GroundCamera | None] = {}
        self._health_last = time.monotonic()
        self._health_processed = 0

    # ------------------------------------------------------------------ host side
    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="roadseg-worker", daemon=True)
            self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker; the frame in progress is finished first. Safe to call more than once."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=timeout)

    @property
    def worker_alive(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def submit(self, payload: Any, *, source: str = "", skipped: int = 0) -> None:
        """Offer a frame; never blocks. ``skipped``: frames lost before it (sequence gaps)."""
        now = time.monotonic()
        with self._cond:
            self._stats["received"] += 1
            self._stats["dropped_in_queue"] += skipped
            if source in self._slots:
                self._stats["dropped_in_slot"] += 1
            self._stats["dropped"] = self._stats["dropped_in_queue"] + self._stats["dropped_in_slot"]
            self._slots[source] = Frame(payload, now, source)
            self._cond.notify()

    def set_camera_info(self, k: Iterable[float], width: int, height: int, source: str = "") -> None:
        """Intrinsics of ``source`` (row-major K at the calibration size), for the ground products."""
        self._camera_info[source] = (tuple(float(v) for v in k), int(width), int(height))

    def has_camera_info(self, source: str = "") -> bool:
        return source in self._camera_info

    def set(self, name: str, value: Any) -> bool:
        """Change a live setting (see :meth:`PipelineSettings.set`); a new rate applies at once."""
        changed = self.settings.set(name, value)
        with self._cond:
            self._cond.notify()
        return changed

    def enable(self, output: str, on: bool) -> bool:
        """Switch an output on or off (see :meth:`PipelineSettings.enable`)."""
        return self.settings.enable(output, on)

    def stats(self) -> dict[str, int]:
        """Frame counters.

        ``dropped`` = ``dropped_in_queue`` (lost before :meth:`submit`, from sequence gaps)
        + ``dropped_in_slot`` (replaced by a newer frame while waiting for the worker);
        ``idle``: frames not processed because no output was wanted.
        """
        with self._cond:
            return dict(self._stats)

    def health(self, period_s: float = 1.0) -> Health:
        """Counters plus the rate since the previous call and the latencies of the last ``period_s``."""
        now = time.monotonic()
        with self._cond:
            stats = dict(self._stats)
            window = [e for e in self._window if e[0] >= now - max(period_s, 1.0)]
        elapsed = max(now - self._health_last, 1e-6)
        rate = (stats["processed"] - self._health_processed) / elapsed
        self._health_last, self._health_processed = now, stats["processed"]
        columns = np.array([e[1:] for e in window], dtype=np.float64).reshape(-1, 4)
        return Health(stats=stats, rate_hz=rate, latency_ms=columns[:, 0], processing_ms=columns[:, 1],
                      inference_ms=columns[:, 2], predict_ms=columns[:, 3], worker_alive=self.worker_alive,
                      last_problem=self.warn.last_text)

    # ------------------------------------------------------------------ worker
    def _next_frame(self, next_start: float) -> Frame | None:
        """The oldest waiting frame once the rate limit allows; None when stopping."""
        with self._cond:
            while True:
                while not self._slots and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return None
                rate = float(self.settings.max_rate_hz)
                wait = next_start - time.monotonic() if rate > 0 else 0.0
                if wait <= 0:
                    source = min(self._slots, key=lambda s: self._slots[s].received)
                    return self._slots.pop(source)
                self._cond.wait(wait)    # newer frames may replace the waiting one meanwhile

    def _run(self) -> None:
        next_start = 0.0
        while True:
            frame = self._next_frame(next_start)
            if frame is None:
                return
            started = time.monotonic()
            rate = float(self.settings.max_rate_hz)
            next_start = started + 1.0 / rate if rate > 0 else 0.0
            try:
                self.process(frame)
            except Exception as exc:  # keep going; the reason goes to the log and the diagnostics
                with self._cond:
                    self._stats["errors"] += 1
                self.warn(f"processing failed: {type(exc).__name__}: {exc}")
            del frame

    def _camera(self, source: str, width: int, height: int) -> GroundCamera | None:
        info = self._camera_info.get(source)
        if info is None:
            return None
        key = (info, width, height)
        if key not in self._cameras:
            if len(self._cameras) > 16:
                self._cameras.clear()
            k, iw, ih = info
            try:
                self._cameras[key] = GroundCamera.from_camera_info(
                    k, iw, ih, width, height, self.camera_height_m, self.camera_pitch_deg)
            except ValueError as exc:
                self.warn(f"camera_info unusable for ground geometry: {exc}")
                self._cameras[key] = None
        return self._cameras[key]

    def process(self, frame: Frame) -> None:
        """Decode one frame, compute what is wanted and emit it (the worker calls this; tests may too)."""
        t0 = time.perf_counter()
        try:
            image, order = self._decode(frame.payload)
        except ImageFormatError as exc:
            with self._cond:
                self._stats["rejected"] += 1
            self.warn(f"rejected frame from {self.input_name}: {exc}")
            return
        frame = dataclasses.replace(frame, color_order=order)
        enabled = self.settings.enabled
        wanted = {name for name in self._demand() if enabled.get(name, False)}
        height, width = image.shape[:2]
        camera = self._camera(frame.source, width, height) if wanted & {"drivable_area", "drivable_grid"} \
            else None
        plan = plan_products(wanted, camera is not None)
        if plan.idle:
            with self._cond:
                self._stats["idle"] += 1
            return
        pred = self.segmenter.predict(image, color_order=order, with_confidence=plan.confidence)
        mask = pred.mask
        out = plan.outputs
        if "mask" in out:
            self._emit("mask", mask, frame)
        if "confidence" in out:
            conf8 = (pred.confidence * 255.0 + 0.5).astype(np.uint8)   # 0..1 -> 0..255
            self._emit("confidence", conf8, frame)
        if "color_mask" in out or "overlay" in out:
            from roadseg_ros.visualize import colorize, overlay
            if "color_mask" in out:
                self._emit("color_mask", colorize(mask, self._colors, color_order="bgr"), frame)
            if "overlay" in out:
                self._emit("overlay", overlay(np.ascontiguousarray(image), mask, self._colors,
                                              float(self.settings.overlay_alpha), color_order=order), frame)
        drivable = drivable_from_mask(mask, self.drivable_classes) if plan.drivable else None
        if "drivable_grid" in out:
            self._emit("drivable_grid", GridProduct(drivable_grid(drivable, camera, self.grid), camera,
                                                    self.grid), frame)
        if "drivable_area" in out:
            analysis = analyze_drivable(drivable, pred.confidence,
                                        boundary_rows=sample_rows(height, self.boundary_rows))
            free = float(camera.free_distance_ahead(analysis.main_region)) if camera is not None else math.nan
            self._emit("drivable_area", DrivableAreaProduct(
                width=width, height=height, analysis=analysis, free_distance_ahead=free,
                inference_latency_ms=float(pred.timing.get("inference_ms", math.nan)),
                total_latency_ms=float((time.perf_counter() - t0) * 1e3)), frame)
        done = time.perf_counter()
        now = time.monotonic()
        with self._cond:
            self._stats["processed"] += 1
            self._window.append((now, (now - frame.received) * 1e3, (done - t0) * 1e3,
                                 pred.timing.get("inference_ms", 0.0), pred.timing.get("total_ms", 0.0)))
