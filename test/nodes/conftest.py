"""Fixtures for the node tests: a checkpoint trained here, a ROS context and a test harness.

The bundled weights may not exist, and random weights would make mask-agreement checks
meaningless, so a session-scoped fixture trains ``tiny_segnet`` on synthetic scenes for
a few seconds and checks that it really finds the road on held-out scenes before any
node test relies on it.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from roadseg_ros.msg import DrivableArea  # noqa: E402

TRAIN_SIZE = (160, 96)          # (width, height) of the fixture model
ROAD = 3                        # CAMVID11 road id
FIXTURE_MIN_IOU = 0.55          # the fixture model must reach this road IoU on held-out scenes


def road_iou(pred: np.ndarray, label: np.ndarray, road: int = ROAD) -> float:
    p, t = pred == road, label == road
    union = np.count_nonzero(p | t)
    return float(np.count_nonzero(p & t) / union) if union else 1.0


@dataclass
class TrainedModel:
    path: Path
    iou: float


def _train_tiny_model(path: Path, steps: int = 160) -> TrainedModel:
    from roadseg_ros.checkpoint import Checkpoint, save_checkpoint
    from roadseg_ros.classes import CAMVID11
    from roadseg_ros.data.synthetic import render_scene
    from roadseg_ros.inference import Segmenter
    from roadseg_ros.models import build_model

    w, h = TRAIN_SIZE
    torch.manual_seed(0)
    scenes = [render_scene(seed, w, h) for seed in range(48)]
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    x = torch.from_numpy(np.stack([s[0] for s in scenes])).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    y = torch.from_numpy(np.stack([s[1] for s in scenes])).long()
    model = build_model("tiny_segnet", CAMVID11.num_classes, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(scenes), (8,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ckpt = Checkpoint(arch="tiny_segnet", arch_kwargs={"width": 8}, class_names=list(CAMVID11.class_names),
                      class_colors=[tuple(c) for c in CAMVID11.class_colors],
                      drivable_classes=list(CAMVID11.drivable_classes), mean=mean, std=std,
                      input_size=TRAIN_SIZE, state_dict=model.state_dict(),
                      training={"data": "synthetic scenes 0..47", "steps": steps, "purpose": "node tests"})
    save_checkpoint(ckpt, path)
    seg = Segmenter(path, device="cpu", warmup=False)
    ious = []
    for seed in range(5000, 5006):
        image, label = render_scene(seed, 320, 192)
        ious.append(road_iou(seg.predict(image).mask, label))
    return TrainedModel(path=path, iou=float(np.mean(ious)))


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """A tiny_segnet checkpoint trained on synthetic scenes that finds the road."""
    model = _train_tiny_model(tmp_path_factory.mktemp("weights") / "tiny_road.pt")
    assert model.iou >= FIXTURE_MIN_IOU, (
        f"the fixture model reached road IoU {model.iou:.2f} < {FIXTURE_MIN_IOU} on held-out scenes; "
        "mask-agreement tests would be meaningless")
    return model


@pytest.fixture(scope="module")
def ros_context() -> Iterator[Context]:
    """A private rclpy context (no global state shared with other test modules)."""
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
             interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def spin_until(executor: SingleThreadedExecutor, predicate: Callable[[], Any], timeout: float = 20.0,
               what: str | Callable[[], str] = "condition", step: float = 0.05) -> None:
    """Spin ``executor`` in this thread until ``predicate`` holds; fail naming ``what`` after ``timeout``.

    For tests that own their executor (no :class:`Spinner` thread): messages are only
    delivered while someone spins. ``what`` may be a callable, to report the state at timeout.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            name = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {name}")
        executor.spin_once(timeout_sec=step)


OUTPUT_TYPES = {"mask": Image, "overlay": Image, "color_mask": Image, "confidence": Image,
                "drivable_area": DrivableArea, "drivable_grid": OccupancyGrid}


