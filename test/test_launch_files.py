"""Static checks of launch/*.launch.py and config/roadseg.rviz.

``launch`` / ``launch_ros`` cannot be installed here, so the launch files are read as
Python syntax trees: every ``Node(...)`` they can start, its parameters and remappings,
every ``DeclareLaunchArgument`` and every file they reference through
``PathJoinSubstitution([FindPackageShare(pkg), ...])``; an ``IncludeLaunchDescription`` of
one of our own launch files is followed with the arguments it passes (so carla.launch.py's
segmentation node is roadseg.launch.py's, as ``ros2 launch`` would start it). The nodes themselves are then
created for real (rclpy) with those remappings and parameters, so "the node uses this
topic" and "the node declares this parameter" are what the running node says, not a copy
of it. Where ``launch`` is importable, a launch_testing-style smoke test also loads them.
"""

from __future__ import annotations
import __future__

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter

from roadseg_ros.nodes import camera_source, carla_bridge, carla_evaluator, recorder
from roadseg_ros.nodes.params import TABLES, yaml_text

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
#: Packages other than ours a launch file may start or include (optional at run time).
FOREIGN_PACKAGES = {"rviz2": {"rviz2"}, "carla_ros_bridge": set()}
#: The official bridge's launch file the CARLA route includes (share/carla_ros_bridge/...).
OFFICIAL_EXAMPLE = "carla_ros_bridge_with_example_ego_vehicle.launch.py"
#: Parameters every rclpy node has without declaring them.
IMPLICIT_PARAMETERS = {"use_sim_time"}


# ----------------------------------------------------------------------------- package facts
def cmake_executables() -> dict[str, str]:
    text = (REPO / "CMakeLists.txt").read_text()
    block = re.search(r"set\(ROADSEG_EXECUTABLES(.*?)\)", text, re.S).group(1)
    return dict(entry.split("=", 1) for entry in re.findall(r'"([^"]+)"', block))


def setup_executables() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONSOLE_SCRIPTS":
            return dict(s.split("=", 1) for s in ast.literal_eval(node.value))
    raise AssertionError("setup.py defines no CONSOLE_SCRIPTS")


def cmake_installed_dirs() -> set[str]:
    text = (REPO / "CMakeLists.txt").read_text()
    dirs: set[str] = set()
    for match in re.finditer(r"install\(DIRECTORY ([^)]*?) DESTINATION share", text):
        dirs.update(match.group(1).split())
    return dirs


def declared_defaults(executable: str) -> dict[str, object]:
    """Declared parameters (name -> default) of one of our node executables."""
    return TABLES[executable].defaults()


# ----------------------------------------------------------------------------- launch file model
@dataclass(frozen=True)
class PackageFile:
    package: str
    path: str


class UnresolvedError(Exception):
    pass


@dataclass
class LaunchNode:
    package: str
    executable: str
    name: str | None
    namespace: object
    parameters: list = field(default_factory=list)     # resolved: dicts or PackageFile
    remappings: list = field(default_factory=list)     # resolved (from, to)
    arguments: list = field(default_factory=list)
    active: bool = True           # its condition (IfCondition / UnlessCondition) holds for these arguments


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _kw(call: ast.Call, name: str, pos: int | None = None):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    if pos is not None and len(call.args) > pos:
        return call.args[pos]
    return None


class _GivenArgument:
    """What ``LaunchConfiguration(name)`` is inside a launch-time function: the given value or the default."""

    def __init__(self, launch_file: LaunchFile, name: str) -> None:
        self.launch_file, self.name = launch_file, name

    def perform(self, context) -> str:
        lf = self.launch_file
        if self.name in lf.given:
            return lf.given[self.name]
        return str(lf.value(lf.arguments[self.name]["default"]))


#: How launch_ros's ``ParameterValue(text, value_type=T)`` turns a launch argument's text into T.
_CONVERTERS = {"str": str, "int": int, "float": float, "bool": lambda text: _as_bool(text)}
#: The parameter types a launch file may name (e.g. in a table of typed overrides).
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _as_bool(text) -> bool:
    value = yaml.safe_load(str(text))
    assert isinstance(value, bool), f"{text!r} is not a boolean"
    return value


