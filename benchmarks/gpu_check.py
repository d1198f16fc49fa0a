#!/usr/bin/env python3
"""The whole CUDA path measured in one command, for the rare, short loan of a GPU machine.

GPU machines are lent to a session by chance, for 15 minutes of device time at most and
10 minutes per command. So the check is prepared and tested here, on the CPU, and run as
one call when a GPU is lent; everything it learns comes back in at most a few files.

Stages, each in its own child process with its own time box, so that a crash, a hang or a
CUDA error in one stage is recorded and the next stage still runs:

1. ``environment``: torch/CUDA/cuDNN/onnxruntime versions, the GPU, what is registered;
2. ``cuda_tests``: the test suite's CUDA tests (``pytest -k cuda``: the tests parametrised
   on the ``cuda`` device and those that skip without CUDA);
3. ``node``: ``bench_node.py --device cuda`` at 1242x375 (node vs raw predict vs baseline);
4. ``train``: ``roadseg-train`` on synthetic scenes with AMP for a few hundred steps:
   steps/s and whether the loss fell;
5. ``export``: TorchScript and ONNX parity against the eager network on CUDA (fp32 with
   TF32 off, and fp16), ONNX through every onnxruntime provider present;
6. ``runtimes``: the bundled checkpoint's static ONNX graphs at the network sizes the node
   uses for 1242x375 and 576x160 cameras, through ONNX Runtime's TensorRT (fp16) and CUDA
   (fp32, fp16) providers, network only, batch 1 and 4, against torch CUDA fp16 in the same
   run, each with its parity against torch fp32; a provider onnxruntime does not have is
   one line saying so (the image's onnxruntime is CPU-only: then only torch is measured);
7. ``segmenter``: ``bench_segmenter.py``'s measurement (predict, network alone, plain
   baseline) for every registered model, at 576x160, 1242x375 and 1280x720, batch 1 and
   8, fp32/fp16/bf16. It runs last and takes the time the others left; the 1242x375
   batch-1 rows of every model come first, so a time box that runs out cuts the least
   important rows (the report lists those not measured).

Outputs, in ``--out`` (default ``$OUT``, else ``runs/gpu_check``): ``gpu_check.json``
(everything), ``gpu_check.md`` (tables to paste into the READMEs) and ``gpu_check.log``
(every stage's own output). A short summary table is printed last. Exit status: 0 when
every stage passed, 1 when any failed or ran out of time, 2 on a usage error. The issue's
speed targets are printed as met/missed but do not change the exit status: a slow
figure is a result, not a broken check.

``--dry-run`` runs the very same stages on the CPU with tiny sizes and step counts, two
stages at a time after the environment stage (80-85 s measured on the 2-core box while it
was busy, load average about 4; it uses about 80 s of CPU time, so 45-50 s on an idle one);
the test suite runs it, so the check cannot rot between GPU loans.

    bash benchmarks/gpu_check.sh                                 # on the GPU machine (see README)
    ./dev.sh run python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_dry
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
#: Run order. The segmenter grid goes last because it is the one stage that can use any time
#: left (it measures its most important rows first and stops at its time box), so time the
#: stages before it did not need goes to it rather than being lost.
STAGES = ("environment", "cuda_tests", "node", "train", "export", "runtimes", "segmenter")
#: Seconds every stage after the current one is promised, so one slow stage cannot starve the rest.
MIN_STAGE_S = 20.0
#: The onnxruntime providers the runtimes stage measures on a GPU, most promising first.
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
#: Stages whose measurements go to a JSON-lines file as each one ends (read back also after a time-out).
ROW_FILES = {"segmenter": "segmenter_rows.jsonl", "runtimes": "runtimes_rows.jsonl"}
#: Arg-max agreement with torch fp32 that a reduced-precision runtime must reach (the issue's bf16 rule).
HALF_AGREEMENT = 0.995


@dataclasses.dataclass
class Plan:
    """What every stage does: one instance for the GPU run, one for the CPU dry run.

    The two differ only in sizes, step counts and time boxes; the code each stage runs is
    the same, which is what lets the dry run in the test suite vouch for the GPU run.
    """

    dry_run: bool
    device: str
    budget_s: float                       # the whole check, all stages together
    timeouts: dict[str, float]            # hard time box per stage
    test_paths: list[str]
    test_filter: str
    seg_models: list[str] | None          # None: the registered models, in priority order
    seg_model_limit: int | None           # measure only the first N of them (None: all)
    seg_sizes: list[tuple[int, int]]
    seg_key_size: tuple[int, int]         # measured first for every model
    seg_batches: list[int]
    seg_precisions: list[str]
    seg_warmup: int
    seg_min_iters: int
    seg_iters: int
    seg_max_seconds: float
    seg_threads: int | None               # torch CPU threads (None: torch's default)
    node_size: tuple[int, int]
    node_frames: int
    node_seconds: float
    node_raw_seconds: float
    node_threads: int
    train_model: str | None               # None: the package's DEFAULT_MODEL
    train_size: tuple[int, int]
    train_scenes: int
    train_batch: int
    train_epochs: int
    train_steps_per_epoch: int
    train_workers: int
    export_size: tuple[int, int]
    export_timing_iters: int
    runtimes_cameras: list[tuple[int, int]]  # camera frames; each is measured at its keep_aspect network size
    runtimes_batches: list[int]
    runtimes_providers: list[str]          # onnxruntime providers to measure (those absent: one line each)
    runtimes_warmup: int
    runtimes_iters: int
    use_tiny_checkpoint: bool             # dry run: a random tiny_segnet instead of the bundled weights


@dataclasses.dataclass
class StageContext:
    """What a stage child gets: the plan, a scratch folder shared by the stages, its time box.

    ``weights`` is the checkpoint the environment stage chose (bundled, or random in the
    dry run), handed on so that the node, train and test stages need not import torch
    themselves: each import of torch + torchvision costs seconds on a small CPU.
    """

    plan: Plan
    scratch: Path
    timeout_s: float
    weights: str | None = None


def gpu_plan() -> Plan:
    """The real check: 6.5 minutes at most on one H200, bootstrap apart (about 7.5 minutes in all).

    The stages before the segmenter usually need well under their time boxes; the
    segmenter then takes what is left of the budget (``budget_s``), up to its own box.
    """
    return Plan(
        dry_run=False, device="cuda", budget_s=390.0,
        timeouts={"environment": 60, "cuda_tests": 70, "node": 100, "train": 75, "export": 45,
                  "runtimes": 60, "segmenter": 240},
        test_paths=["test"], test_filter="cuda",
        seg_models=None, seg_model_limit=None, seg_sizes=[(576, 160), (1242, 375), (1280, 720)],
        seg_key_size=(1242, 375),
        seg_batches=[1, 8], seg_precisions=["fp32", "fp16", "bf16"],
        seg_warmup=3, seg_min_iters=5, seg_iters=20, seg_max_seconds=1.0, seg_threads=None,
        node_size=(1242, 375), node_frames=50, node_seconds=6.0, node_raw_seconds=4.0, node_threads=0,
        train_model=None, train_size=(480, 360), train_scenes=800, train_batch=8, train_epochs=3,
        train_steps_per_epoch=100, train_workers=8,
        export_size=(1242, 375), export_timing_iters=30,
        runtimes_cameras=[(1242, 375), (576, 160)], runtimes_batches=[1, 4],
        runtimes_providers=list(GPU_PROVIDERS), runtimes_warmup=10, runtimes_iters=50,
        use_tiny_checkpoint=False,
    )


def dry_plan() -> Plan:
    """The same stages on the CPU, tiny: what the test suite runs (under 90 s on 2 busy cores)."""
    return Plan(
        dry_run=True, device="cpu", budget_s=240.0,
        timeouts={"environment": 60, "cuda_tests": 60, "node": 90, "train": 60, "export": 60,
                  "runtimes": 60, "segmenter": 60},
        test_paths=["test/test_inference.py"], test_filter="cuda",
        seg_models=None, seg_model_limit=1, seg_sizes=[(64, 48)], seg_key_size=(64, 48),
        seg_batches=[1, 2], seg_precisions=["fp32"],
        seg_warmup=1, seg_min_iters=2, seg_iters=3, seg_max_seconds=0.2, seg_threads=1,
        node_size=(128, 96), node_frames=5, node_seconds=1.5, node_raw_seconds=0.5, node_threads=1,
        train_model="tiny_segnet", train_size=(64, 48), train_scenes=12, train_batch=4, train_epochs=3,
        train_steps_per_epoch=3, train_workers=0,
        export_size=(64, 48), export_timing_iters=3,
        # The same cameras (at the tiny checkpoint's network sizes); the GPU providers are asked for
        # too, so the "not available" path runs here, and the CPU provider stands in for them.
        runtimes_cameras=[(1242, 375), (576, 160)], runtimes_batches=[1, 2],
        runtimes_providers=[*GPU_PROVIDERS, "CPUExecutionProvider"], runtimes_warmup=1, runtimes_iters=3,
        use_tiny_checkpoint=True,
    )


# =============================================================================== helpers (child side)
@functools.cache
def _load_bench(name: str):
    """Import ``benchmarks/<name>.py`` as a module (the folder is no package)."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _tiny_checkpoint(path: Path, size: tuple[int, int]) -> Path:
    """A random ``tiny_segnet`` checkpoint: the dry run's stand-in for the bundled weights."""
    import torch

    from roadseg_ros.checkpoint import Checkpoint, save_checkpoint
    from roadseg_ros.classes import CAMVID11
    from roadseg_ros.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny_segnet", CAMVID11.num_classes)
    ckpt = Checkpoint(arch="tiny_segnet", arch_kwargs={}, class_names=list(CAMVID11.class_names),
                      class_colors=list(CAMVID11.class_colors),
                      drivable_classes=list(CAMVID11.drivable_classes), mean=(0.485, 0.456, 0.406),
                      std=(0.229, 0.224, 0.225), input_size=size, state_dict=model.state_dict(),
                      training={"note": "random weights: gpu_check dry run"})
    return save_checkpoint(ckpt, path)


