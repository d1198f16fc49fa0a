"""roadseg_ros.allocator: the tuned glibc malloc really stops the per-frame page faults.

``mallopt`` is process-wide and cannot be undone, so the before/after comparison runs
``benchmarks/bench_allocator.py``'s measurement in fresh child processes.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from roadseg_ros import allocator

ROOT = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the allocator tuning is for glibc on Linux")


@glibc_only
def test_keep_freed_memory_applies_once_and_reports_it() -> None:
    first = allocator.keep_freed_memory()
    assert first, str(first)
    assert "one arena" in first
    assert allocator.keep_freed_memory() is first
    assert allocator.allocator_status() == str(first)


def test_status_is_falsy_with_its_reason() -> None:
    status = allocator.AllocatorStatus("unchanged: not glibc (Darwin)", False)
    assert not status and "not glibc" in status
    assert allocator.AllocatorStatus("applied", True)


def _faults_per_frame(weights: Path, tuned: bool) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_allocator.py"), "--weights", str(weights),
           "--child", "576x160", "576x160", "15", "1" if tuned else "0", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_worker_thread_predict_stops_page_faulting(tmp_path: Path, save_tiny_checkpoint) -> None:
    """In a worker thread (as in the node) glibc's defaults fault the buffers in every frame."""
    weights = save_tiny_checkpoint(tmp_path / "tiny.pt", (576, 160))
    default = _faults_per_frame(weights, tuned=False)
    tuned = _faults_per_frame(weights, tuned=True)
    assert default["allocator"] == "default"
    assert tuned["allocator"].startswith("glibc malloc")
    # Measured: about 2,750 faults per frame by default, under 12 tuned.
    assert default["faults_per_frame"] > 500, default
    assert tuned["faults_per_frame"] < 50, tuned


def test_environment_variable_turns_it_off() -> None:
    code = ("from roadseg_ros.allocator import keep_freed_memory, allocator_status; s = keep_freed_memory(); "
            "print(bool(s), allocator_status())")
    env = dict(os.environ, ROADSEG_KEEP_FREED_MEMORY="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False unchanged: ROADSEG_KEEP_FREED_MEMORY=0"