def _text(value):
    """A launch argument's value as launch passes it on: text (a package file stays one, as a path would)."""
    return value if isinstance(value, PackageFile) else str(value)


def _parameter_value(value, value_type=None):
    if value_type is None:
        return yaml.safe_load(str(value))
    return _CONVERTERS[value_type.__name__](value)


@dataclass
class Include:
    """An included launch file: where it is and the launch arguments given to it."""

    file: PackageFile
    arguments: dict[str, object]              # resolved values
    expressions: dict[str, ast.AST]           # as written
    call: ast.Call


class LaunchFile:
    """A launch file read as a syntax tree, its arguments at their defaults except those in ``given``.

    Module-level helper functions the launch file calls at launch time (``given_overrides``)
    are run for real, with ``LaunchConfiguration(...).perform`` answering from ``given``.
    """

    def __init__(self, path: Path, given: dict[str, str] | None = None):
        self.path = path
        self.given = dict(given or {})
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.constants = {t.id: n.value for n in self.tree.body if isinstance(n, ast.Assign)
                          for t in n.targets if isinstance(t, ast.Name)}
        self.calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]
        self.arguments: dict[str, dict] = {}
        for call in self.calls:
            if _call_name(call) == "DeclareLaunchArgument":
                name = ast.literal_eval(_kw(call, "name", 0))
                self.arguments[name] = {"default": _kw(call, "default_value", 1),
                                        "choices": _kw(call, "choices"),
                                        "description": _kw(call, "description")}

    def value(self, expr: ast.AST):
        """Python value of a launch expression, LaunchConfigurations at their defaults."""
        if isinstance(expr, ast.Constant):
            return expr.value
        if isinstance(expr, (ast.List, ast.Tuple)):
            return [self.value(e) for e in expr.elts]
        if isinstance(expr, ast.Dict):
            merged: dict = {}
            for k, v in zip(expr.keys, expr.values):
                merged.update(self.value(v) if k is None else {self.value(k): self.value(v)})   # {**d, k: v}
            return merged
        if isinstance(expr, ast.Name) and expr.id in self.constants:
            return self.value(self.constants[expr.id])
        if isinstance(expr, ast.Name) and expr.id in _TYPES:
            return _TYPES[expr.id]
        if isinstance(expr, ast.Call):
            name = _call_name(expr)
            if name == "LaunchConfiguration":
                arg = ast.literal_eval(expr.args[0])
                assert arg in self.arguments, f"{self.path.name}: argument {arg!r} is not declared"
                if arg in self.given:
                    return self.given[arg]
                return self.value(self.arguments[arg]["default"])
            if name == "given_overrides":
                # (the context argument is a local name: the stand-ins do not need it)
                args = [self.value(a) if not isinstance(a, ast.Name) or a.id in self.constants else None
                        for a in expr.args]
                return self.run_helper(name, *args)
            if name == "ParameterValue":
                raw = self.value(expr.args[0])
                vtype = _kw(expr, "value_type")
                if vtype is None:
                    return yaml.safe_load(str(raw))
                return _CONVERTERS[vtype.id](raw)
            if name == "PathJoinSubstitution":
                parts = self.value(expr.args[0])
                assert isinstance(parts[0], PackageFile), f"{self.path.name}: path not in a package's share"
                return PackageFile(parts[0].package, "/".join(str(p) for p in parts[1:]))
            if name == "FindPackageShare":
                return PackageFile(ast.literal_eval(expr.args[0]), "")
        raise UnresolvedError(ast.unparse(expr))

    def run_helper(self, name: str, *args):
        """Run the launch file's module-level function ``name`` (launch's classes replaced by stand-ins)."""
        func = next(n for n in self.tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
        namespace = {"LaunchConfiguration": lambda arg: _GivenArgument(self, arg),
                     "ParameterValue": _parameter_value, "LaunchContext": object}
        code = ast.Module(body=[func], type_ignores=[])
        flags = __future__.annotations.compiler_flag     # its annotations name launch types: not evaluated
        exec(compile(ast.fix_missing_locations(code), str(self.path), "exec", flags=flags), namespace)
        return namespace[name](*args)

    def includes(self) -> list[Include]:
        """Every ``IncludeLaunchDescription(PythonLaunchDescriptionSource(...), launch_arguments=...)``."""
        found = []
        for call in self.calls:
            if _call_name(call) != "IncludeLaunchDescription":
                continue
            source = _kw(call, "launch_description_source", 0)
            assert isinstance(source, ast.Call) and _call_name(source) == "PythonLaunchDescriptionSource", \
                f"{self.path.name}: includes something other than a Python launch file"
            arguments = _kw(call, "launch_arguments")
            if isinstance(arguments, ast.Call) and _call_name(arguments) == "items":    # {...}.items()
                arguments = arguments.func.value
            pairs = {} if arguments is None else (
                self.value(arguments) if isinstance(arguments, ast.Dict) else dict(self.value(arguments)))
            exprs = {} if not isinstance(arguments, ast.Dict) else \
                {ast.literal_eval(k): v for k, v in zip(arguments.keys, arguments.values)}
            found.append(Include(self.value(_kw(source, "launch_file_path", 0)), pairs, exprs, call))
        return found

    def included(self, include: Include) -> LaunchFile:
        """One of our launch files as this one includes it: the arguments it passes, and (as launch
        forwards the including file's configurations) this file's values of arguments both declare."""
        assert include.file.package == "roadseg_ros", include.file
        child = LaunchFile(REPO / include.file.path)
        shared = {name: self.given[name] if name in self.given
                  else _text(self.value(self.arguments[name]["default"]))
                  for name in child.arguments if name in self.arguments or name in self.given}
        child.given = {**shared, **{name: _text(value) for name, value in include.arguments.items()}}
        return child

    def condition_holds(self, condition: ast.AST | None) -> bool:
        """``IfCondition(x)`` / ``UnlessCondition(x)`` for these arguments (no condition: true)."""
        if condition is None:
            return True
        kind = _call_name(condition) if isinstance(condition, ast.Call) else ""
        assert kind in ("IfCondition", "UnlessCondition"), \
            f"{self.path.name}: unexpected condition {ast.unparse(condition)}"
        value = _as_bool(self.value(condition.args[0]))
        return value if kind == "IfCondition" else not value

    def nodes(self, *, active_only: bool = False) -> list[LaunchNode]:
        """Every node the file can start (launch_ros ``Node`` and ``LifecycleNode``), whatever its
        condition, those of our included launch files too; ``active_only``: those these arguments start."""
        out = []
        for include in self.includes():
            if include.file.package == "roadseg_ros":
                out += self.included(include).nodes()
        for call in self.calls:
            if _call_name(call) not in ("Node", "LifecycleNode"):
                continue
            params = _kw(call, "parameters")
            remaps = _kw(call, "remappings")
            args = _kw(call, "arguments")
            name = _kw(call, "name")
            ns = _kw(call, "namespace")
            out.append(LaunchNode(
                package=self.value(_kw(call, "package")), executable=self.value(_kw(call, "executable")),
                name=self.value(name) if name is not None else None,
                namespace=self.value(ns) if ns is not None else "",
                parameters=[self.value(p) for p in params.elts] if isinstance(params, ast.List)
                else self.value(params) if params is not None else [],
                remappings=[tuple(r) for r in self.value(remaps)] if remaps is not None else [],
                arguments=self.value(args) if args is not None else [],
                active=self.condition_holds(_kw(call, "condition"))))
        return [n for n in out if n.active] if active_only else out

    def package_files(self) -> list[PackageFile]:
        found = []
        for call in self.calls:
            if _call_name(call) == "PathJoinSubstitution":
                found.append(self.value(call))
        return found


@pytest.fixture(scope="module")
def launch_files() -> list[LaunchFile]:
    assert {p.name for p in LAUNCH_FILES} >= {"roadseg.launch.py", "carla.launch.py"}, LAUNCH_FILES
    return [LaunchFile(p) for p in LAUNCH_FILES]


# ----------------------------------------------------------------------------- static tests
def test_launch_files_parse_and_declare_documented_arguments(launch_files):
    for lf in launch_files:
        funcs = {n.name for n in lf.tree.body if isinstance(n, ast.FunctionDef)}
        assert "generate_launch_description" in funcs, lf.path.name
        assert lf.arguments, f"{lf.path.name} declares no launch arguments"
        for name, arg in lf.arguments.items():
            assert arg["description"] is not None and lf.value(arg["description"]).strip(), \
                f"{lf.path.name}: argument {name} has no description"
            if arg["choices"] is not None:
                assert lf.value(arg["default"]) in lf.value(arg["choices"]), \
                    f"{lf.path.name}: default of {name} is not one of its choices"
    roadseg = next(lf for lf in launch_files if lf.path.name == "roadseg.launch.py")
    assert {"namespace", "image_topic", "params_file", "weights", "device"} <= set(roadseg.arguments)
    carla = next(lf for lf in launch_files if lf.path.name == "carla.launch.py")
    assert {"host", "port", "town", "timeout", "synchronous_mode", "fixed_delta_seconds",
            "use_official_bridge"} <= set(carla.arguments)


def test_started_executables_are_installed(launch_files):
    cmake, setup = cmake_executables(), setup_executables()
    assert cmake == setup
    for lf in launch_files:
        for node in lf.nodes():
            if node.package == "roadseg_ros":
                assert node.executable in cmake, f"{lf.path.name}: {node.executable} is not installed"
            else:
                assert node.executable in FOREIGN_PACKAGES.get(node.package, set()), \
                    f"{lf.path.name}: unexpected {node.package}/{node.executable}"


def _type_ok(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, float)      # ROS rejects an integer for a double parameter
    if isinstance(default, list):
        return isinstance(value, list) and all(_type_ok(v, default[0]) for v in value) if default else True
    return type(value) is type(default)


def test_parameters_set_by_launch_files_are_declared(launch_files):
    checked = 0
    for lf in launch_files:
        for node in lf.nodes():
            if node.package != "roadseg_ros":
                continue
            declared = declared_defaults(node.executable)
            for entry in node.parameters:
                if isinstance(entry, PackageFile):
                    assert entry.package == "roadseg_ros"
                    data = yaml.safe_load((REPO / entry.path).read_text())
                    entry = data["/**"]["ros__parameters"]
                for key, value in entry.items():
                    checked += 1
                    if key in IMPLICIT_PARAMETERS:
                        continue
                    assert key in declared, f"{lf.path.name}: {node.executable} declares no parameter {key!r}"
                    assert _type_ok(value, declared[key]), \
                        f"{lf.path.name}: {node.executable} {key}={value!r} has the wrong type " \
                        f"(declared default {declared[key]!r})"
    assert checked > 20


def test_referenced_files_exist_parse_and_are_installed(launch_files):
    installed = cmake_installed_dirs()
    seen = set()
    for lf in launch_files:
        for ref in lf.package_files():
            if ref.package != "roadseg_ros":
                assert ref.package == "carla_ros_bridge" and ref.path == OFFICIAL_EXAMPLE, ref
                continue
            path = REPO / ref.path
            assert path.is_file(), f"{lf.path.name} references {ref.path}, which does not exist"
            assert ref.path.split("/")[0] in installed, f"{ref.path} is not installed to share/roadseg_ros"
            if path.suffix in (".yaml", ".rviz"):
                assert isinstance(yaml.safe_load(path.read_text()), dict), f"{ref.path} does not parse"
            seen.add(ref.path)
    assert {"config/roadseg.yaml", "config/roadseg.rviz"} <= seen


def _segmentation_nodes(lf: LaunchFile) -> list[LaunchNode]:
    return [n for n in lf.nodes(active_only=True)
            if n.package == "roadseg_ros" and n.executable == "segmentation_node"]


def test_the_segmentation_node_is_defined_once_and_carla_includes_it(launch_files):
    """roadseg.launch.py is the one definition of the segmentation node (and of given_overrides);
    carla.launch.py includes it, passing its camera topics and its own arguments through."""
    defines_node = [lf.path.name for lf in launch_files for call in lf.calls if _call_name(call) == "Node"
                    and isinstance(_kw(call, "executable"), ast.Constant)
                    and _kw(call, "executable").value == "segmentation_node"]
    assert defines_node == ["roadseg.launch.py"]
    helpers = [lf.path.name for lf in launch_files for n in lf.tree.body
               if isinstance(n, ast.FunctionDef) and n.name == "given_overrides"]
    assert helpers == ["roadseg.launch.py"]

    carla = next(lf for lf in launch_files if lf.path.name == "carla.launch.py")
    roadseg = next(lf for lf in launch_files if lf.path.name == "roadseg.launch.py")
    ours = [i for i in carla.includes() if i.file.package == "roadseg_ros"]
    assert [i.file for i in ours] == [PackageFile("roadseg_ros", "launch/roadseg.launch.py")]
    include = ours[0]
    assert (REPO / include.file.path).is_file()
    assert set(include.arguments) <= set(roadseg.arguments), "passes an argument roadseg.launch.py lacks"
    # carla's own arguments of the same name reach the included file as given.
    for name in ("params_file", "weights", "device"):
        assert ast.unparse(include.expressions[name]) == f"LaunchConfiguration({name!r})", name
    assert include.arguments["image_topic"] == "/carla/ego_vehicle/rgb_front/image"
    assert include.arguments["camera_info_topic"] == "/carla/ego_vehicle/rgb_front/camera_info"
    assert include.arguments["rviz"] == "false", "carla.launch.py starts its own RViz (sim time)"
    # Inside a scoped group: the arguments set for the include (rviz:=false) must not switch off
    # carla's own RViz afterwards (launch keeps configurations set by an include otherwise).
    names = {t.id for n in ast.walk(carla.tree) if isinstance(n, ast.Assign) and n.value is include.call
             for t in n.targets if isinstance(t, ast.Name)}
    groups = [c for c in carla.calls if _call_name(c) == "GroupAction"
              and any(e is include.call or isinstance(e, ast.Name) and e.id in names for e in ast.walk(c))]
    assert groups, "the include is not in a GroupAction"
    scoped = _kw(groups[0], "scoped")
    assert scoped is None or ast.literal_eval(scoped) is True

    # What the included node gets: the params file and given arguments, the bridges' camera
    # height and sim time on top; nothing else.
    node, = _segmentation_nodes(carla)
    assert (node.name, node.namespace) == ("roadseg", "")
    assert node.remappings == [("image", "/carla/ego_vehicle/rgb_front/image"),
                               ("camera_info", "/carla/ego_vehicle/rgb_front/camera_info")]
    assert node.parameters == [PackageFile("roadseg_ros", "config/roadseg.yaml"),
                               {"camera_height_m": 2.0, "use_sim_time": True}]
    given = LaunchFile(carla.path,
                       given={"params_file": "/tmp/site.yaml", "weights": "2024.pt", "device": "0"})
    node, = _segmentation_nodes(given)
    assert node.parameters == ["/tmp/site.yaml", {"weights": "2024.pt", "device": "0", "camera_height_m": 2.0,
                                                  "use_sim_time": True}]
    # The same file on its own leaves the params file alone unless an argument is given.
    node, = _segmentation_nodes(roadseg)
    assert node.parameters == [PackageFile("roadseg_ros", "config/roadseg.yaml"), {}]
    given = LaunchFile(roadseg.path, given={"camera_height_m": "3", "use_sim_time": "false"})
    node, = _segmentation_nodes(given)
    assert node.parameters[1] == {"camera_height_m": 3.0, "use_sim_time": False}


# ----------------------------------------------------------------------------- live node checks
@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory, save_tiny_checkpoint) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", (64, 48))


