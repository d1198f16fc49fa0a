"""Module contracts: ROS stays at the edge, and no two modules import each other.

* The engine (models, data, training, inference, pipeline, geometry, tools) imports no
  rclpy. Checked by importing every engine module in a fresh interpreter and looking at
  ``sys.modules`` afterwards, so an indirect import (a helper that pulls in a node module)
  is caught too, not only a literal ``import rclpy``.
* No import cycles, counting imports inside functions too: a cycle hidden in a function
  still means neither module can be understood (or moved) without the other.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "roadseg_ros"
# Modules that exist to start or be ROS nodes.
ROS_MODULES = {"roadseg_ros.tools.demo"}
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
    for expected in ("roadseg_ros.inference", "roadseg_ros.pipeline", "roadseg_ros.config",
                     "roadseg_ros.frames", "roadseg_ros.models.realtime", "roadseg_ros.data.synthetic",
                     "roadseg_ros.geometry", "roadseg_ros.carla.labels", "roadseg_ros.tools.infer"):
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


# ----------------------------------------------------------------------------- import cycles
#: Cycles that exist today and are on their way out (module sets); empty when none.
KNOWN_CYCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file (top level or in functions)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            deps.update(t for t in targets if t in files and t != name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    unexpected = [sorted(c) for c in found if c not in KNOWN_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [{"a", "b", "c"}]


def test_every_command_line_parser_refuses_abbreviations() -> None:
    """argparse's prefix matching took ``roadseg-infer --input DIR`` for ``--input-size`` and
    failed with a confusing size error; every parser the project ships sets allow_abbrev=False."""
    missing = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"),
                        *(ROOT / "scripts").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) \
                    == "ArgumentParser":
                flag = {k.arg: k.value for k in node.keywords}.get("allow_abbrev")
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not missing, f"ArgumentParser without allow_abbrev=False: {missing}"
