"""benchmarks/gpu_check.py: its CPU dry run goes end to end and reports every stage completely.

The GPU check itself runs only when a GPU machine is lent (rarely, for minutes), so a
broken stage would otherwise be found only then, with the device time already spent. The
dry run runs the very same stage code on the CPU with tiny sizes; these tests run it and
check the report it writes, not figures (speed targets are judged on the GPU run only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"
STAGES = ["environment", "cuda_tests", "node", "train", "export", "runtimes", "segmenter"]
GPU_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]

pytestmark = pytest.mark.slow


def run_check(out: Path, *args: str, timeout: float = 480) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}  # results go to --out, never a stray $OUT
    return subprocess.run([sys.executable, str(GPU_CHECK), "--dry-run", "--out", str(out), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def explain(proc: subprocess.CompletedProcess, out: Path) -> str:
    log = out / "gpu_check.log"
    return (f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-2000:]}\n"
            f"log:\n{log.read_text()[-4000:] if log.is_file() else '(none)'}")


def test_dry_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_check(out)
    assert proc.returncode == 0, explain(proc, out)

    # What comes back from the device machine: at most 8 plain files, no sub-folders.
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log", "gpu_check.md"]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["ok"] is True and report["meta"]["dry_run"] is True and report["meta"]["wall_s"] > 0
    stages = report["stages"]
    assert list(stages) == STAGES
    for name, entry in stages.items():
        assert entry["status"] == "ok", (name, entry.get("error"))
        assert 0 < entry["seconds"] <= entry["timeout_s"], (name, entry)

    env = stages["environment"]["result"]
    assert env["torch"] and env["cuda_available"] in (True, False)
    assert env["default_model"] in env["registered_models"]
    # discovered from the registry, default model first (the dry run measures only the first)
    assert env["segmenter_models"] == [env["default_model"]]

    tests = stages["cuda_tests"]["result"]
    assert tests["passed"] > 0 and tests["failed"] == 0 and tests["errors"] == 0, tests

    node = stages["node"]["result"]
    assert set(node["results"]) >= {"raw", "raw_after", "node", "baseline"}
    assert node["results"]["node"]["closed_loop"]["lost"] == 0
    summary = node["summary"]
    assert summary["node_vs_raw_throughput"] > 0 and summary["node_vs_baseline_throughput"] > 0

    train = stages["train"]["result"]
    assert train["steps"] == 9 and len(train["epochs"]) == 3, train
    assert train["steps_per_s"] > 0 and train["loss_fell"] is True, train

    export = stages["export"]["result"]
    assert set(export["checks"]) >= {"eager_device_vs_cpu", "torchscript_fp32", "torchscript_bf16",
                                     "onnx_export_cpu_parity", "onnxruntime_cpu"}, export["checks"]
    assert all(check["ok"] for check in export["checks"].values()), export["checks"]
    assert all(ms > 0 for ms in export["latency_ms"].values()), export["latency_ms"]

    runtimes = stages["runtimes"]["result"]
    check_runtimes_without_gpu(runtimes, with_cpu_provider=True)

    seg = stages["segmenter"]["result"]
    rows = seg["rows"]
    assert seg["not_run"] == [] and len(rows) == seg["planned_rows"] == 2  # 64x48, batch 1 and 2, fp32
    for row in rows:
        assert "error" not in row, row
        assert row["model"] == env["default_model"] and row["size"] == "64x48"
        for part in ("predict", "network", "baseline"):
            assert row[part]["fps"] > 0 and row[part]["iters"] >= 2, (part, row)

    targets = {t["target"]: t for t in report["targets"]}
    # 4 targets, plus the PSPNet one when the measured (default) model is itself a PSP model
    expected = 4 + ("psp" in env["default_model"])
    assert len(targets) == expected and all(t["met"] is None for t in targets.values())  # shown, not judged
    assert all(t["value"] is not None for t in targets.values()), targets

    # The summary table is the last thing printed, one line per stage.
    tail = proc.stdout.strip().splitlines()
    start = max(i for i, line in enumerate(tail) if line.startswith("gpu_check DRY RUN"))
    table = tail[start:]
    assert "all stages ok" in table[0]
    for name in STAGES:
        assert any(line.split()[:2] == [name, "ok"] for line in table), (name, table)
    assert table[-1].strip().startswith("node median latency")
    markdown = (out / "gpu_check.md").read_text()
    for heading in ("## Segmenter", "## Node", "## Training", "## Runtimes", "## Export parity"):
        assert heading in markdown
    runtimes_line = next(line for line in table if line.split()[:2] == ["runtimes", "ok"])
    assert "GPU providers not available" in runtimes_line and "cpu fp32" in runtimes_line, runtimes_line


def check_runtimes_without_gpu(result: dict, with_cpu_provider: bool) -> None:
    """The runtimes stage on a machine whose onnxruntime has no GPU provider (this one).

    Both cameras map to their own network size (the node's keep_aspect sizes of the tiny
    checkpoint), every size and batch has torch fp32 and the half-precision baseline, the
    CPU provider (when asked for) ran through the same IO-bound path the GPU providers use
    and matched torch fp32 within roadseg-export's tolerance, and each GPU provider is one
    "not available" line rather than a crash or a silent CPU run under its name.
    """
    assert result["baseline"] == "torch bf16" and result["gpu_provider"] is False
    assert [s["cameras"] for s in result["shapes"]] == [["1242x375"], ["576x160"]], result["shapes"]
    sizes = [s["size"] for s in result["shapes"]]
    assert len(set(sizes)) == 2 and all(int(s.split("x")[0]) % 32 == 0 for s in sizes), sizes
    for provider in GPU_PROVIDERS:
        assert result["providers"][provider].startswith("not available: onnxruntime"), result["providers"]
    assert result["note"].startswith("not available:"), result["note"]
    rows = result["rows"]
    runtimes = ["torch fp32", "torch bf16"] + (["cpu fp32"] if with_cpu_provider else [])
    expected = [(size, batch, name) for batch in (1, 2) for size in sizes for name in runtimes]
    assert [(r["size"], r["batch"], f"{r['runtime']} {r['precision']}") for r in rows] == expected, rows
    for row in rows:
        assert "error" not in row, row
        assert row["median_ms"] > 0 and row["fps"] == pytest.approx(1e3 * row["batch"] / row["median_ms"])
    for row in (r for r in rows if r["runtime"] == "cpu"):
        parity = row["parity"]
        assert parity["ok"] is True and parity["max_abs_diff"] <= parity["tolerance"], row
        assert parity["mask_agreement"] >= 0.999 and row["vs_baseline"] > 0, row
    if with_cpu_provider:
        assert result["providers"]["CPUExecutionProvider"] == "measured fp32", result["providers"]
        assert sorted(result["exports"]) == sorted(f"fp32-{b}x3x{s.split('x')[1]}x{s.split('x')[0]}"
                                                   for b in (1, 2) for s in sizes), result["exports"]
    else:
        assert result["exports"] == {}, result["exports"]  # no provider to run a graph on: none exported


def test_a_failing_stage_does_not_stop_the_others(tmp_path: Path) -> None:
    """A broken checkpoint fails the export stage; the segmenter stage after it still runs; exit 1."""
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    proc = run_check(out, "--stages", "export", "segmenter", "--weights", str(bad), timeout=240)
    assert proc.returncode == 1, explain(proc, out)
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["ok"] is False
    assert list(report["stages"]) == ["export", "segmenter"]
    export = report["stages"]["export"]
    assert export["status"] == "failed" and "broken.pt" in export["error"], export
    segmenter = report["stages"]["segmenter"]
    assert segmenter["status"] == "ok" and len(segmenter["result"]["rows"]) == 2, segmenter
    assert "SOME STAGES FAILED" in proc.stdout
    assert any(line.split()[:2] == ["export", "failed"] for line in proc.stdout.splitlines())


def test_runtimes_stage_reports_not_available_cleanly(tmp_path: Path) -> None:
    """Only the GPU providers asked for, as on the lent machine whose onnxruntime is CPU-only:
    the stage is ok, measures torch, and says "not available" (status, summary, markdown)."""
    out = tmp_path / "out"
    proc = run_check(out, "--stages", "runtimes", "--runtime-providers", *GPU_PROVIDERS, timeout=180)
    assert proc.returncode == 0, explain(proc, out)
    report = json.loads((out / "gpu_check.json").read_text())
    entry = report["stages"]["runtimes"]
    assert list(report["stages"]) == ["runtimes"] and entry["status"] == "ok", entry
    check_runtimes_without_gpu(entry["result"], with_cpu_provider=False)
    line = next(x for x in proc.stdout.splitlines() if x.split()[:2] == ["runtimes", "ok"])
    assert "GPU providers not available" in line and "torch bf16" in line, line
    markdown = (out / "gpu_check.md").read_text()
    assert "## Runtimes" in markdown and "TensorrtExecutionProvider: not available" in markdown


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    """benchmarks/gpu_check.py as a module (the folder is no package), for its runtime helpers."""
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """A registry model (random tiny_segnet) and its static logits graph, exported as the stage does."""
    import torch

    from roadseg_ros.backends import export_onnx_graph
    from roadseg_ros.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny_segnet", 11).eval()
    path = tmp_path_factory.mktemp("graph") / "tiny.onnx"
    export_onnx_graph(model, torch.zeros(2, 3, 32, 64), path, dynamic=False)
    return model, path


def test_a_provider_onnxruntime_would_swap_for_the_cpu_is_refused(gpu_check: ModuleType,
                                                                  tiny_graph: tuple[object, Path]) -> None:
    """onnxruntime runs a graph on the CPU when the GPU provider asked for cannot start; the check
    must say so rather than time the CPU under the GPU provider's name."""
    import onnxruntime as ort

    _, path = tiny_graph
    for provider in GPU_PROVIDERS:
        if provider in ort.get_available_providers():
            continue  # a machine with onnxruntime-gpu: this provider really starts
        with pytest.raises(RuntimeError, match=f"did not start {provider}, it runs on CPUExecutionProvider"):
            gpu_check.open_session(path, provider, {})
    broken = path.with_name("broken.onnx")
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(Exception, match="(?i)protobuf"):
        gpu_check.open_session(broken, "CPUExecutionProvider", {})
    assert gpu_check.runtime_variants("NoSuchExecutionProvider", path.parent) == []


