"""benchmarks/bench_node.py still runs end to end (a smoke run: figures are not judged here).

Speed targets live in the benchmark's printed figures, never in tests; this only keeps the
script from rotting: both node processes start, frames go out and masks come back over
real DDS, and the JSON holds every figure the README quotes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_node_smoke_run(tmp_path: Path, save_tiny_checkpoint) -> None:
    weights = save_tiny_checkpoint(tmp_path / "tiny.pt", (128, 96))
    out = tmp_path / "node.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_node.py"), "--weights", str(weights),
           "--size", "128x96", "--frames", "5", "--seconds", "2.5", "--raw-seconds", "0.5", "--threads", "1",
           "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "node throughput =" in proc.stdout
    report = json.loads(out.read_text())
    results = report["results"]
    assert set(results) >= {"raw", "raw_after", "node", "baseline"}
    for label in ("node", "baseline"):
        closed, opened = results[label]["closed_loop"], results[label]["open_loop"]
        assert closed["lost"] == 0 and closed["latency_ms"]["n"] == 5, closed
        assert opened["received"] > 0 and opened["fps"] > 0, opened
    diagnostics = results["node"]["diagnostics"]
    assert int(diagnostics.get("frames_processed", 0)) > 0, diagnostics
    assert report["meta"]["threads"] == 1
    summary = report["summary"]
    assert summary["node_vs_raw_throughput"] > 0 and summary["node_vs_baseline_throughput"] > 0


def test_raw_predict_node_and_baseline_get_one_thread_count() -> None:
    # --quick used to time raw predict with torch's 2 threads against the 1-thread node (59%).
    from roadseg_ros.runtime import default_num_threads

    spec = importlib.util.spec_from_file_location("bench_node", ROOT / "benchmarks" / "bench_node.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.thread_count(0) == default_num_threads()
    assert bench.thread_count(3) == 3
    source = (ROOT / "benchmarks" / "bench_node.py").read_text()
    assert "args.threads = thread_count(args.threads)" in source
    assert "threads or None" not in source and "if threads:" not in source