@pytest.fixture()
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def _start(node: LaunchNode, context: Context, weights: Path):
    """Create the launch file's node for real, with its remappings and plain parameters."""
    overrides = []
    for entry in node.parameters:
        if isinstance(entry, dict):
            overrides += [Parameter(key, value=value) for key, value in entry.items()]
    if node.executable.endswith("segmentation_node"):     # a small model on this machine's CPU
        overrides += [Parameter("weights", value=str(weights)), Parameter("device", value="cpu")]
    cli = ["--ros-args"] + [a for src, dst in node.remappings for a in ("-r", f"{src}:={dst}")]
    kwargs = {"context": context, "cli_args": cli, "parameter_overrides": overrides,
              "namespace": node.namespace or "/"}
    if node.executable == "segmentation_node":
        from roadseg_ros.nodes.segmentation_node import SegmentationNode
        return SegmentationNode(node.name or "roadseg", **kwargs)
    if node.executable == "managed_segmentation_node":
        from roadseg_ros.nodes.managed_segmentation_node import ManagedSegmentationNode
        return ManagedSegmentationNode(node.name or "roadseg", **kwargs)
    classes = {"carla_bridge": carla_bridge.CarlaBridge, "carla_evaluator": carla_evaluator.CarlaEvaluator,
               "camera_source": camera_source.CameraSource, "recorder": recorder.Recorder}
    return classes[node.executable](node_name=node.name or node.executable, **kwargs)


