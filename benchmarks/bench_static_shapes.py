#!/usr/bin/env python3
"""Why the OpenVINO backend converts the network once per input shape: static vs dynamic graphs.

For the bundled default (or ``--weights``) it converts the network twice: once with a
dynamic input ``[-1, 3, -1, -1]`` (traced at the checkpoint's size) and once per shape,
static. At every ``--sizes`` it prints, side by side in one run, the network-only
frames/s of both (median of ``--iters`` after warm-ups, ``--threads`` threads, f32 and
bf16 inference precision) and the largest logit difference of each against torch at
that size: a traced graph can bake in the sizes it was traced at, which shows as a
difference far above float rounding.

    ./dev.sh run python benchmarks/bench_static_shapes.py --sizes 512x320 576x160 736x224 --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from roadseg_ros.backends import OpenVINONetwork, weights_digest
from roadseg_ros.checkpoint import load_weights, model_from_checkpoint
from roadseg_ros.config import size_type
from roadseg_ros.models import fuse_conv_bn, main_output


def _fps(request, x: np.ndarray, iters: int) -> float:
    for _ in range(3):
        request.infer({0: x})
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        request.infer({0: x})
        times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="checkpoint or bundled name (default: bundled)")
    parser.add_argument("--sizes", nargs="+", type=size_type(32),
                        default=[(512, 320), (576, 160), (736, 224)])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args(argv)
    import openvino as ov

    torch.set_num_threads(args.threads)
    path, ckpt = load_weights(args.weights)
    module = model_from_checkpoint(ckpt)
    fuse_conv_bn(module)
    module.eval()
    net = OpenVINONetwork(module, "fp32", digest=weights_digest(ckpt.state_dict, ckpt.arch), num_threads=1,
                          cache_dir=None)
    w0, h0 = ckpt.input_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamic = ov.convert_model(module, example_input=torch.zeros(1, 3, h0, w0), input=[(-1, 3, -1, -1)])
    core = ov.Core()
    print(f"{path.name} ({ckpt.arch}), {args.threads} thread(s), openvino {ov.__version__.split('-')[0]}, "
          f"{os.cpu_count()} CPUs, {dt.datetime.now().isoformat(timespec='seconds')}")
    print("| size | precision | static frames/s | dynamic frames/s | static max diff vs torch "
          "| dynamic max diff vs torch |")
    print("|---|---|---|---|---|---|")
    for w, h in args.sizes:
        x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        with torch.inference_mode():
            ref = main_output(module(torch.from_numpy(x))).numpy()
        static = net.convert((1, 3, h, w))
        for precision in ("f32", "bf16"):
            cfg = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": args.threads,
                   "INFERENCE_PRECISION_HINT": precision}
            figures = []
            for graph in (static, dynamic):
                request = core.compile_model(graph, "CPU", cfg).create_infer_request()
                out = np.array(request.infer({0: x})[0])
                diff = float(np.abs(out - ref).max()) if out.shape == ref.shape else float("nan")
                figures.append((_fps(request, x, args.iters), diff))
            (sf, sd), (df, dd) = figures
            print(f"| {w}x{h} | {precision} | {sf:.1f} | {df:.1f} | {sd:.2g} | {dd:.2g} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