def _checkpoint_for(ctx: StageContext, size: tuple[int, int]) -> Path:
    """The weights the node and export stages use: bundled (GPU run) or tiny random (dry run)."""
    if ctx.weights and Path(ctx.weights).is_file():
        return Path(ctx.weights)
    from roadseg_ros.config import default_weights_path

    plan, scratch = ctx.plan, ctx.scratch

    if not plan.use_tiny_checkpoint and default_weights_path().is_file():
        return default_weights_path()
    if not plan.use_tiny_checkpoint:
        bench_node = _load_bench("bench_node")
        from roadseg_ros.models import DEFAULT_MODEL
        return bench_node.make_weights(scratch / "random_default.pt", DEFAULT_MODEL, size)
    return _tiny_checkpoint(scratch / "tiny.pt", size)


def segmenter_models(plan: Plan, registered: list[str], default_model: str,
                     bundled_arch: str | None) -> list[str]:
    """The models the segmenter stage measures, in the order it measures them."""
    return (plan.seg_models or ordered_models(registered, default_model, bundled_arch))[:plan.seg_model_limit]


def ordered_models(registered: list[str], default_model: str, bundled_arch: str | None) -> list[str]:
    """Registered models, most important first: the default, the bundled one, PSPNets, the rest.

    The order matters because the segmenter stage's time box cuts from the end; the names
    are discovered at run time, so models added later are measured without editing this.
    """
    def rank(name: str) -> tuple[int, str]:
        if name == default_model:
            return 0, name
        if name == bundled_arch:
            return 1, name
        if "psp" in name:
            return 2, name
        return 3, name

    return sorted(registered, key=rank)


# =============================================================================== stages (child side)
def stage_environment(ctx: StageContext) -> dict:
    """What the machine is: recorded first, because every figure after it depends on it.

    It also picks the checkpoint the later stages use (``weights``), so that they need
    not import torch just to find or make one.
    """
    import torch

    plan = ctx.plan

    from roadseg_ros.checkpoint import load_checkpoint
    from roadseg_ros.config import default_weights_path
    from roadseg_ros.models import DEFAULT_MODEL, list_models

    info: dict[str, Any] = {
        "python": platform.python_version(), "executable": sys.executable, "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "tf32_cudnn_default": torch.backends.cudnn.allow_tf32,
        "tf32_matmul_default": torch.backends.cuda.matmul.allow_tf32,
        "registered_models": list_models(), "default_model": DEFAULT_MODEL,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count,
                    bf16_supported=torch.cuda.is_bf16_supported())
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"unavailable ({_first_line(exc)})"
    weights = default_weights_path()
    if weights.is_file():
        ckpt = load_checkpoint(weights)
        info["bundled_checkpoint"] = {"arch": ckpt.arch, "input_size": list(ckpt.input_size)}
    else:
        info["bundled_checkpoint"] = None
    bundled_arch = info["bundled_checkpoint"]["arch"] if info["bundled_checkpoint"] else None
    info["segmenter_models"] = segmenter_models(plan, list_models(), DEFAULT_MODEL, bundled_arch)
    for module in ("onnx", "onnxruntime", "tensorrt", "rclpy"):
        try:
            mod = __import__(module)
            info[module] = getattr(mod, "__version__", "present")
        except Exception as exc:  # a broken install is as informative as a missing one
            info[module] = f"unavailable ({_first_line(exc)})"
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:
        info["onnxruntime_providers"] = []
    try:
        from roadseg_ros.msg import DrivableArea  # noqa: F401  (generated by the colcon build)

        info["roadseg_msgs"] = "built"
    except Exception as exc:
        info["roadseg_msgs"] = f"unavailable ({_first_line(exc)})"
    data_roots = [p for p in (ROOT / "shared" / "data", ROOT.parent / "shared" / "data") if p.is_dir()]
    info["data_roots"] = [str(p) for p in data_roots]
    info["weights"] = str(_checkpoint_for(ctx, plan.node_size))
    if not plan.dry_run and not info["cuda_available"]:
        info["error"] = f"CUDA is not available to torch {torch.__version__} on this machine"
    return info


def stage_cuda_tests(ctx: StageContext) -> dict:
    """The suite's CUDA tests; on the CPU (dry run) the same selection runs and mostly skips."""
    plan, scratch, timeout_s = ctx.plan, ctx.scratch, ctx.timeout_s
    junit = scratch / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", *plan.test_paths, "-k", plan.test_filter, "-q",
           "-p", "no:cacheprovider", "--continue-on-collection-errors", f"--junitxml={junit}"]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, timeout=max(5.0, timeout_s - 10))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed: list[str] = []
    if junit.is_file():
        root = ET.parse(junit).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            for key in counts:
                counts[key] += int(suite.get(key, 0))
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname')}::{case.get('name')}")
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    result = {"command": " ".join(cmd[1:]), "exit_code": proc.returncode, "passed": passed,
              "failed": counts["failures"], "errors": counts["errors"], "skipped": counts["skipped"],
              "failed_tests": failed[:50]}
    if proc.returncode not in (0, 5) or counts["failures"] or counts["errors"]:
        result["error"] = (f"pytest exit {proc.returncode}: {counts['failures']} failed, "
                           f"{counts['errors']} errors")
    elif passed == 0 and not plan.dry_run:
        result["error"] = "no CUDA test ran (all skipped or none selected)"
    return result