def _topics(ros_node) -> tuple[set[str], set[str]]:
    subs = {s.topic_name for s in ros_node.subscriptions}
    pubs = {p.topic_name for p in ros_node.publishers}
    return subs, pubs


def test_remappings_point_at_topics_the_nodes_use(launch_files, context, tiny_weights):
    bridge_topics = set(carla_bridge.topic_names("ego_vehicle").values())
    for lf in launch_files:
        graph_pubs: set[str] = set()
        remapped_inputs: list[tuple[str, str, str]] = []
        started = []
        try:
            for node in lf.nodes(active_only=True):
                if node.package != "roadseg_ros":
                    continue
                ros_node = _start(node, context, tiny_weights)
                started.append(ros_node)
                subs, pubs = _topics(ros_node)
                graph_pubs |= pubs
                for src, dst in node.remappings:
                    assert dst.startswith("/"), f"{lf.path.name}: remap target {dst!r} is not absolute"
                    # The remapped name is really used (the source name was one of the node's topics).
                    assert dst in subs | pubs, \
                        f"{lf.path.name}: {node.executable} remaps {src!r} but uses no such topic " \
                        f"(subscribes {sorted(subs)}, publishes {sorted(pubs)})"
                    if dst in subs:
                        remapped_inputs.append((node.executable, src, dst))
        finally:
            for n in started:
                n.destroy_node()
        assert remapped_inputs or lf.path.name == "roadseg.launch.py"
        for executable, src, dst in remapped_inputs:
            if lf.path.name == "carla.launch.py":
                # Fed by a node of this launch file, or by either bridge (same topic names).
                assert dst in graph_pubs | bridge_topics, f"{executable}: nothing publishes {dst} ({src})"
    carla = next(lf for lf in launch_files if lf.path.name == "carla.launch.py")
    remaps = {(n.executable, s): d for n in carla.nodes() for s, d in n.remappings}
    assert remaps[("segmentation_node", "image")] == "/carla/ego_vehicle/rgb_front/image"
    assert remaps[("carla_evaluator", "semantic")] == "/carla/ego_vehicle/semantic_segmentation_front/image"
    assert remaps[("carla_evaluator", "mask")] == "/roadseg/mask"


