#!/usr/bin/env python3
"""What :func:`roadseg_ros.allocator.keep_freed_memory` buys: predict time and page faults.

``mallopt`` is process-wide, so every configuration runs in a fresh child process:
glibc's default allocator or the tuned one, with ``Segmenter.predict`` called from the
main thread (as ``roadseg-infer`` does) or from a worker thread (as the segmentation
node does). The network runs at ``--network-size`` (default 576x160, what the node
benchmark uses); larger images are resized to it on the device and the results come back
at the image's size, as in the node. One torch thread. Printed per configuration: median and mean milliseconds
per predict (mask only) and minor page faults per frame of the calling thread.

    ./dev.sh run python benchmarks/bench_allocator.py
    ./dev.sh run python benchmarks/bench_allocator.py --sizes 1242x375 --network-size 1242x375 --json a.json

Weights: the bundled checkpoint if it exists, else random ``DEFAULT_MODEL`` weights.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _thread_faults() -> int:
    """Minor page faults of the calling thread so far (Linux ``/proc``)."""
    stat = Path(f"/proc/self/task/{threading.get_native_id()}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[7])


def measure(weights: str, size: tuple[int, int], network: tuple[int, int], frames: int, tuned: bool,
            in_thread: bool) -> dict:
    """Child process: time ``frames`` predicts after a warm-up, in this or a worker thread."""
    import numpy as np
    import torch

    from roadseg_ros.allocator import allocator_status, keep_freed_memory
    from roadseg_ros.data.synthetic import render_scene
    from roadseg_ros.inference import Segmenter

    torch.set_num_threads(1)
    if tuned:
        keep_freed_memory()
    image, _ = render_scene(3, *size)
    seg = Segmenter(weights, device="cpu", input_size=network, keep_freed_memory=tuned)
    result: dict = {}

    def run() -> None:
        for _ in range(5):
            seg.predict(image, with_confidence=False)
        faults = _thread_faults()
        times = []
        for _ in range(frames):
            t0 = time.perf_counter()
            seg.predict(image, with_confidence=False)
            times.append((time.perf_counter() - t0) * 1e3)
        result.update(median_ms=float(np.median(times)), mean_ms=float(np.mean(times)),
                      faults_per_frame=(_thread_faults() - faults) / frames)

    if in_thread:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    else:
        run()
    result["allocator"] = allocator_status()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["576x160", "1280x720"], help="image sizes WxH")
    parser.add_argument("--network-size", default="576x160", help="network input size WxH (default 576x160)")
    parser.add_argument("--frames", type=int, default=60, help="timed predicts per run (default 60)")
    parser.add_argument("--weights", help="checkpoint (default: bundled, else random DEFAULT_MODEL weights)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", nargs=5, metavar=("SIZE", "NET", "FRAMES", "TUNED", "THREAD"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if not sys.platform.startswith("linux"):
        print("bench_allocator needs Linux (/proc page-fault counters)", file=sys.stderr)
        return 2
    from roadseg_ros.config import default_weights_path

    weights = args.weights or (str(default_weights_path()) if default_weights_path().is_file() else None)
    if args.child:
        size_text, net_text, frames, tuned, thread = args.child
        size, network = (tuple(int(v) for v in text.split("x")) for text in (size_text, net_text))
        print(json.dumps(measure(weights, size, network, int(frames), tuned == "1", thread == "1")))
        return 0
    if weights is None:
        import tempfile

        from bench_node import make_weights

        from roadseg_ros.models import DEFAULT_MODEL

        weights = str(make_weights(Path(tempfile.mkdtemp()) / "random.pt", DEFAULT_MODEL, (576, 160)))

    rows = []
    print(f"network {args.network_size}, {Path(weights).name}, {os.cpu_count()} CPUs, one torch thread")
    print(f"{'image':>9} {'caller':>7} {'allocator':>9} {'median ms':>10} {'mean ms':>8} "
          f"{'faults/frame':>13}")
    for size in args.sizes:
        for thread in ("0", "1"):
            for tuned in ("0", "1"):
                cmd = [sys.executable, str(Path(__file__).resolve()), "--weights", weights,
                       "--child", size, args.network_size, str(args.frames), tuned, thread]
                env = dict(os.environ, OMP_NUM_THREADS="1")
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                if out.returncode != 0:
                    print(out.stderr[-2000:], file=sys.stderr)
                    return 1
                row = dict(json.loads(out.stdout.strip().splitlines()[-1]), size=size,
                           caller="thread" if thread == "1" else "main", tuned=tuned == "1")
                rows.append(row)
                print(f"{size:>9} {row['caller']:>7} {'tuned' if row['tuned'] else 'default':>9} "
                      f"{row['median_ms']:>10.1f} {row['mean_ms']:>8.1f} {row['faults_per_frame']:>13.0f}",
                      flush=True)
    if args.json:
        meta = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
                "cpus": os.cpu_count(), "weights": Path(weights).name, "frames": args.frames,
                "network_size": args.network_size}
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
