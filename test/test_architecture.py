"""Module contracts: ROS stays at the edge, the documented layers hold, no two modules import each other.

* The engine (models, data, training, inference, pipeline, geometry, tools) imports no
  rclpy. Checked by importing every engine module in a fresh interpreter and looking at
  ``sys.modules`` afterwards, so an indirect import (a helper that pulls in a node module)
  is caught too, not only a literal ``import rclpy``.
* No import cycles, counting imports inside functions too: a cycle hidden in a function
  still means neither module can be understood (or moved) without the other.
* The layering of docs/architecture.md, read from its module table: every module has a
  row, imports (inside functions too) only what its row allows, and the layers hold
  (facts -> numpy engine -> torch engine -> the frame pipeline -> the edge). The table
  is the contract a newcomer reads, so a new module must be documented to pass.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
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
def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def package_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports, anywhere in the file (top level or in functions).

    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (``c`` may be a module); relative
    imports are resolved.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[:len(package) - node.level + 1], node.module or ""]).strip(".") \
                if node.level else node.module
            names.update([base, *(f"{base}.{a.name}" for a in node.names)])
    return names


def torch_use(path: Path) -> str | None:
    """``"top"`` when ``path`` imports torch (or torchvision) at import time, ``"lazy"`` when only
    inside functions, ``None`` when not at all; ``if TYPE_CHECKING:`` blocks never run and do not count."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lazy: set[int] = set()
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy.update(id(n) for n in ast.walk(func))
    blocks = [b for b in ast.walk(tree)
              if isinstance(b, ast.If) and ast.unparse(b.test).endswith("TYPE_CHECKING")]
    skipped = {id(n) for block in blocks for stmt in block.body for n in ast.walk(stmt)}
    found = None
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if any(n.split(".")[0] in ("torch", "torchvision") for n in names):
            if id(node) not in lazy:
                return "top"
            found = "lazy"
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file (top level or in functions)."""
    files = package_modules()
    return {name: {t for t in imported_names(path) if t in files and t != name}
            for name, path in files.items()}


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
    graph = import_graph()
    # The graph is the real one: it has the package's modules and sees imports made inside a
    # function (the demo imports the nodes only after its cheap checks), where cycles hide.
    assert {"roadseg_ros.config", "roadseg_ros.inference", "roadseg_ros.tools.demo"} <= set(graph)
    assert "roadseg_ros.nodes.camera_source" in graph["roadseg_ros.tools.demo"]
    assert sum(map(len, graph.values())) > len(graph), "suspiciously few imports found"
    found = cycles(graph)
    assert not found, f"import cycles: {[sorted(c) for c in found]}"


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


# ----------------------------------------------------------------------------- documented layering
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TABLE_HEADER = "| module | its one job | may import"
#: What every module may import without saying so (the package's own namespace package).
ROOT_PACKAGE = "roadseg_ros"


@dataclass(frozen=True)
class Row:
    """One row of the module table: the modules it documents (``x.*``: a package's modules too)
    and its "may import" cell as written."""

    modules: tuple[str, ...]
    may_import: str

    def covers(self, module: str) -> bool:
        return any(_matches(pattern, module) for pattern in self.modules)

    def allows_torch(self) -> bool:
        return re.search(r"\btorch(vision)?\b", self.may_import) is not None

    def needs_torch(self) -> bool:
        """torch at import time: named without "(lazily" after it (``torch (lazily: ...)`` allows
        an import inside a function, for tensors a caller already has)."""
        return re.search(r"\btorch(vision)?\b(?! \(lazily)", self.may_import) is not None

    def names_ros(self) -> bool:
        return re.search(r"\brclpy\b|message packages", self.may_import) is not None


def _matches(pattern: str, module: str) -> bool:
    """Whether a table name (relative to roadseg_ros; ``x.*``: a package's modules) means ``module``."""
    full = f"{ROOT_PACKAGE}.{pattern}"
    return module.startswith(full[:-1]) if pattern.endswith(".*") else module == full


def module_rows(text: str) -> list[Row]:
    lines = text[text.index(TABLE_HEADER):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"docs/architecture.md: a module row needs 3 cells: {line}"
        rows.append(Row(tuple(re.findall(r"`([^`]+)`", cells[0])), cells[2]))
    return rows


@dataclass(frozen=True)
class Layers:
    """The layers the prose above the table names: facts at the bottom, the edge on top."""

    facts: tuple[str, ...]          # table names
    edge: tuple[str, ...]           # table names and folders ("tools/" -> tools.*)

    def is_fact(self, module: str) -> bool:
        return any(_matches(name, module) for name in self.facts)

    def is_edge(self, module: str) -> bool:
        return any(_matches(name.rstrip("/") + ".*" if name.endswith("/") else name, module)
                   or (name.endswith("/") and module == f"{ROOT_PACKAGE}.{name.rstrip('/')}")
                   for name in self.edge)


def documented_layers(text: str) -> Layers:
    sentence = " ".join(text[text.index("Layers, from the bottom:"):].split("\n\n")[0].split())
    facts = re.search(r"facts \(([^:)]*)", sentence)
    edge = re.search(r"the edge \(([^)]*)\)", sentence)
    assert facts and edge, f"docs/architecture.md: the layers sentence changed shape: {sentence}"
    names = [tuple(re.findall(r"`([^`]+)`", match.group(1))) for match in (facts, edge)]
    return Layers(*names)


def layering_violations(rows: list[Row], layers: Layers, graph: dict[str, set[str]],
                        torch_used: dict[str, str | None], pipeline: str) -> list[str]:
    """What breaks the documented layering; empty when it holds.

    ``graph``: module -> the package modules it imports (anywhere); ``torch_used``: module ->
    :func:`torch_use` of its file.
    """
    problems: list[str] = []
    modules = sorted(graph)
    row_of: dict[str, Row] = {}
    for module in modules:
        covering = [r for r in rows if r.covers(module)]
        if len(covering) > 1:
            problems.append(f"{module} has {len(covering)} rows")
        elif covering:
            row_of[module] = covering[0]
        elif module != ROOT_PACKAGE and (graph[module] - {ROOT_PACKAGE} or module not in _packages(modules)):
            problems.append(f"{module} has no row in the module table (a package's __init__ that imports "
                            "nothing of the package needs none)")
    for row in rows:
        for name in row.modules:
            if not any(_matches(name, m) for m in modules):
                problems.append(f"the row of `{name}` names no module")

    engine = {m for m in modules if not layers.is_edge(m)}

    def allowed(row: Row) -> set[str]:
        names = [*re.findall(r"`([^`]+)`", row.may_import), *row.modules]
        found = {m for m in modules if any(_matches(n, m) for n in names)}
        if re.search(r"\bthe engine\b", row.may_import):
            found |= engine
        return found | {ROOT_PACKAGE}

    # Torch layer: rows that need torch, and rows that may import a module of the torch layer.
    torch_layer = {m for m, r in row_of.items() if r.needs_torch()}
    while True:
        more = {m for m, r in row_of.items() if m not in torch_layer and allowed(r) & torch_layer}
        if not more:
            break
        torch_layer |= more

    for module, row in row_of.items():
        extra = graph[module] - allowed(row)
        if extra:
            problems.append(f"{module} imports {sorted(extra)}, which its row does not allow")
        if layers.is_edge(module):
            continue
        edge_deps = sorted(d for d in graph[module] if layers.is_edge(d))
        if edge_deps:
            problems.append(f"{module} imports the edge: {edge_deps}")
        if layers.is_fact(module):
            above = sorted(d for d in graph[module] if d != ROOT_PACKAGE and not layers.is_fact(d))
            if above:
                problems.append(f"{module} is a fact but imports {above}")
        use = torch_used.get(module)
        if use is not None and module not in torch_layer:       # numpy engine
            if not row.allows_torch():
                problems.append(f"{module} imports torch, which its row does not name (numpy engine)")
            elif use == "top":
                problems.append(f"{module} imports torch at import time; its row allows it lazily only")
        if pipeline in graph[module] and module != pipeline:
            problems.append(f"{module} imports the frame pipeline from below it")
        if row.names_ros():
            problems.append(f"{module}: ROS outside the edge")
    return problems


def _packages(modules: list[str]) -> set[str]:
    return {m for m in modules if any(o.startswith(m + ".") for o in modules)}


def test_the_documented_layering_holds() -> None:
    text = ARCHITECTURE.read_text()
    files = package_modules()
    torch_used = {m: torch_use(path) for m, path in files.items()}
    assert torch_used["roadseg_ros.models"] == "top" and torch_used["roadseg_ros.config"] is None
    rows, layers = module_rows(text), documented_layers(text)
    assert {"config", "classes"} <= set(layers.facts) and {"tools/", "nodes/"} <= set(layers.edge)
    assert len(rows) > 30
    problems = layering_violations(rows, layers, import_graph(), torch_used, "roadseg_ros.pipeline")
    assert not problems, "docs/architecture.md's module table and the code disagree:\n" + "\n".join(problems)


def test_the_layering_check_sees_violations() -> None:
    """The same check on a made-up package: each kind of violation is reported."""
    rows = [Row(("config",), "nothing of the package"), Row(("geometry",), "cv2"),
            Row(("metrics",), "torch (lazily: tensors callers pass)"),
            Row(("models", "models.*"), "torch"), Row(("pipeline",), "`geometry`"),
            Row(("tools.infer",), "the engine"), Row(("gone",), "nothing")]
    layers = Layers(facts=("config",), edge=("tools/",))
    p = "roadseg_ros"
    graph = {f"{p}.config": {f"{p}.tools.infer"},                      # a fact importing the edge
             f"{p}.geometry": {f"{p}.pipeline"},                       # from below the pipeline, undocumented
             f"{p}.metrics": set(),
             f"{p}.models": {f"{p}.models.lite"}, f"{p}.models.lite": set(),
             f"{p}.pipeline": {f"{p}.geometry"},
             f"{p}.tools": set(), f"{p}.tools.infer": {f"{p}.models", f"{p}.config"},
             f"{p}.undocumented": set()}
    torch_users = {f"{p}.geometry": "lazy", f"{p}.metrics": "top", f"{p}.models.lite": "top"}
    problems = layering_violations(rows, layers, graph, torch_users, f"{p}.pipeline")
    expected = [f"{p}.config imports ['{p}.tools.infer'], which its row does not allow",
                f"{p}.config imports the edge", f"{p}.config is a fact but imports",
                f"{p}.geometry imports ['{p}.pipeline'], which its row does not allow",
                f"{p}.geometry imports torch", f"{p}.geometry imports the frame pipeline from below it",
                f"{p}.metrics imports torch at import time",
                f"{p}.undocumented has no row", "the row of `gone` names no module"]
    for text in expected:
        assert any(problem.startswith(text) for problem in problems), (text, problems)
    assert len(problems) == len(expected), problems      # and nothing else (models.lite, tools: fine)