def test_managed_true_starts_the_lifecycle_node_instead(launch_files, context, tiny_weights):
    """``managed:=true``: managed_segmentation_node as a launch_ros LifecycleNode, with the plain
    node's name, namespace, remappings and parameters plus ``autostart``; never both nodes."""
    roadseg = next(lf for lf in launch_files if lf.path.name == "roadseg.launch.py")
    assert [n.executable for n in roadseg.nodes(active_only=True)] == ["segmentation_node"]
    plain, = _segmentation_nodes(roadseg)
    node, = LaunchFile(roadseg.path, given={"managed": "true"}).nodes(active_only=True)
    assert node.executable == "managed_segmentation_node" and node.executable in cmake_executables()
    assert (node.name, node.namespace, node.remappings) == (plain.name, plain.namespace, plain.remappings)
    assert node.parameters == [plain.parameters[0], {"autostart": True}]
    given = LaunchFile(roadseg.path, given={"managed": "true", "autostart": "false", "device": "cpu"})
    assert given.nodes(active_only=True)[0].parameters[1] == {"device": "cpu", "autostart": False}
    with_rviz = LaunchFile(roadseg.path, given={"managed": "true", "rviz": "true"})
    assert sorted(n.executable for n in with_rviz.nodes(active_only=True)) == \
        ["managed_segmentation_node", "rviz2"]
    # A launch_ros LifecycleNode (its lifecycle events work), which takes name and namespace as
    # required keywords; the names come from where launch defines them.
    call, = [c for c in roadseg.calls if isinstance(_kw(c, "executable"), ast.Constant)
             and _kw(c, "executable").value == "managed_segmentation_node"]
    assert _call_name(call) == "LifecycleNode"
    assert _kw(call, "name") is not None and _kw(call, "namespace") is not None
    imported = {a.name: n.module for n in ast.walk(roadseg.tree) if isinstance(n, ast.ImportFrom)
                for a in n.names}
    assert imported["LifecycleNode"] == "launch_ros.actions"
    assert imported["IfCondition"] == imported["UnlessCondition"] == "launch.conditions"
    # The real node takes what the launch file passes, and autostart brings it up on the camera topics.
    ros_node = _start(node, context, tiny_weights)
    try:
        assert ros_node.lifecycle_state == "active"
        subs, pubs = _topics(ros_node)
        assert {"/camera/image_raw", "/camera/camera_info"} <= subs and "/roadseg/mask" in pubs
    finally:
        ros_node.destroy_node()