def stage_segmenter(ctx: StageContext) -> dict:
    """``bench_segmenter``'s per-configuration measurement, rows appended as they finish.

    Rows go to a JSON-lines file as each one ends, so the rows measured before a hard
    time-out still reach the report. The stage stops starting rows at its soft deadline.
    """
    plan, scratch, timeout_s = ctx.plan, ctx.scratch, ctx.timeout_s
    import torch

    from roadseg_ros.checkpoint import load_checkpoint
    from roadseg_ros.config import default_weights_path
    from roadseg_ros.models import DEFAULT_MODEL, list_models

    if plan.seg_threads:  # one thread on a shared CPU: OpenMP threads otherwise wait on each other
        torch.set_num_threads(plan.seg_threads)
    bench = _load_bench("bench_segmenter")
    # bench_one builds a fresh random-weight checkpoint for every row; for FCN-8s/VGG16 that
    # is seconds of CPU per row, 18 rows per model. The weights do not depend on the size
    # (only the recorded input_size does), so build them once per model and reuse them.
    build = bench.make_checkpoint
    weights_of = functools.cache(lambda arch: build(arch, plan.seg_key_size))
    bench.make_checkpoint = lambda arch, size: dataclasses.replace(weights_of(arch), input_size=size)
    deadline = time.monotonic() + max(5.0, timeout_s - 20.0)
    bundled = default_weights_path()
    bundled_arch = load_checkpoint(bundled).arch if bundled.is_file() else None
    models = segmenter_models(plan, list_models(), DEFAULT_MODEL, bundled_arch)
    args = argparse.Namespace(warmup=plan.seg_warmup, min_iters=plan.seg_min_iters, iters=plan.seg_iters,
                              max_seconds=plan.seg_max_seconds, compile=False, no_fuse=False,
                              no_confidence=False, threads=plan.seg_threads)
    first = [(m, plan.seg_key_size, 1, p) for m in models for p in plan.seg_precisions]
    rest = [(m, s, b, p) for m in models for s in plan.seg_sizes for b in plan.seg_batches
            for p in plan.seg_precisions if (m, s, b, p) not in first]
    device = torch.device(plan.device)
    rows_file = scratch / ROW_FILES["segmenter"]
    not_run: list[str] = []
    errors: list[str] = []
    for arch, size, batch, precision in first + rest:
        label = f"{arch} {_size_text(size)} b{batch} {precision}"
        if time.monotonic() > deadline:
            not_run.append(label)
            continue
        baseline = precision == plan.seg_precisions[0]  # the fp32 baseline is the same for every precision
        try:
            # torch: other runtimes on CUDA are the runtimes stage's (the backend is not offered there yet)
            row = bench.bench_one(arch, device, "torch", precision, size, batch, args, baseline)
        except (RuntimeError, ValueError, TypeError) as exc:  # OOM, unsupported precision, bad model
            row = {"model": arch, "device": plan.device, "backend": "torch", "precision": precision,
                   "size": _size_text(size), "batch": batch, "error": _first_line(exc)}
            errors.append(f"{label}: {row['error']}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(bench.one_line(row), flush=True)
        with rows_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
    result: dict[str, Any] = {"models": models, "planned_rows": len(first) + len(rest), "not_run": not_run}
    if not_run:
        result["note"] = f"{len(not_run)} configuration(s) not measured: the stage's time box ran out"
    if errors:
        result["error"] = f"{len(errors)} configuration(s) failed, first: {errors[0]}"
    return result


def stage_node(ctx: StageContext) -> dict:
    """``bench_node.py`` as it is run by hand, in its own process (it starts two node processes)."""
    plan, scratch, timeout_s = ctx.plan, ctx.scratch, ctx.timeout_s
    weights = _checkpoint_for(ctx, plan.node_size)
    out = scratch / "node.json"
    cmd = [sys.executable, str(BENCH_DIR / "bench_node.py"), "--device", plan.device,
           "--size", _size_text(plan.node_size), "--weights", str(weights), "--frames", str(plan.node_frames),
           "--seconds", str(plan.node_seconds), "--raw-seconds", str(plan.node_raw_seconds),
           "--threads", str(plan.node_threads), "--json", str(out)]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, timeout=max(5.0, timeout_s - 5))
    if proc.returncode != 0 or not out.is_file():
        return {"error": f"bench_node.py exited with {proc.returncode}", "command": " ".join(cmd[1:])}
    report = json.loads(out.read_text())
    return {"command": " ".join(cmd[1:]), **report}


def stage_train(ctx: StageContext) -> dict:
    """A short AMP training run: steps/s and whether the loss fell.

    Validation is off so that each epoch's time is training alone; the first epoch
    (cuDNN autotuning, worker start-up) is left out of the rate when there are more.
    Synthetic scenes, plus CamVid when a copy travelled with the checkout (``shared/data``
    inside it; ``../shared/data`` beside it does not travel). The dry run stays synthetic,
    so the test suite does not depend on the data.
    """
    plan, scratch, timeout_s = ctx.plan, ctx.scratch, ctx.timeout_s
    out = scratch / "train"
    model = plan.train_model
    cmd = [sys.executable, "-m", "roadseg_ros.tools.train", "--synthetic", str(plan.train_scenes),
           "--val-split", "none", "--input-size", _size_text(plan.train_size),
           "--batch-size", str(plan.train_batch), "--epochs", str(plan.train_epochs),
           "--max-steps-per-epoch", str(plan.train_steps_per_epoch), "--workers", str(plan.train_workers),
           "--amp", "--device", plan.device, "--output", str(out), "--overlays", "0",
           "--time-limit", f"{max(0.2, (timeout_s - 25) / 60):.2f}"]
    if model:
        cmd += ["--model", model]
    camvid = [p for p in (ROOT / "shared" / "data" / "camvid", ROOT.parent / "shared" / "data" / "camvid")
              if (p / "train").is_dir()]
    if camvid and not plan.dry_run:
        cmd += ["--data", f"camvid={camvid[0]}"]
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, TQDM_DISABLE="1")
    proc = subprocess.run(cmd, cwd=ROOT, timeout=max(5.0, timeout_s - 5), env=env)
    metrics = out / "metrics.jsonl"
    history = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    result: dict[str, Any] = {"command": " ".join(cmd[1:]), "exit_code": proc.returncode, "epochs": history}
    if proc.returncode != 0 or not history:
        result["error"] = f"roadseg-train exited with {proc.returncode} after {len(history)} epoch(s)"
        return result
    steps = [int(h["step"]) - (int(history[i - 1]["step"]) if i else 0) for i, h in enumerate(history)]
    timed = list(range(1, len(history))) or [0]
    result["steps"] = sum(steps)
    result["steps_per_s"] = sum(steps[i] for i in timed) / sum(float(history[i]["time_s"]) for i in timed)
    result["images_per_s"] = result["steps_per_s"] * plan.train_batch
    result["first_step_loss"] = float(history[0]["first_step_loss"])
    result["last_epoch_loss"] = float(history[-1]["train_loss"])
    result["loss_fell"] = result["last_epoch_loss"] < result["first_step_loss"]
    if not result["loss_fell"]:
        result["error"] = (f"the loss did not fall: first step {result['first_step_loss']:.4f}, "
                           f"last epoch mean {result['last_epoch_loss']:.4f}")
    return result


