#!/usr/bin/env python3
"""Latency and throughput of ``Segmenter.predict`` against a plain baseline, per model and backend.

For every (model, device, backend, precision, image size, batch) it measures, in the same run:

* ``predict``: :meth:`roadseg_ros.inference.Segmenter.predict` on BGR uint8 frames
  (mask + confidence at the image resolution), the network running at the image size;
* ``network``: the network alone on a ready device tensor (same dtype and layout as
  predict uses), so ``overhead = predict - network`` is everything else;
* ``baseline``: the same network fed the usual way: ``cv2.cvtColor`` + ``cv2.resize``
  + numpy normalisation on the CPU, float32, a new tensor per frame, softmax/arg-max on
  the CPU.

Random weights (timing does not depend on them), or ``--weights`` (a checkpoint or a bundled
name: int8 needs one with calibrated ranges). ``--backends torch openvino onnxruntime`` puts
the runtimes side by side, each at ``--precisions`` (default: every precision it runs here);
``vs torch`` is predict's speed-up over torch fp32 predict at the same model, size and batch.
A combination that cannot run here (the Segmenter fell back) is a row saying why.
Figures: median and p90 latency per call, frames/s (batch / median). Output: a table on
stdout, ``--json``, ``--markdown``.

    ./dev.sh run python benchmarks/bench_segmenter.py --quick
    ./dev.sh run python benchmarks/bench_segmenter.py --models roadnet_small --sizes 576x160 --batches 1
    ./dev.sh run python benchmarks/bench_segmenter.py --json bench.json --markdown bench.md   # everything
    ./dev.sh run python benchmarks/bench_segmenter.py --weights roadseg_default --backends torch openvino \
        --sizes 576x160 1242x375 1280x720 --batches 1 4 --threads 2 --no-baseline

A full run of every model at every size is long on a small CPU; ``--max-seconds`` caps
the time spent per measurement (at least ``--min-iters`` calls are always timed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from roadseg_ros.backends import SUPPORTED, runtime_missing
from roadseg_ros.checkpoint import Checkpoint, load_weights, model_from_checkpoint
from roadseg_ros.classes import CAMVID11
from roadseg_ros.config import BACKENDS, parse_size, size_type
from roadseg_ros.inference import Segmenter
from roadseg_ros.models import DEFAULT_MODEL, build_model, list_models, main_output
from roadseg_ros.quantization import ranges_path_for

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DEFAULT_SIZES = ("576x160", "1242x375", "1280x720")


def make_checkpoint(arch: str, size: tuple[int, int]) -> Checkpoint:
    torch.manual_seed(0)
    model = build_model(arch, CAMVID11.num_classes)
    return Checkpoint(arch=arch, arch_kwargs={}, class_names=list(CAMVID11.class_names),
                      class_colors=list(CAMVID11.class_colors),
                      drivable_classes=list(CAMVID11.drivable_classes), mean=MEAN, std=STD,
                      input_size=size, state_dict=model.state_dict(), training={})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int, min_iters: int,
            max_iters: int, max_seconds: float) -> dict[str, list[float]]:
    """Per-call wall times in ms of each function, interleaved round-robin.

    Interleaving means a burst of load from another process hits predict, network and
    baseline alike, so their ratios stay meaningful on a shared machine. ``warmup``
    untimed rounds, then rounds until ``max_iters`` or ``max_seconds`` (at least ``min_iters``).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_iters and (rounds < min_iters or time.perf_counter() - start < max_seconds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
    return times


def summary(times: list[float], batch: int) -> dict:
    ordered = sorted(times)
    median = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median_ms": median, "p90_ms": p90, "fps": 1e3 * batch / median, "iters": len(times)}


class Baseline:
    """The usual way: per-frame OpenCV/numpy pre-processing on the CPU, float32, CPU arg-max."""

    def __init__(self, ckpt: Checkpoint, device: torch.device, size: tuple[int, int],
                 with_confidence: bool = True) -> None:
        self.model = model_from_checkpoint(ckpt, device=device)
        self.with_confidence = with_confidence
        self.device = device
        self.size = size
        self.mean = np.array(MEAN, np.float32)
        self.std = np.array(STD, np.float32)

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        inputs = []
        for frame in frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_LINEAR)
            x = (rgb.astype(np.float32) / 255.0 - self.mean) / self.std
            inputs.append(x.transpose(2, 0, 1))
        tensor = torch.from_numpy(np.stack(inputs)).to(self.device)
        with torch.no_grad():
            logits = main_output(self.model(tensor)).cpu()
        if not self.with_confidence:
            return logits.argmax(dim=1).numpy().astype(np.uint8), None
        conf, mask = torch.softmax(logits, dim=1).max(dim=1)
        return mask.numpy().astype(np.uint8), conf.numpy()