def test_rviz_displays_show_topics_the_node_publishes(context, tiny_weights):
    config = yaml.safe_load((REPO / "config" / "roadseg.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Class"]: set() for d in displays}
    for d in displays:
        if "Topic" in d:
            topics[d["Class"]].add(d["Topic"]["Value"])
    from roadseg_ros.nodes.segmentation_node import SegmentationNode
    node = SegmentationNode("roadseg", context=context, parameter_overrides=[
        Parameter("weights", value=str(tiny_weights)), Parameter("device", value="cpu")])
    try:
        publishers = {p.topic_name: p.msg_type.__name__ for p in node.publishers}
    finally:
        node.destroy_node()
    wanted = {"/roadseg/overlay": "Image", "/roadseg/color_mask": "Image", "/roadseg/mask": "Image",
              "/roadseg/drivable_grid": "OccupancyGrid"}
    shown = topics["rviz_default_plugins/Image"] | topics["rviz_default_plugins/Map"]
    assert set(wanted) <= shown
    for topic in shown:
        assert topic in publishers, f"RViz shows {topic}, which the node does not publish"
    for topic in topics["rviz_default_plugins/Map"]:
        assert publishers[topic] == "OccupancyGrid"
    for topic in topics["rviz_default_plugins/Image"]:
        assert publishers[topic] == "Image"