def _median_ms(fn: Callable[[], object], iters: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def stage_export(ctx: StageContext) -> dict:
    """TorchScript and ONNX of the checkpoint against the eager network on the check's device.

    ``roadseg-export`` itself checks on the CPU; this is the question a GPU deployment
    (LibTorch, onnxruntime-gpu, TensorRT, Isaac ROS) asks: does the exported graph give
    the eager network's logits *on the GPU*, in fp32 and in fp16, and how fast is it.
    fp32 comparisons run with TF32 off, so that they compare the graphs, not TF32 rounding.
    """
    plan, scratch = ctx.plan, ctx.scratch
    import numpy as np
    import torch

    from roadseg_ros.checkpoint import load_checkpoint, model_from_checkpoint
    from roadseg_ros.tools import export as export_tool

    device = torch.device(plan.device)
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    weights = _checkpoint_for(ctx, plan.export_size)
    ckpt = load_checkpoint(weights)
    width, height = plan.export_size
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    result: dict[str, Any] = {"weights": str(weights), "arch": ckpt.arch,
                              "size": _size_text(plan.export_size),
                              "device": str(device), "checks": {}, "latency_ms": {}}
    checks, latency = result["checks"], result["latency_ms"]
    try:
        eager = export_tool.LogitsOnly(model_from_checkpoint(ckpt, device=device)).eval()
        x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.inference_mode():
            reference = eager(x)
            cpu_model = export_tool.LogitsOnly(model_from_checkpoint(ckpt, device="cpu")).eval()
            checks["eager_device_vs_cpu"] = export_tool.compare(
                cpu_model(x.cpu()), reference, export_tool.DEFAULT_ATOL, export_tool.DEFAULT_RTOL)
            latency["eager_fp32"] = _median_ms(lambda: eager(x), plan.export_timing_iters, sync)

        # TorchScript, traced on the device, saved, loaded back onto the device.
        # (torch marks TorchScript deprecated; it is still what LibTorch C++ consumers load.)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        ts_path = scratch / "model.torchscript.pt"
        with torch.inference_mode():
            traced = torch.jit.trace(eager, x, check_trace=False)
        torch.jit.save(traced, str(ts_path))
        loaded = torch.jit.load(str(ts_path), map_location=device).eval()
        with torch.inference_mode():
            checks["torchscript_fp32"] = export_tool.compare(reference, loaded(x), export_tool.DEFAULT_ATOL,
                                                             export_tool.DEFAULT_RTOL)
            latency["torchscript_fp32"] = _median_ms(lambda: loaded(x), plan.export_timing_iters, sync)

        # Half precision: fp16 where the device has it (CUDA), bf16 on the CPU (dry run).
        half = torch.float16 if cuda else torch.bfloat16
        half_name = "fp16" if cuda else "bf16"
        eager_half = export_tool.LogitsOnly(model_from_checkpoint(ckpt, device=device)).eval().to(half)
        with torch.inference_mode():
            traced_half = torch.jit.trace(eager_half, x.to(half), check_trace=False)
            out_half = traced_half(x.to(half)).float()
            agreement = float((out_half.argmax(1) == reference.argmax(1)).float().mean())
            checks[f"torchscript_{half_name}"] = {
                "ok": agreement >= 0.99, "mask_agreement": agreement,
                "max_abs_diff": float((out_half - reference).abs().max()),
                "rule": "arg-max agreement with the fp32 eager network >= 99%"}
            latency[f"eager_{half_name}"] = _median_ms(lambda: eager_half(x.to(half)),
                                                       plan.export_timing_iters, sync)
            latency[f"torchscript_{half_name}"] = _median_ms(lambda: traced_half(x.to(half)),
                                                             plan.export_timing_iters, sync)

        # ONNX: roadseg-export's own export and CPU check, then every onnxruntime provider present.
        sidecar = export_tool.export_checkpoint(ckpt, scratch / "onnx", "model", formats=("onnx",),
                                                input_size=plan.export_size, source=str(weights))
        entry = sidecar["exports"]["onnx"]
        checks["onnx_export_cpu_parity"] = dict(entry["parity"], dynamic_shapes=entry["dynamic_shapes"])
        import onnxruntime as ort

        providers = ort.get_available_providers()
        result["onnxruntime"] = {"version": ort.__version__, "providers": providers}
        x_np = x.cpu().numpy()
        for provider in providers:
            if provider not in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"):
                continue
            name = provider.replace("ExecutionProvider", "").lower()
            try:
                session = ort.InferenceSession(str(scratch / "onnx" / "model.onnx"), providers=[provider])
                out = session.run(["logits"], {"input": x_np})[0]
                checks[f"onnxruntime_{name}"] = export_tool.compare(reference, np.asarray(out),
                                                                    export_tool.DEFAULT_ATOL,
                                                                    export_tool.DEFAULT_RTOL)
                latency[f"onnxruntime_{name}"] = _median_ms(
                    lambda s=session: s.run(["logits"], {"input": x_np}), plan.export_timing_iters,
                    lambda: None)
            except Exception as exc:  # e.g. a provider listed but without its CUDA libraries
                checks[f"onnxruntime_{name}"] = {"ok": False, "error": _first_line(exc)}
        if cuda and not ({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(providers)):
            result["note"] = ("no onnxruntime GPU provider here (onnxruntime-gpu is not installed): ONNX was "
                              "checked on the CPU provider only")
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    bad = [name for name, c in checks.items() if not c.get("ok")]
    if bad:
        result["error"] = f"parity failed: {', '.join(bad)}"
    return result


# ------------------------------------------------------------------------------- runtimes stage
def runtime_variants(provider: str, cache_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """What to measure on ``provider``: (precision it computes in, dtype of the graph it gets, options).

    TensorRT takes the fp32 graph and builds fp16 engines from it, caching engines and layer
    timings in ``cache_dir`` so that the second shape builds faster. CUDA runs the fp32 graph
    with TF32 off, so that its parity is fp32's (roadseg-export's tolerance), and the graph
    exported from the fp16 module, which is what has to beat torch fp16. The CPU provider
    (the dry run's stand-in) runs fp32. A provider not named here is not measured. Flags are
    "1" / "0" strings: onnxruntime parses option values from strings, and a C++ stream reads
    a bool as 0 or 1 only (Python's ``True`` would arrive as "True").
    """
    if provider == "TensorrtExecutionProvider":
        return [("fp16", "fp32", {"trt_fp16_enable": "1", "trt_engine_cache_enable": "1",
                                  "trt_engine_cache_path": str(cache_dir), "trt_timing_cache_enable": "1",
                                  "trt_timing_cache_path": str(cache_dir)})]
    if provider == "CUDAExecutionProvider":
        return [("fp32", "fp32", {"use_tf32": "0"}), ("fp16", "fp16", {})]
    if provider == "CPUExecutionProvider":
        return [("fp32", "fp32", {})]
    return []


def provider_label(provider: str) -> str:
    """``TensorrtExecutionProvider`` -> ``tensorrt``: the runtime's name in rows and tables."""
    return provider.removesuffix("ExecutionProvider").lower()


def open_session(path: Path, provider: str, options: dict[str, Any], *, threads: int | None = None) -> Any:
    """An onnxruntime session that really runs on ``provider``, else a RuntimeError saying what it got.

    onnxruntime does not fail when a provider cannot start (CUDA, cuDNN or TensorRT libraries
    missing, an option it does not take): it prints or warns and runs the graph on the next
    provider, down to the CPU. A latency measured so would be the CPU's under the GPU
    provider's name, so the provider in use is checked, and what onnxruntime said is kept.
    """
    import contextlib
    import io

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: TensorRT's engine-build chatter would bury the stage's log
    if threads:
        so.intra_op_num_threads = threads
    providers: list[tuple[str, dict[str, Any]]] = [(provider, options)]
    if provider == "TensorrtExecutionProvider" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.append(("CUDAExecutionProvider", {}))  # nodes TensorRT does not take: CUDA, not the CPU
    said = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(said):
        warnings.simplefilter("always")
        session = ort.InferenceSession(str(path), so, providers=providers)
    used = session.get_providers()
    if not used or used[0] != provider:
        notes = [line.strip() for line in said.getvalue().splitlines() if "EP Error" in line]
        notes += [str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()]
        raise RuntimeError(f"onnxruntime did not start {provider}, it runs on {', '.join(used) or 'nothing'}"
                           + (f" ({'; '.join(notes)[:240]})" if notes else ""))
    return session


def bound_run(session: Any, x: Any, out: Any) -> Callable[[], None]:
    """``session`` reading torch tensor ``x`` and writing torch tensor ``out`` in place, on their device.

    Why IO binding: torch's network-only time takes a batch already on the device and leaves
    the logits there; onnxruntime fed numpy arrays would add a copy to the device and one back
    to its time, which would compare copies rather than networks. Bound, it uses the tensors'
    own memory, on the GPU as on the CPU (so the dry run runs this same code).
    """
    import numpy as np
    import torch

    dtypes = {torch.float32: np.float32, torch.float16: np.float16}
    binding = session.io_binding()
    for bind, name, t in ((binding.bind_input, session.get_inputs()[0].name, x),
                          (binding.bind_output, session.get_outputs()[0].name, out)):
        if not t.is_contiguous():
            raise ValueError(f"{name}: an IO-bound tensor must be contiguous (NCHW)")
        bind(name, "cuda" if t.is_cuda else "cpu", t.device.index or 0, dtypes[t.dtype], list(t.shape),
             t.data_ptr())
    return lambda: session.run_with_iobinding(binding)


def fp32_parity(reference: Any, candidate: Any) -> dict:
    """An fp32 runtime against torch fp32 logits: roadseg-export's tolerance (``compare``)."""
    from roadseg_ros.tools import export as export_tool

    atol, rtol = export_tool.DEFAULT_ATOL, export_tool.DEFAULT_RTOL
    return {**export_tool.compare(reference, candidate, atol, rtol),
            "rule": f"max |diff| <= {atol:g} + {rtol:g} x max |logit| (roadseg-export)"}


def half_parity(reference: Any, candidate: Any) -> dict:
    """A reduced-precision network against torch fp32 logits: arg-max agreement, the issue's rule."""
    ref, cand = reference.detach().float().cpu(), candidate.detach().float().cpu()
    agreement = float((cand.argmax(1) == ref.argmax(1)).float().mean())
    return {"ok": agreement >= HALF_AGREEMENT, "mask_agreement": agreement,
            "max_abs_diff": float((cand - ref).abs().max()),
            "rule": f"arg-max agreement with torch fp32 >= {100 * HALF_AGREEMENT:.1f}%"}


def stage_runtimes(ctx: StageContext) -> dict:
    """ONNX Runtime's GPU providers against torch fp16, network only, at the node's network sizes.

    Why: on CUDA, ``backend=auto`` keeps torch fp16 and no other runtime is offered "until
    the GPU check has measured something better"; this is that measurement. The bundled
    checkpoint (the dry run: the random tiny one) goes through a fused fp32 ``Segmenter``,
    as the node builds it, and its logits graph is exported per static shape, at the size
    ``Segmenter.network_size`` gives each camera with ``keep_aspect`` (what the node runs).
    Each provider runs on the same synthetic street scenes as torch, in the same process
    and minute, against torch fp16 (bf16 on the CPU) for speed and torch fp32 (TF32 off) for
    parity. A provider onnxruntime lacks, or one that will not start, is one line; with no
    GPU provider at all (a CPU-only onnxruntime) the stage still measures torch and says
    "not available". Rows go to a JSON-lines file as they end, most important first (batch 1
    of every size), so a time box that runs out keeps what was measured.
    """
    plan, scratch, timeout_s = ctx.plan, ctx.scratch, ctx.timeout_s
    import numpy as np
    import torch  # before onnxruntime: its CUDA provider then finds torch's CUDA / cuDNN libraries loaded

    from roadseg_ros.backends import export_onnx_graph
    from roadseg_ros.data.synthetic import render_scene
    from roadseg_ros.inference import Segmenter

    deadline = time.monotonic() + max(5.0, timeout_s - 10.0)
    cuda = torch.device(plan.device).type == "cuda"
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)
    if plan.seg_threads:  # one thread on a shared CPU (dry run), as in the segmenter stage
        torch.set_num_threads(plan.seg_threads)
    half_name = "fp16" if cuda else "bf16"
    try:
        import onnxruntime as ort

        ort_version, available = ort.__version__, list(ort.get_available_providers())
    except Exception as exc:  # a broken install is recorded, and torch is still measured
        ort_version, available = f"unavailable ({_first_line(exc)})", []
    weights = _checkpoint_for(ctx, plan.node_size)
    rows_file = scratch / ROW_FILES["runtimes"]
    graphs_dir = scratch / "runtimes_onnx"
    trt_cache = scratch / "runtimes_trt_cache"
    graphs_dir.mkdir(exist_ok=True)
    trt_cache.mkdir(exist_ok=True)

    providers: dict[str, str] = {}
    wanted: list[str] = []
    for provider in plan.runtimes_providers:
        if provider not in available:
            providers[provider] = (f"not available: onnxruntime {ort_version} has "
                                   f"{', '.join(available) or 'no providers'}")
        elif not runtime_variants(provider, trt_cache):
            providers[provider] = "not measured: this check has no settings for it"
        else:
            wanted.append(provider)
    for provider, why in providers.items():
        print(f"[runtimes] {provider}: {why}", flush=True)

    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    result: dict[str, Any] = {"weights": str(weights), "device": plan.device,
                              "baseline": f"torch {half_name}", "onnxruntime": ort_version,
                              "available_providers": available,
                              "warmup": plan.runtimes_warmup, "iters": plan.runtimes_iters}
    not_run: list[str] = []
    failed: dict[tuple[str, str], str] = {}    # (provider, precision) -> why its first session failed
    measured: dict[tuple[str, str], int] = {}
    bad_parity: list[str] = []
    exports: dict[str, float] = {}

    def emit(row: dict) -> None:
        text = (f"error: {row['error']}" if "error" in row else
                f"{row['median_ms']:.3f} ms, {row['fps']:.1f} frames/s"
                + (f", {row['vs_baseline']:.2f}x {result['baseline']}" if row.get("vs_baseline") else "")
                + (f", parity {'ok' if row['parity']['ok'] else 'FAILED'}" if row.get("parity") else ""))
        print(f"[runtimes] {row['size']} b{row['batch']} {row['runtime']} {row['precision']}: {text}",
              flush=True)
        with rows_file.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def timed(fn: Callable[[], object]) -> float:
        for _ in range(plan.runtimes_warmup):
            fn()
        sync()
        return _median_ms(fn, plan.runtimes_iters, sync)

    def graph(model: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype, tag: str) -> Path:
        """The static ONNX graph of ``model`` at ``shape`` (exported once per shape and dtype)."""
        path = graphs_dir / f"{tag}-{'x'.join(map(str, shape))}.onnx"
        if not path.is_file():
            t0 = time.perf_counter()
            device = next(model.parameters()).device
            export_onnx_graph(model, torch.zeros(shape, dtype=dtype, device=device), path, dynamic=False)
            exports[path.stem] = round(time.perf_counter() - t0, 2)
        return path

    def measure_provider(provider: str, precision: str, graph_dtype: str, options: dict[str, Any],
                         x32: torch.Tensor, reference: torch.Tensor) -> dict:
        """One provider at one shape: its session on the static graph, parity, then its latency."""
        batch, _, h, w = x32.shape
        if graph_dtype == "fp16":
            path = graph(seg_half.model, (batch, 3, h, w), torch.float16, "fp16")
            x_in = x32.to(torch.float16).contiguous()
        else:
            path = graph(seg32.model, (batch, 3, h, w), torch.float32, "fp32")
            x_in = x32.contiguous()
        session = open_session(path, provider, options, threads=plan.seg_threads)
        out = torch.empty(reference.shape, dtype=x_in.dtype, device=x_in.device)
        run = bound_run(session, x_in, out)
        run()
        sync()
        parity = fp32_parity(reference, out) if precision == "fp32" else half_parity(reference, out)
        ms = timed(run)
        return {"median_ms": ms, "fps": 1e3 * batch / ms, "parity": parity}

    try:
        seg32 = Segmenter(weights, device=plan.device, precision="fp32", backend="torch", keep_aspect=True,
                          warmup=False)
        seg_half = Segmenter(weights, device=plan.device, precision=half_name, backend="torch",
                             keep_aspect=True, warmup=False)
        result["arch"] = seg32.model_name
        sizes: dict[tuple[int, int], list[str]] = {}
        for camera in plan.runtimes_cameras:
            sizes.setdefault(seg32.network_size(*camera), []).append(_size_text(camera))
        result["shapes"] = [{"size": _size_text(s), "cameras": c} for s, c in sizes.items()]
        # Real-looking frames, so that arg-max agreement is measured where the classes are, not on noise.
        scenes = {size: np.stack([render_scene(seed, *map(int, cameras[0].split("x")))[0]
                                  for seed in range(max(plan.runtimes_batches))])
                  for size, cameras in sizes.items()}
        for batch in plan.runtimes_batches:
            for (w, h), cameras in sizes.items():
                base = {"size": f"{w}x{h}", "cameras": cameras, "batch": batch}
                if time.monotonic() > deadline:
                    not_run.append(f"{w}x{h} b{batch} (all runtimes)")
                    continue
                x32 = torch.from_numpy(seg32.network_input(scenes[(w, h)][:batch])).to(plan.device)
                with torch.inference_mode():
                    x32 = x32.contiguous(memory_format=torch.channels_last)
                    reference = seg32._network(x32).float()
                    x_half = x32.to(seg_half.dtype).contiguous(memory_format=torch.channels_last)
                    out_half = seg_half._network(x_half).float()
                    ms32 = timed(functools.partial(seg32._network, x32))
                    ms_half = timed(functools.partial(seg_half._network, x_half))
                emit({**base, "runtime": "torch", "precision": "fp32", "median_ms": ms32,
                      "fps": 1e3 * batch / ms32, "vs_baseline": ms_half / ms32, "note": "parity reference"})
                emit({**base, "runtime": "torch", "precision": half_name, "median_ms": ms_half,
                      "fps": 1e3 * batch / ms_half, "parity": half_parity(reference, out_half)})
                for provider in wanted:
                    for precision, graph_dtype, options in runtime_variants(provider, trt_cache):
                        label = f"{w}x{h} b{batch} {provider_label(provider)} {precision}"
                        if (provider, precision) in failed:  # the same libraries would fail again
                            continue
                        if time.monotonic() > deadline:
                            not_run.append(label)
                            continue
                        row = {**base, "runtime": provider_label(provider), "provider": provider,
                               "precision": precision}
                        try:
                            row.update(measure_provider(provider, precision, graph_dtype, options, x32,
                                                        reference))
                        except Exception as exc:  # a provider that will not start or run: one line, go on
                            failed[(provider, precision)] = row["error"] = _first_line(exc)
                            emit(row)
                            continue
                        measured[(provider, precision)] = measured.get((provider, precision), 0) + 1
                        row["vs_baseline"] = ms_half / row["median_ms"]
                        if not row["parity"]["ok"]:
                            bad_parity.append(label)
                        emit(row)
                if cuda:
                    torch.cuda.empty_cache()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32

    for provider in wanted:
        done = [p for (prov, p) in measured if prov == provider]
        broken = [f"{p}: {why}" for (prov, p), why in failed.items() if prov == provider]
        providers[provider] = ("measured " + ", ".join(done) if done else "failed") + (
            f" ({'; '.join(broken)})" if broken else "")
    providers = {p: providers[p] for p in plan.runtimes_providers}  # in the order asked for
    gpu_measured = any(prov in GPU_PROVIDERS for prov, _ in measured)
    result.update(providers=providers, gpu_provider=gpu_measured, not_run=not_run, exports=exports)
    notes = []
    if not gpu_measured:
        # "tensorrt: not available, cuda: failed": the full lines are in ``providers``
        why = ", ".join(f"{provider_label(p)}: {w.split(':')[0].split(' (')[0]}" for p, w in providers.items()
                        if p in GPU_PROVIDERS)
        notes.append(f"not available: onnxruntime {ort_version} ran no GPU provider"
                     + (f" ({why})" if why else " (none was asked for)")
                     + f"; torch {half_name} was measured")
    if not_run:
        notes.append(f"{len(not_run)} configuration(s) not measured: the stage's time box ran out")
    if notes:
        result["note"] = "; ".join(notes)[:600]
    if bad_parity:
        result["error"] = f"parity failed: {', '.join(bad_parity)}"
    return result


STAGE_FUNCTIONS: dict[str, Callable[[StageContext], dict]] = {
    "environment": stage_environment, "cuda_tests": stage_cuda_tests, "segmenter": stage_segmenter,
    "node": stage_node, "train": stage_train, "export": stage_export, "runtimes": stage_runtimes,
}


def run_child(stage: str, config: Path, result_path: Path) -> int:
    """Child-process entry: run one stage, write its result (or its error) as JSON."""
    spec = json.loads(config.read_text())
    plan = Plan(**{k: (tuple(v) if k.endswith("_size") else v) for k, v in spec["plan"].items()})
    plan.seg_sizes = [tuple(s) for s in plan.seg_sizes]
    plan.runtimes_cameras = [tuple(s) for s in plan.runtimes_cameras]
    try:
        ctx = StageContext(plan, Path(spec["scratch"]), float(spec["timeout_s"]), spec.get("weights"))
        result = STAGE_FUNCTIONS[stage](ctx)
    except BaseException as exc:  # recorded for the report; the parent decides the exit status
        import traceback

        traceback.print_exc()
        result = {"error": _first_line(exc)}
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(result_path)
    return 0 if "error" not in result else 1


# =============================================================================== orchestration (parent)
def _kill_group(proc: subprocess.Popen) -> None:
    """Stop a stage and everything it started (node processes, data-loader workers)."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_json(path: Path) -> dict | None:
    """A stage's result file, or None when it is missing or was cut off mid-write."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_json_lines(path: Path) -> list[dict]:
    """Complete JSON lines of ``path``; a last line cut off by a kill is dropped."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
    return rows


def run_stage(stage: str, plan: Plan, scratch: Path, timeout_s: float, log: IO[str],
              weights: str | None = None) -> dict:
    """Run one stage in a child process group with a hard time box; never raises."""
    config = scratch / f"{stage}.config.json"
    result_path = scratch / f"{stage}.result.json"
    config.write_text(json.dumps({"plan": dataclasses.asdict(plan), "scratch": str(scratch),
                                  "timeout_s": timeout_s, "weights": weights}))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--config", str(config),
           "--result", str(result_path)]
    log.write(f"\n===== stage {stage} (time box {timeout_s:.0f} s), started "
              f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} =====\n")
    log.flush()
    t0 = time.monotonic()
    status = "ok"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        status = "timeout"
    seconds = time.monotonic() - t0
    result = _read_json(result_path) or {}
    if stage in ROW_FILES:  # rows as they were measured, also those before a time-out
        result["rows"] = _read_json_lines(scratch / ROW_FILES[stage])
    entry: dict[str, Any] = {"status": status, "seconds": round(seconds, 1), "timeout_s": round(timeout_s, 1),
                             "exit_code": proc.returncode, "result": result}
    if status == "timeout":
        entry["error"] = f"stopped after its {timeout_s:.0f} s time box"
    elif result.get("error"):
        entry["status"], entry["error"] = "failed", result["error"]
    elif proc.returncode != 0:
        entry["status"], entry["error"] = "failed", f"stage process exited with {proc.returncode}"
    elif _read_json(result_path) is None:
        entry["status"], entry["error"] = "failed", "the stage wrote no result"
    return entry


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(rows: list[dict], model: str, size: str, batch: int, precision: str) -> dict | None:
    for r in rows:
        key = (r.get("model"), r.get("size"), r.get("batch"), r.get("precision"))
        if key == (model, size, batch, precision) and "error" not in r:
            return r
    return None


def evaluate_targets(report: dict, plan: Plan) -> list[dict]:
    """The issue's speed targets against what was measured (judged on the GPU run only)."""
    stages = report["stages"]
    rows = stages.get("segmenter", {}).get("result", {}).get("rows", [])
    env = stages.get("environment", {}).get("result", {})
    default = env.get("default_model") or next(iter(stages.get("segmenter", {}).get("result", {})
                                                    .get("models", [])), None)
    key = _size_text(plan.seg_key_size)
    half = "fp16" if "fp16" in plan.seg_precisions else plan.seg_precisions[-1]
    targets: list[dict] = []

    def add(name: str, value: float | None, goal: float, higher: bool, unit: str) -> None:
        met = None if value is None else (value >= goal if higher else value <= goal)
        targets.append({"target": name, "value": value, "goal": goal, "unit": unit,
                        "met": None if plan.dry_run else met})

    r = _row(rows, default, key, 1, half) if default else None
    add(f"default model ({default}) {key} {half} frames/s >= 300", r["predict"]["fps"] if r else None,
        300, True, "frames/s")
    psp = [m for m in {row.get("model") for row in rows} if m and "psp" in m]
    for model in sorted(psp):
        r = _row(rows, model, key, 1, half)
        add(f"{model} {key} {half} frames/s >= 100", r["predict"]["fps"] if r else None, 100, True,
            "frames/s")
    r = _row(rows, default, key, 1, half) if default else None
    add(f"default model predict overhead < 10% of network ({key} {half})",
        100.0 * r["overhead_ms"] / r["network"]["median_ms"] if r and r["network"]["median_ms"] > 0 else None,
        10, False, "%")
    summary = stages.get("node", {}).get("result", {}).get("summary")
    add("node throughput >= 2x baseline node", summary["node_vs_baseline_throughput"] if summary else None,
        2.0, True, "x")
    add("node median latency <= 1.5x raw predict", summary["node_median_latency_vs_raw"] if summary else None,
        1.5, False, "x")
    return targets


def _runtime_name(row: dict) -> str:
    return f"{row['runtime']} {row['precision']}"


def runtimes_figures(result: dict) -> str:
    """The runtimes stage's summary line: the first shape measured (batch 1), every runtime on it.

    Without a GPU provider it starts with "not available", so that a CPU-only onnxruntime on
    the lent machine reads as what it is, not as runtimes that lost to torch.
    """
    rows = result.get("rows", [])
    good = [x for x in rows if "error" not in x]
    head = "" if result.get("gpu_provider") else "GPU providers not available; "
    if not good:
        return (head + (result.get("note") or "nothing measured"))[:110]
    first = good[0]
    key = [x for x in good if (x["size"], x["batch"]) == (first["size"], first["batch"])
           and (x["runtime"], x["precision"]) != ("torch", "fp32")]
    parts = [f"{_runtime_name(x)} {x['median_ms']:.2f} ms" + ("" if x["runtime"] == "torch" else
                                                             f" {x['vs_baseline']:.2f}x") for x in key]
    failed = len(rows) - len(good)
    return (head + f"{first['size']} b{first['batch']}: " + ", ".join(parts)
            + (f"; {failed} failed" if failed else ""))[:110]


def runtimes_markdown(result: dict) -> list[str]:
    """The runtimes stage as a README table: every row, then what each provider came to."""
    baseline = result.get("baseline", "torch fp16")
    lines = [f"## Runtimes ({result.get('device')}, network only)", "",
             f"{result.get('arch')} ({Path(str(result.get('weights'))).name}): the normalised batch on the "
             f"device to logits, median of {result.get('iters')} after {result.get('warmup')} warm-ups; "
             f"onnxruntime {result.get('onnxruntime')}; parity against torch fp32 (TF32 off) on synthetic "
             f"street scenes.", "",
             f"| network size (cameras) | batch | runtime | median ms | frames/s | vs {baseline} | "
             f"max abs diff vs fp32 | arg-max agreement | parity |", "|---|---|---|---|---|---|---|---|---|"]
    for x in result.get("rows", []):
        where = f"| {x['size']} ({', '.join(x['cameras'])}) | {x['batch']} | {_runtime_name(x)} |"
        if "error" in x:
            lines.append(f"{where} failed: {x['error'][:160]} | | | | | |")
            continue
        parity = x.get("parity") or {}
        verdict = "reference" if not parity else ("ok" if parity.get("ok") else "FAILED")
        agreement = f"{100 * parity['mask_agreement']:.3f}%" if "mask_agreement" in parity else "-"
        vs = f"{x['vs_baseline']:.2f}x" if x.get("vs_baseline") else "baseline"
        lines.append(f"{where} {x['median_ms']:.3f} | {x['fps']:.1f} | {vs} | "
                     f"{_fmt(parity.get('max_abs_diff'), 5)} | {agreement} | {verdict} |")
    providers = result.get("providers", {})
    lines += ["", "Providers: " + "; ".join(f"{p}: {why}" for p, why in providers.items()), ""]
    if result.get("note"):
        lines += [result["note"], ""]
    return lines


def stage_figures(name: str, entry: dict) -> str:
    """One line of key figures per stage for the summary table."""
    r = entry.get("result", {})
    if entry.get("error") and name != "segmenter":
        return entry["error"][:110]
    if name == "environment":
        gpu = r.get("gpu") or "no GPU"
        return (f"{gpu}, torch {r.get('torch')} (CUDA {r.get('torch_cuda')}), "
                f"bf16 {r.get('bf16_supported', '-')}, "
                f"ROS msgs {'ok' if r.get('roadseg_msgs') == 'built' else 'MISSING'}, "
                f"ort {r.get('onnxruntime_providers')}")
    if name == "cuda_tests":
        return (f"{r.get('passed')} passed, {r.get('failed')} failed, {r.get('errors')} errors, "
                f"{r.get('skipped')} skipped")
    if name == "segmenter":
        rows = r.get("rows", [])
        bad = sum(1 for x in rows if "error" in x)
        text = f"{len(rows) - bad}/{r.get('planned_rows', '?')} rows measured, {bad} errors"
        return text + (f" ({entry['error'][:60]})" if entry.get("error") else "")
    if name == "node":
        s, res = r.get("summary", {}), r.get("results", {})
        return (f"node {_fmt(res.get('node', {}).get('open_loop', {}).get('fps'))} f/s = "
                f"{_fmt(100 * s.get('node_vs_raw_throughput', 0), 0)}% raw, "
                f"{_fmt(s.get('node_vs_baseline_throughput'), 2)}x baseline, "
                f"latency {_fmt(s.get('node_median_latency_vs_raw'), 2)}x raw")
    if name == "train":
        return (f"{r.get('steps')} steps, {_fmt(r.get('steps_per_s'), 2)} steps/s, loss "
                f"{_fmt(r.get('first_step_loss'), 3)} -> {_fmt(r.get('last_epoch_loss'), 3)}")
    if name == "runtimes":
        return runtimes_figures(r)
    if name == "export":
        checks = r.get("checks", {})
        return ", ".join(f"{k} {'ok' if v.get('ok') else 'FAILED'}" for k, v in checks.items())[:110]
    return ""


def summary_table(report: dict) -> str:
    meta = report["meta"]
    if not meta.get("complete", True):
        verdict = f"INCOMPLETE: cut short after {len(report['stages'])} stage(s)"
    else:
        verdict = "all stages ok" if report["ok"] else "SOME STAGES FAILED"
    lines = [f"gpu_check {'DRY RUN (cpu)' if meta['dry_run'] else meta['device']}: {meta['wall_s']:.0f} s, "
             f"{verdict}",
             f"{'stage':12s} {'status':8s} {'seconds':>7s}  figures"]
    for name in STAGES:
        entry = report["stages"].get(name)
        if entry is None:
            continue
        lines.append(f"{name:12s} {entry['status']:8s} {entry['seconds']:7.1f}  {stage_figures(name, entry)}")
    lines.append("targets" + (" (dry run: shown, not judged)" if meta["dry_run"] else "") + ":")
    for t in report["targets"]:
        verdict = {True: "met", False: "MISSED", None: "-"}[t["met"]]
        lines.append(f"  {t['target']:62s} {_fmt(t['value'], 2):>9s} {t['unit']:8s} {verdict}")
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    """Tables in the README's own formats, so figures can be pasted as they come."""
    meta = report["meta"]
    env = report["stages"].get("environment", {}).get("result", {})
    parts = [f"# gpu_check {meta['date']}", "",
             f"Machine: {env.get('gpu', 'no GPU')} ({env.get('nvidia_smi', '')}), "
             f"{env.get('cpu_count')} CPUs; "
             f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}); "
             f"Python {env.get('python')}; dry run: {meta['dry_run']}; wall time {meta['wall_s']:.0f} s.", "",
             "```", summary_table(report), "```", ""]
    seg = report["stages"].get("segmenter", {}).get("result", {})
    if seg.get("rows"):
        bench = _load_bench("bench_segmenter")
        seg_meta = {"machine": env.get("gpu", platform.machine()), "torch": env.get("torch"),
                    "cpu_threads": env.get("cpu_count"),
                    "load_average_at_start": meta["load_average_at_start"],
                    "date": meta["date"], "command": "benchmarks/gpu_check.py (segmenter stage)"}
        parts += ["## Segmenter", "", bench.markdown(seg["rows"], seg_meta)]
    node = report["stages"].get("node", {}).get("result", {})
    if node.get("results"):
        res = node["results"]

        def lat(p: dict) -> str:
            return f"{p['median']:.1f} / {p['p90']:.1f} / {p['p99']:.1f}"
        parts += ["## Node", "", f"`{node.get('command')}`", "",
                  "| | frames/s | closed-loop latency ms (median / p90 / p99) | overloaded latency ms "
                  "(median / p90 / p99) |", "|---|---|---|---|",
                  f"| raw predict | {res['raw']['fps_before_and_after_node_mean']:.1f} | "
                  f"{lat(res['raw']['latency_ms'])} | |"]
        for label in ("node", "baseline"):
            parts.append(f"| {label} | {res[label]['open_loop']['fps']:.1f} | "
                         f"{lat(res[label]['closed_loop']['latency_ms'])} | "
                         f"{lat(res[label]['open_loop']['latency_ms'])} |")
        parts.append("")
    train = report["stages"].get("train", {}).get("result", {})
    if train.get("steps"):
        parts += ["## Training", "", f"`{train['command']}`: {train['steps']} steps, "
                  f"{train['steps_per_s']:.2f} steps/s ({train['images_per_s']:.1f} images/s), loss "
                  f"{train['first_step_loss']:.3f} (first step) -> {train['last_epoch_loss']:.3f} "
                  f"(last epoch mean)", ""]
    runtimes = report["stages"].get("runtimes", {}).get("result", {})
    if runtimes.get("rows"):
        parts += runtimes_markdown(runtimes)
    export = report["stages"].get("export", {}).get("result", {})
    if export.get("checks"):
        parts += ["## Export parity", "", f"{export['arch']} at {export['size']} on {export['device']}", "",
                  "| check | ok | max abs diff | mask agreement | latency ms |", "|---|---|---|---|---|"]
        for name, c in export["checks"].items():
            ms = export["latency_ms"].get(name)
            parts.append(f"| {name} | {c.get('ok')} | {_fmt(c.get('max_abs_diff'), 6)} | "
                         f"{_fmt(c.get('mask_agreement'), 4)} | {_fmt(ms, 2)} |")
        parts.append("")
        parts.append("Latency (ms, batch 1): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in export["latency_ms"].items()))
        parts.append("")
    return "\n".join(parts) + "\n"


def write_report(report: dict, plan: Plan, out_dir: Path, started: float, complete: bool) -> None:
    """Fill in the verdicts and write ``gpu_check.json`` and ``gpu_check.md`` (replaced atomically)."""
    report["meta"]["wall_s"] = round(time.monotonic() - started, 1)
    report["meta"]["complete"] = complete
    report["stages"] = dict(sorted(report["stages"].items(), key=lambda item: STAGES.index(item[0])))
    report["ok"] = complete and all(e["status"] == "ok" for e in report["stages"].values())
    report["targets"] = evaluate_targets(report, plan)
    for name, text in (("gpu_check.json", json.dumps(report, indent=1, default=str) + "\n"),
                       ("gpu_check.md", markdown_report(report))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out_dir / name)


def default_out_dir() -> Path:
    """``$OUT`` on the device machine (what comes back from it), else ``runs/gpu_check``."""
    out = os.environ.get("OUT")
    return Path(out) if out else ROOT / "runs" / "gpu_check"


def parse_timeouts(specs: list[str]) -> dict[str, float]:
    timeouts = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or name not in STAGES:
            raise argparse.ArgumentTypeError(f"--timeout must be STAGE=SECONDS with STAGE in "
                                             f"{', '.join(STAGES)}, got {spec!r}")
        try:
            timeouts[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--timeout {spec!r}: {value!r} is not a number") from None
    return timeouts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same stages on the CPU, tiny (about a minute)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: $OUT, else runs/gpu_check)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                        help="run only these stages (default: all)")
    parser.add_argument("--timeout", action="append", default=[], metavar="STAGE=SECONDS",
                        help="override one stage's time box (repeatable)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all stages together")
    parser.add_argument("--jobs", type=int, default=None,
                        help="stages run at once after the environment stage (default: 1 on the GPU, where "
                             "they would disturb each other's figures; 2 in the dry run, whose figures are "
                             "not judged)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="checkpoint for the node and export stages (default: the bundled one; "
                             "a random tiny_segnet in the dry run)")
    parser.add_argument("--runtime-providers", nargs="+", default=None, metavar="PROVIDER",
                        help="onnxruntime providers the runtimes stage measures (default: "
                             f"{' '.join(GPU_PROVIDERS)}; the dry run adds CPUExecutionProvider)")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        return run_child(args.stage, args.config, args.result)
    try:
        overrides = parse_timeouts(args.timeout)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))

    if args.weights is not None and not args.weights.is_file():
        parser.error(f"--weights {args.weights}: no such file")
    plan = dry_plan() if args.dry_run else gpu_plan()
    plan.timeouts.update(overrides)
    if args.runtime_providers:
        plan.runtimes_providers = list(args.runtime_providers)
    if args.budget:
        plan.budget_s = args.budget
    out_dir = (args.out or default_out_dir()).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + plan.budget_s
    report: dict[str, Any] = {
        "meta": {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "dry_run": plan.dry_run,
                 "device": plan.device, "budget_s": plan.budget_s, "host": platform.node(),
                 "command": " ".join(["gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
                 "load_average_at_start": list(os.getloadavg()), "plan": dataclasses.asdict(plan)},
        "stages": {},
    }
    wanted = [s for s in STAGES if s in args.stages]
    print(f"[gpu_check] {'dry run on the CPU' if plan.dry_run else 'GPU run'}: stages {', '.join(wanted)}; "
          f"budget {plan.budget_s:.0f} s; results in {out_dir}", flush=True)
    log_path = out_dir / "gpu_check.log"
    jobs = args.jobs or (2 if plan.dry_run else 1)
    report["meta"]["jobs"] = jobs
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp, log_path.open("w") as log:
        scratch = Path(tmp)
        lock = threading.Lock()
        state: dict[str, str | None] = {"weights": str(args.weights.resolve()) if args.weights else None,
                                        "no_cuda": None}

        def launch(stage: str, reserve_s: float, stage_log: IO[str]) -> dict:
            timeout = min(plan.timeouts[stage], deadline - time.monotonic() - reserve_s)
            if state["no_cuda"] and stage != "environment":
                return {"status": "skipped", "seconds": 0.0, "timeout_s": timeout, "error": state["no_cuda"],
                        "result": {}}
            if timeout < 5:
                return {"status": "skipped", "seconds": 0.0, "timeout_s": timeout,
                        "error": "no time left in the check's budget", "result": {}}
            with lock:
                print(f"[gpu_check] {stage} (time box {timeout:.0f} s) ...", flush=True)
            return run_stage(stage, plan, scratch, timeout, stage_log, state["weights"])

        def record(stage: str, entry: dict) -> None:
            with lock:
                if stage == "environment":
                    state["weights"] = entry["result"].get("weights") or state["weights"]
                    # only when the stage saw no CUDA; if it crashed, the other stages say what they can
                    if not plan.dry_run and entry["result"].get("cuda_available") is False:
                        state["no_cuda"] = "skipped: CUDA is not available (see the environment stage)"
                report["stages"][stage] = entry
                print(f"[gpu_check] {stage}: {entry['status']} in {entry['seconds']:.1f} s"
                      + (f": {entry['error']}" if entry.get("error") else ""), flush=True)
                # Written after every stage: if the device call is cut short, what was measured comes back.
                write_report(report, plan, out_dir, started, complete=False)

        def in_parallel(stage: str) -> dict:
            """One of ``jobs`` stages at once: its output goes to its own file, appended when it ends."""
            stage_log_path = scratch / f"{stage}.log"
            with stage_log_path.open("w") as stage_log:
                entry = launch(stage, 0.0, stage_log)
            with lock:
                log.write(stage_log_path.read_text())
                log.flush()
            return entry

        rest = list(wanted)
        if rest and rest[0] == "environment":  # it picks the weights the others use: always first, alone
            record("environment", launch("environment", (len(rest) - 1) * MIN_STAGE_S, log))
            rest = rest[1:]
        if jobs <= 1:
            for i, stage in enumerate(rest):
                record(stage, launch(stage, (len(rest) - i - 1) * MIN_STAGE_S, log))
        else:
            # The node stage first: it is the longest, and mostly waits (process start-up, DDS).
            rest.sort(key=lambda stage: stage != "node")
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(in_parallel, stage): stage for stage in rest}
                for future in as_completed(futures):
                    record(futures[future], future.result())
    write_report(report, plan, out_dir, started, complete=True)
    failed = [n for n, e in report["stages"].items() if e["status"] != "ok"]
    if failed:
        print(f"\n[gpu_check] stage output: {out_dir / 'gpu_check.log'}; failed: {', '.join(failed)}")
    print()
    print(summary_table(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