def bench_one(arch: str, device: torch.device, backend: str, precision: str, size: tuple[int, int],
              batch: int, args: argparse.Namespace, baseline: bool,
              weights: tuple[Path, Checkpoint] | None = None) -> dict:
    w, h = size
    row = {"model": arch, "device": str(device), "backend": backend, "precision": precision,
           "size": f"{w}x{h}", "batch": batch}
    ckpt = weights[1] if weights is not None else make_checkpoint(arch, size)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
    frames_in = frames[0] if batch == 1 else frames
    timing = dict(device=device, warmup=args.warmup, min_iters=args.min_iters, max_iters=args.iters,
                  max_seconds=args.max_seconds)
    seg = Segmenter(ckpt, device=str(device), precision=precision, input_size=size, compile=args.compile,
                    fuse_batchnorm=not args.no_fuse, warmup=True, backend=backend, num_threads=args.threads,
                    int8_ranges=ranges_path_for(weights[0]) if weights is not None else None)
    if (seg.backend, seg.precision) != (backend, precision):
        row["error"] = f"not run here: {seg.backend_reason}"[:200]
        return row
    with_conf = not args.no_confidence
    stage_sums = {"preprocess_ms": 0.0, "inference_ms": 0.0, "postprocess_ms": 0.0}

    def run_predict() -> None:
        pred = seg.predict(frames_in, color_order="bgr", with_confidence=with_conf)
        for key in stage_sums:
            stage_sums[key] += pred.timing[key]

    x = torch.randn(batch, 3, h, w, device=device).to(seg.dtype).contiguous(memory_format=torch.channels_last)

    def run_network() -> None:
        with torch.inference_mode():
            seg._network(x)

    fns = {"predict": run_predict, "network": run_network}
    if baseline:
        base = Baseline(ckpt, device, size, with_confidence=with_conf)
        fns["baseline"] = lambda: base(frames)
    times = measure(fns, **timing)
    for name, values in times.items():
        row[name] = summary(values, batch)
    calls = args.warmup + len(times["predict"])
    row["predict_stages_mean_ms"] = {k: v / calls for k, v in stage_sums.items()}
    overhead = row["predict"]["median_ms"] - row["network"]["median_ms"]
    row["overhead_ms"] = overhead
    row["overhead_pct"] = 100.0 * overhead / row["predict"]["median_ms"]
    if baseline:
        row["speedup"] = row["baseline"]["median_ms"] / row["predict"]["median_ms"]
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def add_ratios(rows: list[dict]) -> None:
    """``vs_torch``: predict frames/s over torch fp32 predict's at the same model, device, size and batch."""
    ref = {(r["model"], r["device"], r["size"], r["batch"]): r["predict"]["fps"] for r in rows
           if "error" not in r and r["backend"] == "torch" and r["precision"] == "fp32"}
    for r in rows:
        key = (r["model"], r["device"], r["size"], r["batch"])
        if "error" not in r and key in ref:
            r["vs_torch"] = r["predict"]["fps"] / ref[key]


def one_line(row: dict) -> str:
    head = (f"{row['model']:18s} {row['device']:6s} {row['backend']:11s} {row['precision']:4s} "
            f"{row['size']:>9s} b{row['batch']}:")
    if "error" in row:
        return f"{head} ERROR {row['error']}"
    p = row["predict"]
    base = (f" | baseline {row['baseline']['median_ms']:7.1f} ms {row['baseline']['fps']:7.1f} f/s "
            f"({row['speedup']:.2f}x)" if "baseline" in row else "")
    return (f"{head} predict {p['median_ms']:7.1f} ms (p90 {p['p90_ms']:7.1f}) {p['fps']:7.1f} f/s "
            f"| network {row['network']['median_ms']:7.1f} ms "
            f"| overhead {row['overhead_ms']:5.1f} ms ({row['overhead_pct']:.0f}%){base}")