# ----------------------------------------------------------------------------- params file vs arguments
def _effective_parameters(lf: LaunchFile, context: Context) -> dict:
    """Start the launch file's segmentation node for real, its parameters as launch_ros passes them:
    the params file (``--params-file``), then the dict entries in order (later ones win)."""
    node = next(n for n in lf.nodes(active_only=True) if n.executable == "segmentation_node")
    assert isinstance(node.parameters[0], str), "the params file comes first"
    overrides = [Parameter(k, value=v) for entry in node.parameters[1:] for k, v in entry.items()
                 if k not in IMPLICIT_PARAMETERS]
    from roadseg_ros.nodes.segmentation_node import SegmentationNode
    ros_node = SegmentationNode("roadseg", context=context, parameter_overrides=overrides,
                                cli_args=["--ros-args", "--params-file", node.parameters[0]])
    try:
        return {name: ros_node.get_parameter(name).value for name in ("device", "weights", "precision")}
    finally:
        ros_node.destroy_node()


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_a_device_in_the_params_file_reaches_the_node_unless_the_argument_is_given(path, tmp_path, context,
                                                                                   tiny_weights):
    """The trap of issue 12: launch files used to pass device/weights/precision after the params file
    always, so a ``device:`` set in the YAML never took effect under ``ros2 launch``."""
    params_file = tmp_path / "deployment.yaml"
    params_file.write_text(yaml_text(TABLES["segmentation_node"],
                                     {"device": "cpu", "weights": str(tiny_weights)}))
    not_given = LaunchFile(path, given={"params_file": str(params_file)})
    effective = _effective_parameters(not_given, context)
    assert effective["device"] == "cpu" and effective["weights"] == str(tiny_weights)
    # Given on the command line, the argument wins over the file (which now says "auto").
    params_file.write_text(yaml_text(TABLES["segmentation_node"], {"weights": str(tiny_weights)}))
    assert _effective_parameters(not_given, context)["device"] == "auto"
    given = LaunchFile(path, given={"params_file": str(params_file), "device": "cpu"})
    assert _effective_parameters(given, context)["device"] == "cpu"