def test_io_bound_run_gives_the_torch_logits(gpu_check: ModuleType, tiny_graph: tuple[object, Path]) -> None:
    """The IO-bound run the stage times writes the network's logits into the torch tensor it is
    given (here on the CPU; the same code binds CUDA memory on the GPU), and parity judges it."""
    import torch

    from roadseg_ros.models import main_output

    model, path = tiny_graph
    session = gpu_check.open_session(path, "CPUExecutionProvider", {}, threads=1)
    x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(1))
    out = torch.full((2, 11, 32, 64), float("nan"))
    gpu_check.bound_run(session, x, out)()
    with torch.inference_mode():
        reference = main_output(model(x))
    parity = gpu_check.fp32_parity(reference, out)
    assert parity["ok"] is True and parity["max_abs_diff"] < 1e-4, parity
    assert gpu_check.half_parity(reference, out)["mask_agreement"] == 1.0
    # Logits off by more than the tolerance fail the fp32 rule; a swapped class fails arg-max agreement.
    assert gpu_check.fp32_parity(reference, out + 0.01)["ok"] is False
    assert gpu_check.half_parity(reference, out.flip(1))["ok"] is False
    with pytest.raises(ValueError, match="contiguous"):
        gpu_check.bound_run(session, x.contiguous(memory_format=torch.channels_last), out)
