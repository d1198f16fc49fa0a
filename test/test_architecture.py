"""ROS stays at the edge: the engine (models, data, training, inference, geometry, tools) imports no rclpy.

Checked by importing every engine module in a fresh interpreter and looking at
``sys.modules`` afterwards, so an indirect import (a helper that pulls in a node module)
is caught too, not only a literal ``import rclpy``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "roadseg_ros"
# Modules that exist to start or be ROS nodes.
ROS_MODULES = {"roadseg_ros.demo"}
ROS_PACKAGES = ("roadseg_ros.nodes", "roadseg_ros.msg")


def engine_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        name = ".".join(parts)
        if name in ROS_MODULES or name.startswith(ROS_PACKAGES):
            continue
        names.append(name)
    return names


def test_the_engine_list_is_complete() -> None:
    names = engine_modules()
    for expected in ("roadseg_ros.inference", "roadseg_ros.train", "roadseg_ros.models.realtime",
                     "roadseg_ros.data.synthetic", "roadseg_ros.geometry", "roadseg_ros.tools.infer"):
        assert expected in names
    assert not any(n.startswith("roadseg_ros.nodes") for n in names)


def test_engine_modules_import_no_rclpy() -> None:
    code = (
        "import importlib, json, sys\n"
        f"names = {engine_modules()!r}\n"
        "offenders = {}\n"
        "for name in names:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        "    new = sorted(m for m in set(sys.modules) - before if m == 'rclpy' or m.startswith('rclpy.'))\n"
        "    if new:\n"
        "        offenders[name] = new[:3]\n"
        "print(json.dumps({'offenders': offenders, 'rclpy': 'rclpy' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"offenders": {}, "rclpy": False}, result


def test_the_check_sees_a_ros_module() -> None:
    """The same probe flags a module that does import rclpy (so the test above can fail)."""
    code = ("import sys, importlib; importlib.import_module('roadseg_ros.nodes.common'); "
            "print('rclpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"