def markdown(rows: list[dict], meta: dict) -> str:
    load = ", ".join(f"{v:.1f}" for v in meta["load_average_at_start"])
    lines = [f"Machine: {meta['machine']}; torch {meta['torch']}, {meta['cpu_threads']} CPU thread(s); "
             f"load average at start {load}; {meta['date']}; command: `{meta['command']}`", "",
             "| model | device | backend | prec. | size | batch | predict median ms | p90 ms | frames/s "
             "| vs torch fp32 | network ms | overhead ms (%) | baseline median ms | baseline frames/s "
             "| speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['device']} | {r['backend']} | {r['precision']} | {r['size']} "
                         f"| {r['batch']} | {r['error']} ||||||||| ")
            continue
        p, n = r["predict"], r["network"]
        b = r.get("baseline")
        base = f"{b['median_ms']:.1f} | {b['fps']:.1f} | {r['speedup']:.2f}x" if b else "- | - | -"
        ratio = f"{r['vs_torch']:.2f}x" if "vs_torch" in r else "-"
        lines.append(f"| {r['model']} | {r['device']} | {r['backend']} | {r['precision']} | {r['size']} "
                     f"| {r['batch']} | {p['median_ms']:.1f} | {p['p90_ms']:.1f} | {p['fps']:.1f} | {ratio} "
                     f"| {n['median_ms']:.1f} | {r['overhead_ms']:.1f} ({r['overhead_pct']:.0f}%) | {base} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, help="models (default: every registered one)")
    parser.add_argument("--sizes", nargs="+", type=size_type(), default=None, metavar="WxH",
                        help=f"image = network sizes (default: {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    parser.add_argument("--backends", nargs="+", default=["torch"],
                        choices=[b for b in BACKENDS if b != "auto"],
                        help="runtimes side by side (default: %(default)s)")
    parser.add_argument("--precisions", nargs="+", default=None,
                        help="default: every precision each backend runs on the device (torch: fp32 on cpu, "
                             "fp32 and fp16 on cuda); others are rows saying why not")
    parser.add_argument("--weights", default=None,
                        help="a checkpoint (or bundled name) instead of random weights; its model is "
                             "measured")
    parser.add_argument("--iters", type=int, default=30, help="max timed calls per measurement")
    parser.add_argument("--min-iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=10.0, help="time budget per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="Segmenter(compile=True)")
    parser.add_argument("--no-fuse", action="store_true",
                        help="Segmenter(fuse_batchnorm=False): keep BatchNorm layers separate")
    parser.add_argument("--no-confidence", action="store_true", help="masks only (predict and baseline)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help=f"{DEFAULT_MODEL} and tiny_segnet, 576x160, batch 1, few iterations")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write a Markdown table")
    args = parser.parse_args(argv)

    if args.quick:
        args.models = args.models or [DEFAULT_MODEL, "tiny_segnet"]
        args.sizes = args.sizes or [(576, 160)]
        args.batches = [1]
        args.iters, args.warmup, args.max_seconds = min(args.iters, 15), 2, min(args.max_seconds, 3.0)
    weights = None
    if args.weights:
        weights = load_weights(args.weights)
        args.models = [weights[1].arch]
    models = args.models or list_models()
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; valid: {', '.join(list_models())}")
    sizes = args.sizes or [parse_size(s) for s in DEFAULT_SIZES]
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if args.threads:
        torch.set_num_threads(args.threads)

    meta = {"date": dt.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(), "python": platform.python_version(),
            "machine": f"{platform.machine()} {os.cpu_count()}-core CPU"
                       + (f" + {torch.cuda.get_device_name()}" if "cuda" in " ".join(devices) else ""),
            "command": " ".join(["bench_segmenter.py", *(argv if argv is not None else sys.argv[1:])]),
            "confidence": not args.no_confidence}
    rows: list[dict] = []
    for device_name in devices:
        device = torch.device(device_name)
        for backend in args.backends:
            missing = runtime_missing(backend)
            if missing:
                print(f"skipping backend {backend}: {missing}", flush=True)
                continue
            default = (["fp32", "fp16"] if device.type == "cuda" else ["fp32"]) if backend == "torch" else \
                list(SUPPORTED[backend].get(device.type, ()))
            for precision in args.precisions or default:
                for arch in models:
                    for size in sizes:
                        for batch in args.batches:
                            # the fp32 baseline is the same for every precision: measure it once
                            baseline = (not args.no_baseline and backend == "torch"
                                        and precision == (args.precisions or default)[0])
                            try:
                                row = bench_one(arch, device, backend, precision, size, batch, args, baseline,
                                                weights)
                            except (RuntimeError, ValueError) as exc:  # OOM, unsupported precision
                                row = {"model": arch, "device": device_name, "backend": backend,
                                       "precision": precision, "size": f"{size[0]}x{size[1]}", "batch": batch,
                                       "error": str(exc).splitlines()[0][:120]}
                                if device.type == "cuda":
                                    torch.cuda.empty_cache()
                            rows.append(row)
                            print(one_line(row), flush=True)
    add_ratios(rows)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    table = markdown(rows, meta)
    if args.markdown:
        args.markdown.write_text(table)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
