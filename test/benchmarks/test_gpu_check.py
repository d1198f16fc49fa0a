"""benchmarks/gpu_check.py: its CPU dry run goes end to end and reports every stage completely.

The GPU check itself runs only when a GPU machine is lent (rarely, for minutes), so a
broken stage would otherwise be found only then, with the device time already spent. The
dry run runs the very same stage code on the CPU with tiny sizes; these tests run it and
check the report it writes, not figures (speed targets are judged on the GPU run only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"
STAGES = ["environment", "cuda_tests", "node", "train", "export", "segmenter"]

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
    for heading in ("## Segmenter", "## Node", "## Training", "## Export parity"):
        assert heading in markdown


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