class Harness:
    """A test node beside the node under test: publishes ``image``/``camera_info``, records outputs.

    Everything runs in one executor thread; received messages are keyed by output name
    and header.frame_id, so a test sends frames with unique frame_ids and waits for them.
    """

    def __init__(self, ctx: Context, namespace: str, node_name: str = "roadseg",
                 image_reliable: bool = True, outputs: tuple[str, ...] = tuple(OUTPUT_TYPES),
                 image_type: type = Image, image_topic: str = "image") -> None:
        self.node = Node("roadseg_test_harness", namespace=namespace, context=ctx)
        self.ns = namespace.rstrip("/")
        self.prefix = f"{self.ns}/{node_name}"
        self._lock = threading.Lock()
        self.received: dict[str, dict[str, Any]] = defaultdict(dict)
        self.diagnostics: list[DiagnosticArray] = []
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if image_reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.image_pub = self.node.create_publisher(image_type, image_topic, qos)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", 10)
        self.subs = {}
        for name in outputs:
            self.subscribe(name)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def subscribe(self, name: str) -> None:
        self.subs[name] = self.node.create_subscription(
            OUTPUT_TYPES[name], f"{self.prefix}/{name}", lambda m, n=name: self._on_output(n, m),
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def unsubscribe(self, name: str) -> None:
        self.node.destroy_subscription(self.subs.pop(name))

    def _on_output(self, name: str, msg: Any) -> None:
        with self._lock:
            self.received[name][msg.header.frame_id] = msg

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self.diagnostics.append(msg)

    def get(self, name: str, frame_id: str) -> Any:
        with self._lock:
            return self.received[name].get(frame_id)

    def wait_output(self, name: str, frame_id: str, timeout: float = 20.0) -> Any:
        return wait_for(lambda: self.get(name, frame_id), timeout,
                        f"{self.prefix}/{name} of frame {frame_id}")

    def wait_matched(self, node: Node | None = None, timeout: float = 20.0) -> None:
        """Discovery: the node's image subscription and every output publisher see the harness."""
        wait_for(lambda: self.image_pub.get_subscription_count() >= 1, timeout,
                 "the node's image subscription")
        for name in self.subs:
            topic = f"{self.prefix}/{name}"
            wait_for(lambda t=topic: self.node.count_publishers(t) >= 1, timeout, f"a publisher on {topic}")
            if node is not None:
                pub = node._pubs[name]  # noqa: SLF001 - white-box: the node must see our reader too
                wait_for(lambda p=pub: p.get_subscription_count() >= 1, timeout, f"the node matching {topic}")

    def latest_status(self) -> dict[str, str] | None:
        with self._lock:
            for arr in reversed(self.diagnostics):
                for st in arr.status:
                    if st.name.startswith(self.prefix):
                        return {kv.key: kv.value for kv in st.values} | {"_level": st.level,
                                                                          "_message": st.message}
        return None

    def destroy(self) -> None:
        self.node.destroy_node()


class Spinner:
    """An executor spinning a set of nodes in a background thread."""

    def __init__(self, ctx: Context, *nodes: Node) -> None:
        self.executor = SingleThreadedExecutor(context=ctx)
        for n in nodes:
            self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = False
        self._thread.start()

    def add(self, node: Node) -> None:
        self.executor.add_node(node)

    def _spin(self) -> None:
        while not self._stop:
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under us at teardown
                if self._stop:
                    return
                raise

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=10)
        self.executor.shutdown(timeout_sec=1)


def camera_info(width: int, height: int, f: float, frame_id: str = "cam") -> CameraInfo:
    """Ideal pinhole intrinsics: focal length ``f`` px, principal point at the image centre."""
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.width, info.height = width, height
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def image_msg(image: np.ndarray, encoding: str, frame_id: str, color_order: str = "rgb",
              stamp: tuple[int, int] = (0, 0)) -> Image:
    from roadseg_ros.image_codec import fill_image_msg

    msg = fill_image_msg(Image(), image, encoding, color_order=color_order)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return msg


@pytest.fixture(scope="session")
def nt() -> SimpleNamespace:
    """The helpers above for the test modules (``--import-mode=importlib`` cannot import conftest)."""
    return SimpleNamespace(Harness=Harness, Spinner=Spinner, wait_for=wait_for, spin_until=spin_until,
                           camera_info=camera_info, image_msg=image_msg, road_iou=road_iou,
                           TRAIN_SIZE=TRAIN_SIZE, ROAD=ROAD)
