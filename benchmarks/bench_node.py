#!/usr/bin/env python3
"""End-to-end benchmark of the segmentation node through real DDS, against a plain baseline node.

In one run, on the same frames and network:

* ``raw``: :meth:`Segmenter.predict` called in a loop (mask only, as the node runs it
  when only ``~/mask`` is subscribed): the ceiling for the node's throughput. It is
  measured right before and right after the node (the machine's speed drifts over a
  run), and the node is compared with the mean of the two. Throughput is frames per
  second of the loop (calls / time), as the node's is masks / time;
* ``node``: ``segmentation_node`` in its own process, fed ``image`` by this process
  over Fast DDS, its ``~/mask`` received back here;
* ``baseline``: a node written the usual way, also in its own process: a copying
  conversion of the message, ``cv2.resize`` and numpy normalisation on the CPU, a new
  float32 tensor per frame, inference inside the subscription callback, default
  QoS depth 10.

Each node is measured twice: *closed loop* (the next frame is published when the
previous mask came back: pure end-to-end latency, input header stamp -> mask received)
and *open loop* (frames published at a fixed rate above what the node can do, for a
fixed time: throughput = masks received per second, and the latency under overload,
where the baseline's queue shows). Latency figures are median, p90, p99.

    ./dev.sh run python benchmarks/bench_node.py --quick
    ./dev.sh run python benchmarks/bench_node.py --json node_bench.json
    ./dev.sh run python benchmarks/bench_node.py --size 1242x375 --device cuda --json gpu.json

Weights: the bundled checkpoint if it exists, else randomly initialised ``DEFAULT_MODEL``
weights (timing does not depend on them); ``--weights`` picks any checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from roadseg_ros.config import BACKENDS, PRECISIONS  # noqa: E402  (after the path)


# ---------------------------------------------------------------------- baseline node (child process)
def run_baseline_node(weights: str, device: str, width: int, height: int, threads: int,
                      ros_args: list[str]) -> int:
    """The usual way: copy, CPU resize + normalise, float32, inference in the callback."""
    import cv2
    import rclpy
    import torch
    import torch.nn.functional as F
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from roadseg_ros.checkpoint import load_checkpoint, model_from_checkpoint
    from roadseg_ros.models import main_output

    torch.set_num_threads(threads)

    class BaselineNode(Node):
        def __init__(self) -> None:
            super().__init__("baseline")
            ckpt = load_checkpoint(weights)
            self.model = model_from_checkpoint(ckpt, device=device)
            self.mean = np.array(ckpt.mean, np.float32)
            self.std = np.array(ckpt.std, np.float32)
            self.size = (width, height)
            self.pub = self.create_publisher(Image, "~/mask", 10)
            self.create_subscription(Image, "image", self.on_image, 10)

        def on_image(self, msg: Image) -> None:
            channels = msg.step // msg.width
            frame = np.array(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, channels)
            if msg.encoding == "bgr8":
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            resized = cv2.resize(frame, self.size, interpolation=cv2.INTER_LINEAR)
            x = (resized.astype(np.float32) / 255.0 - self.mean) / self.std
            tensor = torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0).to(device)
            with torch.no_grad():
                logits = main_output(self.model(tensor))
                logits = F.interpolate(logits, size=(msg.height, msg.width), mode="bilinear",
                                       align_corners=False)
                mask = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
            out = Image(header=msg.header, height=msg.height, width=msg.width, encoding="mono8",
                        step=msg.width)
            out.data = mask.tobytes()
            self.pub.publish(out)

    rclpy.init(args=[sys.argv[0], *ros_args])
    node = BaselineNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# ---------------------------------------------------------------------- driver
def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": float("nan"), "p90": float("nan"), "p99": float("nan"), "n": 0}
    a = np.asarray(values)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "n": int(a.size)}


def make_weights(path: Path, model: str, size: tuple[int, int]) -> Path:
    """Randomly initialised checkpoint of ``model`` (CamVid-11 classes) for timing."""
    import torch

    from roadseg_ros.checkpoint import Checkpoint, save_checkpoint
    from roadseg_ros.classes import CAMVID11
    from roadseg_ros.models import build_model

    torch.manual_seed(0)
    net = build_model(model, CAMVID11.num_classes)
    ckpt = Checkpoint(arch=model, arch_kwargs={}, class_names=list(CAMVID11.class_names),
                      class_colors=[tuple(c) for c in CAMVID11.class_colors],
                      drivable_classes=list(CAMVID11.drivable_classes), mean=(0.485, 0.456, 0.406),
                      std=(0.229, 0.224, 0.225), input_size=size, state_dict=net.state_dict(),
                      training={"note": "random initialisation, for timing only"})
    return save_checkpoint(ckpt, path)


def thread_count(requested: int) -> int:
    """The torch CPU thread count every measured process uses: ``requested``, or the node's default.

    Raw predict, the node and the baseline must run with the same count, or the figures
    compare thread counts rather than code: ``--quick`` once timed raw predict with torch's
    2 threads against the node's default of 1 and reported the node at 59% of raw predict
    (99% with equal counts). So 0 means the node's own default (half the cores), for all three.
    """
    from roadseg_ros.runtime import default_num_threads

    return int(requested) if requested > 0 else default_num_threads()


def bench_raw(weights: Path, device: str, image: np.ndarray, size: tuple[int, int], seconds: float,
              threads: int, backend: str = "torch", precision: str = "fp32") -> dict:
    from roadseg_ros.inference import Segmenter

    seg = Segmenter(weights, device=device, input_size=size, warmup=True, num_threads=threads,
                    backend=backend, precision=precision)
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        seg.predict(image, color_order="rgb", with_confidence=False)
        times.append((time.perf_counter() - t0) * 1e3)
    lat = _percentiles(times)
    return {"model": seg.model_name, "device": str(seg.device), "backend": seg.backend,
            "precision": seg.precision, "latency_ms": lat,
            "fps": 1000.0 * len(times) / sum(times), "fps_from_median": 1000.0 / lat["median"]}


class Driver:
    """Publishes frames to ``<ns>/image`` and records ``<ns>/<node>/mask`` arrivals."""

    def __init__(self, image: np.ndarray) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from roadseg_ros.image_codec import fill_image_msg

        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.node = Node("bench_driver", context=self.ctx)
        self.template = fill_image_msg(Image(), image, "rgb8")
        self._Image = Image
        self._qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._recv_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.arrivals: dict[int, tuple[float, float]] = {}   # seq -> (arrival monotonic, latency s)
        from diagnostic_msgs.msg import DiagnosticArray

        self.diagnostics: dict[str, dict[str, str]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._stop = False
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self.pub = self.sub = None

    def _spin(self) -> None:
        while not self._stop:
            self.executor.spin_once(timeout_sec=0.05)

    def connect(self, ns: str, node_name: str, timeout: float = 120.0) -> None:
        if self.pub is not None:
            self.node.destroy_publisher(self.pub)
            self.node.destroy_subscription(self.sub)
        self.arrivals = {}
        self.pub = self.node.create_publisher(self._Image, f"{ns}/image", self._qos)
        self.sub = self.node.create_subscription(self._Image, f"{ns}/{node_name}/mask", self._on_mask,
                                                 self._recv_qos)
        deadline = time.monotonic() + timeout
        while self.pub.get_subscription_count() < 1 or self.sub.get_publisher_count() < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node under test never appeared on {ns}")
            time.sleep(0.05)
        # The first frames may race the node's own discovery of us; repeat until one comes back.
        for i in range(200):
            self.publish(10**8 + i)
            if self.wait(10**8 + i, 0.5) is not None:
                return
        raise RuntimeError(f"no mask came back from {ns}/{node_name}")

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            with self.lock:
                self.diagnostics[st.name.split(":")[0]] = {kv.key: kv.value for kv in st.values}

    def _on_mask(self, msg) -> None:
        latency = time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        seq = int(msg.header.frame_id)
        with self.lock:
            self.arrivals[seq] = (time.monotonic(), latency)

    def publish(self, seq: int) -> None:
        msg = self._Image(height=self.template.height, width=self.template.width,
                          encoding=self.template.encoding, step=self.template.step, data=self.template.data)
        msg.header.frame_id = str(seq)
        now = time.time()
        msg.header.stamp.sec = int(now)
        msg.header.stamp.nanosec = int((now - int(now)) * 1e9)
        self.pub.publish(msg)

    def wait(self, seq: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if seq in self.arrivals:
                    return self.arrivals[seq][1]
            time.sleep(0.0005)
        return None

    def closed_loop(self, frames: int) -> dict:
        lat = []
        lost = 0
        for i in range(frames):
            self.publish(i)
            got = self.wait(i, 10.0)
            if got is None:
                lost += 1
            else:
                lat.append(got * 1e3)
        return {"latency_ms": _percentiles(lat), "lost": lost, "fps": 1000.0 / np.mean(lat) if lat else 0.0}

    def open_loop(self, rate_hz: float, seconds: float) -> dict:
        base = 10**6
        with self.lock:
            self.arrivals = {}
        n = int(rate_hz * seconds)
        t0 = time.monotonic()
        for i in range(n):
            target = t0 + i / rate_hz
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publish(base + i)
        sent_until = time.monotonic()
        with self.lock:     # the node's last diagnostics while it was loaded
            diagnostics = dict(self.diagnostics)
        time.sleep(1.0)   # frames still queued arrive late: they count for latency, not throughput
        with self.lock:
            arrived = {k: v for k, v in self.arrivals.items() if k >= base}
        # Throughput: masks that arrived while frames were sent, after a short ramp-up.
        start = t0 + min(1.0, 0.2 * seconds)
        in_window = [k for k, (t, _) in arrived.items() if start <= t <= sent_until]
        lat = [v[1] * 1e3 for v in arrived.values()]
        return {"rate_hz": rate_hz, "sent": n, "received": len(arrived), "received_in_window": len(in_window),
                "fps": len(in_window) / (sent_until - start), "latency_ms": _percentiles(lat),
                "diagnostics": diagnostics}

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.node.destroy_node()
        self.ctx.try_shutdown()


def _start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="576x160", help="image and network size WxH (default 576x160)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--weights", help="checkpoint (default: bundled, else random DEFAULT_MODEL weights)")
    parser.add_argument("--backend", default="auto", choices=list(BACKENDS),
                        help="runtime of raw predict and the node alike (default auto, as the node; the "
                             "baseline node is always torch)")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                        help="precision of raw predict and the node alike (default auto, as the node)")
    parser.add_argument("--frames", type=int, default=60, help="closed-loop frames per node (default 60)")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop seconds per node (default 10)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads for raw predict, the node and the baseline alike "
                        "(default 0: the node's default, half the CPU cores)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open-loop publishing rate in Hz (default: 1.25x the raw predict rate)")
    parser.add_argument("--raw-seconds", type=float, default=10.0,
                        help="seconds of raw predict before and after the node (default 10)")
    parser.add_argument("--quick", action="store_true", help="few frames, short runs (a smoke test)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--baseline-node", action="store_true", help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    args = parser.parse_args(argv[:len(argv) - len(ros_args)])
    width, height = (int(v) for v in args.size.lower().split("x"))

    args.threads = thread_count(args.threads)
    if args.baseline_node:
        return run_baseline_node(args.weights, args.device, width, height, args.threads, ros_args)

    from roadseg_ros.config import default_weights_path
    from roadseg_ros.data.synthetic import render_scene
    from roadseg_ros.models import DEFAULT_MODEL

    if args.quick:
        args.frames, args.seconds, args.raw_seconds = 15, 3.0, 3.0
    tmp = tempfile.TemporaryDirectory(prefix="bench_node_")
    if args.weights:
        weights = Path(args.weights)
    elif default_weights_path().is_file():
        weights = default_weights_path()
    else:
        weights = make_weights(Path(tmp.name) / "random.pt", DEFAULT_MODEL, (width, height))
    image, _ = render_scene(7, width, height)

    print(f"[bench_node] {weights.name}, {width}x{height}, device {args.device}, "
          f"{os.cpu_count()} CPUs, {args.threads} torch thread(s) everywhere; raw predict ...", flush=True)
    raw = bench_raw(weights, args.device, image, (width, height), args.raw_seconds, args.threads,
                    args.backend, args.precision)
    print(f"  raw Segmenter.predict ({raw['backend']} {raw['precision']}): {raw['fps']:.1f} frames/s, "
          f"median {raw['latency_ms']['median']:.1f} ms", flush=True)
    rate = args.rate or max(5.0, 1.25 * raw["fps"])

    domain = os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    node_cmd = [sys.executable, "-m", "roadseg_ros.nodes.segmentation_node", "--ros-args",
                "-r", "__ns:=/bench_node", "-p", f"weights:={weights}", "-p", f"device:={args.device}",
                "-p", f"input_width:={width}", "-p", f"input_height:={height}", "-p", "input_qos:=reliable",
                "-p", f"num_threads:={args.threads}", "-p", f"backend:={args.backend}",
                "-p", f"precision:={args.precision}"]
    base_cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-node", "--weights", str(weights),
                "--device", args.device, "--size", f"{width}x{height}", "--threads", str(args.threads),
                "--ros-args", "-r", "__ns:=/bench_base"]
    results = {"raw": raw}
    driver = Driver(image)
    try:
        for label, cmd, ns, name in (("node", node_cmd, "/bench_node", "roadseg"),
                                     ("baseline", base_cmd, "/bench_base", "baseline")):
            proc = _start(cmd)
            try:
                try:
                    driver.connect(ns, name)
                except RuntimeError:
                    _stop(proc)
                    print(proc.stderr.read() if proc.stderr else "", file=sys.stderr)
                    raise
                print(f"  {label}: closed loop ({args.frames} frames) ...", flush=True)
                closed = driver.closed_loop(args.frames)
                print(f"  {label}: open loop ({rate:.0f} Hz for {args.seconds:.0f} s) ...", flush=True)
                opened = driver.open_loop(rate, args.seconds)
            finally:
                _stop(proc)
            err = proc.stderr.read() if proc.stderr else ""
            if proc.returncode not in (0, -signal.SIGINT):
                print(f"  {label} exited with {proc.returncode}: {err.strip()[-500:]}", file=sys.stderr)
            results[label] = {"closed_loop": closed, "open_loop": opened}
            if label == "node":   # the node's own view: worker time per frame vs network time
                diag = opened.pop("diagnostics").get("/bench_node/roadseg", {})
                results[label]["diagnostics"] = diag
                if diag:
                    print(f"  node diagnostics: processing {diag.get('processing_ms_mean')} ms/frame, "
                          f"of which Segmenter.predict {diag.get('predict_ms_mean')} ms "
                          f"(network {diag.get('inference_ms_mean')} ms); "
                          f"dropped {diag.get('frames_dropped')}", flush=True)
                # Predict again right after the node: the machine's speed drifts over a run.
                raw_after = bench_raw(weights, args.device, image, (width, height),
                                      args.raw_seconds, args.threads, args.backend, args.precision)
                print(f"  raw Segmenter.predict again: {raw_after['fps']:.1f} frames/s", flush=True)
                results["raw_after"] = raw_after
    finally:
        driver.close()
        tmp.cleanup()
    raw = dict(raw, fps=0.5 * (raw["fps"] + raw_after["fps"]))
    results["raw"]["fps_before_and_after_node_mean"] = raw["fps"]

    node_fps, base_fps = results["node"]["open_loop"]["fps"], results["baseline"]["open_loop"]["fps"]
    summary = {
        "node_vs_raw_throughput": node_fps / raw["fps"],
        "node_vs_baseline_throughput": node_fps / base_fps if base_fps else float("inf"),
        "node_median_latency_vs_raw": results["node"]["closed_loop"]["latency_ms"]["median"]
        / raw["latency_ms"]["median"],
    }
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "size": [width, height],
            "device": args.device, "weights": str(weights), "model": raw["model"], "quick": args.quick,
            "backend": raw["backend"], "precision": raw["precision"],
            "threads": args.threads,
            "ros_domain_id": domain, "load_average": os.getloadavg()}
    print()
    print(f"{'':10s} {'frames/s':>9s} {'closed-loop latency ms (med/p90/p99)':>38s} "
          f"{'overloaded latency ms (med/p90/p99)':>38s}")
    print(f"{'raw':10s} {raw['fps']:9.1f} {_fmt(raw['latency_ms']):>38s} {'':>38s}")
    for label in ("node", "baseline"):
        r = results[label]
        print(f"{label:10s} {r['open_loop']['fps']:9.1f} {_fmt(r['closed_loop']['latency_ms']):>38s} "
              f"{_fmt(r['open_loop']['latency_ms']):>38s}")
    print(f"node throughput = {summary['node_vs_raw_throughput']:.0%} of raw predict, "
          f"{summary['node_vs_baseline_throughput']:.2f}x the baseline; node median latency = "
          f"{summary['node_median_latency_vs_raw']:.2f}x raw predict latency")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results, "summary": summary}, indent=2))
        print(f"wrote {args.json}")
    return 0


def _fmt(p: dict) -> str:
    return f"{p['median']:.1f} / {p['p90']:.1f} / {p['p99']:.1f}"


if __name__ == "__main__":
    sys.exit(main())
