"""One exit contract for every installed executable: configuration error 2, expected failure 1.

Each entry point in setup.py's ``console_scripts`` (the console tools and every node) is
run as its own process, the way the executables CMakeLists.txt generates run it
(``from MODULE import FUNC; sys.exit(FUNC())``), and given a configuration mistake: it
must exit 2 before doing any work, with one line on stderr that names the problem. A
few are also made to fail while running (no simulator, an unreadable input), which must
exit 1: a script or a launch system tells "configured wrong" from "failed" by the status.

A new entry point without a case here fails :func:`test_every_entry_point_has_a_case`.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Generous: each process imports torch (and most start rclpy) on a shared, busy machine.
PROCESS_TIMEOUT_S = 300

@dataclass(frozen=True)
class Case:
    """Arguments (``{tmp}``: the test's temporary folder), text the error line must contain, and
    a path under ``{tmp}`` that must not exist afterwards (nothing half-made)."""

    args: list[str]
    problem: str
    untouched: str | None = None


MISSING = "missing.pt does not exist"
CONFIG_ERRORS: dict[str, Case] = {
    "segmentation_node": Case(["--ros-args", "-p", "weights:={tmp}/missing.pt"], MISSING),
    # (without a lifecycle manager, autostart: it loads the weights at start)
    "managed_segmentation_node": Case(["--ros-args", "-p", "autostart:=true",
                                       "-p", "weights:={tmp}/missing.pt"], MISSING),
    "camera_source": Case(["--ros-args", "-p", "source:={tmp}/missing.mp4"], "missing.mp4' does not exist"),
    "recorder": Case(["--ros-args", "-p", "input_format:=gif", "-p", "output_dir:={tmp}/out"],
                     "input_format='gif'", "out"),
    "carla_bridge": Case(["--ros-args", "-p", "port:=0"], "port=0: out of range"),
    "carla_evaluator": Case(["--ros-args", "-p", "carla_labels:=bogus"], "carla_labels='bogus'"),
    "roadseg-demo": Case(["--weights", "{tmp}/missing.pt", "--output", "{tmp}/out"], MISSING, "out"),
    "roadseg-train": Case(["--synthetic", "2", "--val-split", "none", "--epochs", "1", "--device", "bogus",
                           "--output", "{tmp}/out"], "--device bogus", "out"),
    "roadseg-eval": Case(["--weights", "{tmp}/missing.pt", "--dataset", "synthetic"], MISSING),
    "roadseg-infer": Case(["{tmp}", "--weights", "{tmp}/missing.pt", "-o", "{tmp}/out"], MISSING, "out"),
    "roadseg-export": Case(["--weights", "{tmp}/missing.pt", "-o", "{tmp}/out"], MISSING, "out"),
    "roadseg-quantize": Case(["--weights", "{tmp}/missing.pt"], MISSING),
    "roadseg-carla-collect": Case(["--output", "{tmp}/out", "--frames", "0"], "--frames and --every", "out"),
}


def entry_points() -> dict[str, str]:
    """setup.py's console_scripts: name -> ``module:function``."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONSOLE_SCRIPTS":
            return dict(entry.split("=", 1) for entry in ast.literal_eval(node.value))
    raise AssertionError("setup.py defines no CONSOLE_SCRIPTS")


def run_entry_point(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    module, func = entry_points()[name].split(":")
    code = f"import sys; from {module} import {func}; sys.exit({func}())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT_S)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_entry_point_has_a_case():
    assert set(CONFIG_ERRORS) == set(entry_points())


@pytest.mark.parametrize("name", sorted(CONFIG_ERRORS))
def test_a_configuration_error_exits_2_with_one_line_naming_it(name, tmp_path):
    case = CONFIG_ERRORS[name]
    proc = run_entry_point(name, [a.replace("{tmp}", str(tmp_path)) for a in case.args], tmp_path)
    assert proc.returncode == 2, f"{name} exited {proc.returncode}:\n{proc.stderr}"
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1, f"{name} printed {len(lines)} lines on stderr:\n{proc.stderr}"
    assert lines[0].startswith(f"{name}: ") and case.problem in lines[0], lines[0]
    if case.untouched is not None:
        assert not (tmp_path / case.untouched).exists(), f"{name} made {case.untouched} before refusing"


def test_expected_failures_while_running_exit_1(tmp_path, save_tiny_checkpoint):
    """The other half of the contract: the configuration was fine, the run failed."""
    weights = save_tiny_checkpoint(tmp_path / "tiny.pt", (64, 48))
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "broken.mp4").write_bytes(b"\x00" * 100)
    failures = {
        "roadseg-infer": ([str(tmp_path / "inputs"), "--weights", str(weights), "-o", str(tmp_path / "o"),
                           "--no-progress", "--device", "cpu"], "1 input(s) failed"),
    }
    try:
        import carla  # noqa: F401
    except ImportError:
        pass
    else:   # no simulator listens on a free port
        port = str(_free_port())
        failures["roadseg-carla-collect"] = (["--output", str(tmp_path / "c"), "--host", "127.0.0.1",
                                              "--port", port, "--timeout", "1", "--frames", "1"],
                                             f"127.0.0.1:{port}")
        failures["carla_bridge"] = (["--ros-args", "-p", "host:=127.0.0.1", "-p", f"port:={port}",
                                     "-p", "timeout_s:=1.0"], f"127.0.0.1:{port}")
    for name, (args, problem) in failures.items():
        proc = run_entry_point(name, args, tmp_path)
        assert proc.returncode == 1, f"{name} exited {proc.returncode}:\n{proc.stderr}"
        last = _error_lines(proc.stderr)[-1]
        assert last.startswith(f"{name}: error: ") and problem in last, proc.stderr