# ----------------------------------------------------------------------------- launch smoke
def test_launch_descriptions_load_with_launch():
    """launch_testing-style smoke test; only where the ROS 2 ``launch`` packages exist."""
    # (The repository's own launch/ folder is importable as a namespace package named
    # "launch", so look for a real attribute of ROS 2 launch, not just the name.)
    try:
        import launch
        import launch_ros  # noqa: F401
        from launch.launch_description_sources import PythonLaunchDescriptionSource
    except ImportError as exc:
        pytest.skip(f"ROS 2 launch/launch_ros are not installable on this machine (not on PyPI: {exc}); "
                    "the static tests above cover the launch files")

    for path in LAUNCH_FILES:
        description = PythonLaunchDescriptionSource(str(path)).get_launch_description(launch.LaunchContext())
        assert isinstance(description, launch.LaunchDescription)
        names = {a.name for a in description.get_launch_arguments()}
        assert "device" in names


def test_carla_launch_shuts_down_when_its_bridge_exits():
    """carla_bridge without a simulator exits with an error; the launch must not keep the rest running.

    Checked on the syntax tree: an ``OnProcessExit`` handler targeting the carla_bridge ``Node``
    (the same variable) is registered, and its actions include ``Shutdown``; the names are
    imported from where launch 3.x defines them.
    """
    path = REPO / "launch" / "carla.launch.py"
    tree = ast.parse(path.read_text())
    imported = {alias.name: node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert imported.get("OnProcessExit") == "launch.event_handlers"
    assert imported.get("Shutdown") == imported.get("RegisterEventHandler") == "launch.actions"
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call)]
    bridge_vars = {t.id for n in ast.walk(tree)
                   if isinstance(n, ast.Assign) and n.value in calls and _call_name(n.value) == "Node"
                   and ast.literal_eval(_kw(n.value, "executable")) == "carla_bridge" for t in n.targets}
    assert bridge_vars, "carla.launch.py starts no carla_bridge Node assigned to a name"
    handlers = [c for c in calls if _call_name(c) == "RegisterEventHandler"]
    found = False
    for handler in handlers:
        event = handler.args[0] if handler.args else _kw(handler, "event_handler")
        if not (isinstance(event, ast.Call) and _call_name(event) == "OnProcessExit"):
            continue
        target, actions = _kw(event, "target_action"), _kw(event, "on_exit")
        if isinstance(target, ast.Name) and target.id in bridge_vars and isinstance(actions, ast.List):
            found = any(isinstance(a, ast.Call) and _call_name(a) == "Shutdown" for a in actions.elts)
    assert found, "no OnProcessExit(target_action=<carla_bridge>, on_exit=[..., Shutdown(...)])"
    # ...and the handler is returned with the bridge, so launch registers it.
    returns = [r for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "_bridge"
               for r in ast.walk(f) if isinstance(r, ast.Return)]
    assert any("bridge_gone" in ast.unparse(r) for r in returns)
