"""Parameters of every node: one table per node with type, default, description and range.

Everything about a parameter lives in its node's :class:`ParamTable`, so the declarations
(what ``ros2 param describe`` shows), the validation at startup and at runtime, the
README's table and ``config/roadseg.yaml`` (generated from the segmentation node's table;
a test checks it is current) cannot drift apart. Each :class:`ParamSpec` renders itself in
all of them (descriptor, README row, YAML entry, ``--help`` line) from one wording of its
limits (:meth:`ParamSpec.limits_text`) and one type name (:attr:`ParamSpec.type_name`).

Only parameters whose change needs no rebuild (overlay alpha, which outputs to publish,
rate limit, warning throttle) are dynamic; everything else is declared ``read_only``
because changing it would mean reloading the network or recreating subscriptions, which a
restart does more predictably.

``python -m roadseg_ros.nodes.params`` prints the README table,
``python -m roadseg_ros.nodes.params --yaml`` the deployment file.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from roadseg_ros.config import BACKENDS, CARLA_LABEL_SCHEMES, PRECISIONS, ConfigError, check_device, one_line
from roadseg_ros.image_codec import SUPPORTED_ENCODINGS
from roadseg_ros.pipeline import OUTPUTS

__all__ = ["ParamSpec", "ParamTable", "ConfigError", "declare_parameters", "SEGMENTATION",
           "MANAGED_SEGMENTATION", "CAMERA_SOURCE",
           "RECORDER", "CARLA_BRIDGE", "CARLA_EVALUATOR", "TABLES", "MODEL_FACTS", "markdown_table",
           "yaml_text"]

QOS_CHOICES = ("auto", "reliable", "best_effort")
_INT_MAX = 2**31 - 1


class _TypeNames(NamedTuple):
    short: str      # the README's table and --help
    noun: str       # the error for an override of the wrong type


#: The names of each ROS parameter type, spelled once.
_TYPE_NAMES: dict[int, _TypeNames] = {
    ParameterType.PARAMETER_BOOL: _TypeNames("bool", "a boolean (true/false)"),
    ParameterType.PARAMETER_INTEGER: _TypeNames("int", "an integer"),
    ParameterType.PARAMETER_DOUBLE: _TypeNames("double", "a floating-point number (e.g. 1.0)"),
    ParameterType.PARAMETER_STRING: _TypeNames("string", "a string"),
    ParameterType.PARAMETER_INTEGER_ARRAY: _TypeNames("int[]", "a list of integers"),
    ParameterType.PARAMETER_DOUBLE_ARRAY: _TypeNames("double[]", "a list of floating-point numbers"),
}


def _literal(value: Any) -> str:
    """``value`` as YAML and ``-p NAME:=VALUE`` write it (``true``, ``"text"``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: ROS type (from the default), default, description and constraints.

    It renders itself wherever a parameter is shown (:meth:`descriptor`, :meth:`markdown_row`,
    :meth:`yaml_lines`, :meth:`help_line`), so adding a parameter to a table is one entry.
    """

    name: str
    default: Any
    description: str
    low: float | None = None          # inclusive range for numbers (declared in the descriptor)
    high: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None   # extra check: returns the reason or None
    dynamic: bool = False             # may change while running

    def __post_init__(self) -> None:
        if (self.low is None) != (self.high is None) or (self.choices and self.low is not None):
            raise ValueError(f"parameter {self.name}: give low and high together, or choices, not both")

    @property
    def ros_type(self) -> int:
        d = self.default
        if isinstance(d, list):
            return ParameterType.PARAMETER_INTEGER_ARRAY if isinstance(d[0], int) \
                else ParameterType.PARAMETER_DOUBLE_ARRAY
        if isinstance(d, bool):
            return ParameterType.PARAMETER_BOOL
        if isinstance(d, int):
            return ParameterType.PARAMETER_INTEGER
        if isinstance(d, float):
            return ParameterType.PARAMETER_DOUBLE
        return ParameterType.PARAMETER_STRING

    @property
    def type_name(self) -> str:
        """The type as the README's table and ``--help`` name it (``double``, ``int[]``)."""
        return _TYPE_NAMES[self.ros_type].short

    def limits_text(self) -> str:
        """The allowed values in words (``one of: a, b`` or ``range [0.0, 1.0]``); empty when any goes.

        The one wording of the limits: the descriptor, the README's table, the YAML comment,
        ``--help`` and the range errors all show this text.
        """
        if self.choices:
            return f"one of: {', '.join(self.choices)}"
        if self.low is not None:
            return f"range [{self.low}, {self.high}]"
        return ""

    def help_text(self) -> str:
        """The description, then the limits as a sentence (descriptor, YAML comment, ``--help``)."""
        limits = self.limits_text()
        return f"{self.description} {limits[0].upper()}{limits[1:]}." if limits else self.description

    def descriptor(self) -> ParameterDescriptor:
        """What ``ros2 param describe`` shows, and what rclpy enforces (type, range, read-only).

        A range goes into the descriptor's own fields (describe lists them as constraints);
        choices have no such field, so their limits text joins the description.
        """
        d = ParameterDescriptor(name=self.name, type=self.ros_type, read_only=not self.dynamic,
                                description=self.help_text() if self.choices else self.description)
        if self.low is not None and self.ros_type == ParameterType.PARAMETER_INTEGER:
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
        elif self.low is not None and self.ros_type == ParameterType.PARAMETER_DOUBLE:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.low),
                                                         to_value=float(self.high), step=0.0)]
        if self.choices:    # a range has its own fields above; choices have only this text
            d.additional_constraints = self.limits_text()
        return d

    def markdown_row(self) -> str:
        """This parameter's row of the README's table (see :func:`markdown_table`)."""
        return (f"| `{self.name}` | {self.type_name} | `{_literal(self.default)}` | {self.limits_text()} | "
                f"{'yes' if self.dynamic else 'no'} | {self.description.replace('|', '/')} |")

    def yaml_lines(self, value: Any) -> list[str]:
        """This parameter in a ``--params-file`` (see :func:`yaml_text`): a comment, then ``name: value``."""
        comment = self.help_text() + (" (dynamic)" if self.dynamic else "")
        return [*textwrap.wrap(comment, width=100, initial_indent="    # ", subsequent_indent="    # "),
                f"    {self.name}: {_literal(value)}"]

    def help_line(self) -> str:
        """This parameter's line of its node's ``--help``: ``NAME: type = default  help``."""
        return (f"  {self.name}: {self.type_name} = {_literal(self.default)}  {self.help_text()}"
                f"{' (dynamic)' if self.dynamic else ''}")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is invalid on its own (``None`` when it is fine)."""
        if self.low is not None and not (self.low <= value <= self.high):
            return f"{self.name}={value!r} is out of {self.limits_text()}"
        if self.choices and value not in self.choices:
            return f"{self.name}={value!r} is not valid; valid choices: {', '.join(self.choices)}"
        if self.check is not None:
            reason = self.check(value)
            if reason:
                return f"{self.name}={value!r} is not valid; {reason}"
        return None


@dataclass(frozen=True)
class ParamTable:
    """A node's parameters, plus a check across them (``(name, value, all values) -> reason``)."""

    executable: str
    params: tuple[ParamSpec, ...]
    cross_check: Callable[[str, Any, dict[str, Any]], str | None] | None = None

    def __getitem__(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def dynamic(self) -> set[str]:
        return {p.name for p in self.params if p.dynamic}

    def validate(self, name: str, value: Any, values: dict[str, Any] | None = None) -> str | None:
        """The reason ``value`` is invalid for parameter ``name`` (``None`` when it is fine).

        ``values`` (all current values) allows the table's cross-parameter check.
        """
        try:
            spec = self[name]
        except KeyError:
            return None
        reason = spec.problem(value)
        if reason is None and values is not None and self.cross_check is not None:
            reason = self.cross_check(name, value, values)
        return reason


# ----------------------------------------------------------------------------- checks
def _device_check(value: str) -> str | None:
    return check_device(value)


def _classes_check(value: str) -> str | None:
    items = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in items
           if not (re.fullmatch(r"\d+", s) and int(s) < 256) and not re.fullmatch(r"[A-Za-z_][\w\-]*", s)]
    if bad:
        return f"entries must be class ids 0..255 or class names, got {bad}"
    return None


def _class_ids_check(value: list[int]) -> str | None:
    if not value or any(not 0 <= c < 255 for c in value):
        return "give one or more class ids in 0..254"
    return None


def _class_ids_or_topic_check(value: list[int]) -> str | None:
    if list(value) == [-1]:
        return None
    reason = _class_ids_check(value)
    return reason and reason + ", or [-1] for the ids the segmentation node publishes on its classes topic"


def _camera_matrix_check(value: list[float]) -> str | None:
    if list(value) != [0.0] and len(value) != 9:
        return f"give 9 values (row-major 3x3 K), or [0.0] for none; got {len(value)}"
    return None


_MAX_GRID_CELLS = 16_000_000


def _grid_size_check(name: str, value: Any, values: dict[str, Any]) -> str | None:
    if not name.startswith("grid_"):
        return None
    v = dict(values)
    v[name] = value
    cells = ((2 * v["grid_extent_side_m"] / v["grid_resolution_m"])
             * (v["grid_extent_forward_m"] / v["grid_resolution_m"]))
    if cells > _MAX_GRID_CELLS:
        return (f"{name}={value!r} makes ~/drivable_grid {cells:.3g} cells (limit {_MAX_GRID_CELLS}); "
                "use a coarser grid_resolution_m or smaller extents")
    return None


def _sync_check(name: str, value: Any, values: dict[str, Any]) -> str | None:
    v = dict(values)
    v[name] = value
    if name in ("synchronous_mode", "fixed_delta_seconds") and v["synchronous_mode"] \
            and not v["fixed_delta_seconds"] > 0:
        return f"synchronous_mode needs fixed_delta_seconds > 0, got {v['fixed_delta_seconds']}"
    return None


# ----------------------------------------------------------------------------- the tables
SEGMENTATION = ParamTable("segmentation_node", (
    ParamSpec("weights", "", "Checkpoint file (.pt), or a bundled checkpoint's name (fcn8s_lite0); empty: "
              "the bundled default checkpoint."),
    ParamSpec("device", "auto", "Where the network runs: auto (CUDA if available, else CPU with a warning), "
              "cpu, cuda, cuda:N.", check=_device_check),
    ParamSpec("backend", "auto", "Network runtime: auto (OpenVINO on the CPU where installed, torch on "
              "CUDA), torch, openvino, onnxruntime; one that cannot run here is a logged fallback to torch.",
              choices=BACKENDS),
    ParamSpec("precision", "auto", "Network precision: auto (the backend's fastest proven one: bf16 or int8 "
              "with OpenVINO where the CPU has the instructions, fp16 on CUDA), fp32, fp16 (CUDA), bf16, "
              "int8 (OpenVINO, calibrated weights).", choices=PRECISIONS),
    ParamSpec("cache_dir", "", "Where converted networks are cached between starts; empty: "
              "$XDG_CACHE_HOME/roadseg_ros (~/.cache/roadseg_ros)."),
    ParamSpec("num_threads", 0, "CPU threads for the network; 0: half the CPU cores (at least 1).", 0, 256),
    ParamSpec("input_width", 0, "Network input width in pixels; 0: the checkpoint's.", 0, 8192),
    ParamSpec("input_height", 0, "Network input height in pixels; 0: the checkpoint's.", 0, 8192),
    ParamSpec("keep_aspect", True, "Run the network at the input size's pixel count but the camera's "
              "proportions (sides multiples of 32), so a wide camera is not squeezed; false: resize every "
              "frame to exactly input_width x input_height."),
    ParamSpec("drivable_classes", "", "Comma-separated class ids or names counted as drivable; empty: the "
              "checkpoint's.", check=_classes_check),
    ParamSpec("compressed_input", False, "Subscribe to image/compressed (JPEG/PNG) instead of image."),
    ParamSpec("input_qos", "auto", "Input reliability: auto follows the publishers on the topic (reliable "
              "if all are, else best effort), or force reliable / best_effort. Depth is 1.",
              choices=QOS_CHOICES),
    ParamSpec("max_image_side", 16384, "Frames wider or taller than this are rejected as malformed.",
              16, 65536),
    ParamSpec("overlay_alpha", 0.5, "Weight of the class colours in ~/overlay.", 0.0, 1.0, dynamic=True),
    *(ParamSpec(f"publish_{name}", True, f"Publish ~/{name} (computed only while someone subscribes).",
                dynamic=True) for name in OUTPUTS),
    ParamSpec("max_rate_hz", 0.0, "Process at most this many frames per second; 0: as fast as possible.",
              0.0, 1000.0, dynamic=True),
    ParamSpec("warn_throttle_s", 5.0, "Minimum seconds between repeated warnings about bad frames.",
              0.0, 3600.0, dynamic=True),
    ParamSpec("diagnostics_period_s", 1.0, "Period of the /diagnostics status.", 0.1, 60.0),
    ParamSpec("boundary_rows", 16, "Number of image rows sampled for the drivable boundaries, evenly spaced "
              "over the lower half.", 1, 1024),
    ParamSpec("camera_height_m", 1.5, "Height of the camera's optical centre above the ground plane (m).",
              0.05, 100.0),
    ParamSpec("camera_pitch_deg", 0.0, "Camera pitch below the horizon (deg, positive looks down).",
              -89.0, 89.0),
    ParamSpec("grid_resolution_m", 0.2, "Cell size of ~/drivable_grid (m).", 0.01, 10.0),
    ParamSpec("grid_extent_forward_m", 30.0, "~/drivable_grid reaches this far ahead of the camera (m).",
              0.5, 1000.0),
    ParamSpec("grid_extent_side_m", 10.0, "~/drivable_grid reaches this far to each side (m).", 0.5, 500.0),
    ParamSpec("grid_frame_id", "", "Frame of ~/drivable_grid; empty: the image's frame (grid pose computed "
              "from height and pitch). Otherwise a ground-aligned frame at the camera's foot point "
              "(x forward, y left)."),
), cross_check=_grid_size_check)

# The managed (lifecycle) variant: the same parameters, plus whether it drives itself to active.
MANAGED_SEGMENTATION = ParamTable("managed_segmentation_node", (
    *SEGMENTATION.params,
    ParamSpec("autostart", False, "Configure and activate at start, without a lifecycle manager; false: "
              "wait, unconfigured, for the change_state service (e.g. ros2 lifecycle set, Nav2)."),
), cross_check=SEGMENTATION.cross_check)

CAMERA_SOURCE = ParamTable("camera_source", (
    ParamSpec("source", "synthetic", "synthetic (generated road scenes), a video file, a folder of images "
              "(played in file-name order), or a recording: a rosbag2 folder (sqlite3 or MCAP) or a .mcap "
              "file."),
    ParamSpec("topic", "", "Recording: the image topic to play (sensor_msgs/Image or CompressedImage); "
              "empty: its only image topic."),
    ParamSpec("rate_hz", 10.0, "Frames published per second (a recording: only when bag_rate is 0).",
              0.01, 1000.0),
    ParamSpec("bag_rate", 1.0, "Recording: play at this multiple of the recorded timing (2.0: twice as "
              "fast); 0: ignore the recorded timing and publish at rate_hz.", 0.0, 1000.0),
    ParamSpec("width", 0, "Frame width in pixels; 0: the source's own (synthetic: 640).", 0, 16384),
    ParamSpec("height", 0, "Frame height in pixels; 0: the source's own (synthetic: 360).", 0, 16384),
    ParamSpec("frame_id", "camera", "header.frame_id of image and camera_info."),
    ParamSpec("encoding", "bgr8", "Encoding of the published images.", choices=SUPPORTED_ENCODINGS),
    ParamSpec("loop", True, "Start a folder, video or recording again at its end."),
    ParamSpec("max_frames", 0, "Stop after this many frames; 0: endless (or until a non-looping source "
              "ends).", 0, _INT_MAX),
    ParamSpec("fov_deg", 90.0, "Horizontal field of view for the published intrinsics (ideal pinhole); a "
              "recording's own camera_info is used when it has one.",
              1.0, 179.0),
    ParamSpec("camera_matrix", [0.0], "Row-major 3x3 K to publish instead of the fov_deg pinhole; [0.0]: "
              "unset.", check=_camera_matrix_check),
    ParamSpec("reliability", "reliable", "Reliability of the two publishers.",
              choices=("reliable", "best_effort")),
    ParamSpec("qos_depth", 5, "History depth of the two publishers.", 1, 1000),
    ParamSpec("seed", 0, "synthetic: which road.", 0, _INT_MAX),
    ParamSpec("speed_mps", 8.0, "synthetic: how fast the virtual car drives down the road (m/s).",
              0.0, 100.0),
    ParamSpec("wait_for_subscribers", False, "Hold frame 0 until image and camera_info have subscribers "
              "(for replays that must not lose their start)."),
))

RECORDER = ParamTable("recorder", (
    ParamSpec("output_dir", "runs/recording", "Folder for the video, the snapshots and summary.json."),
    ParamSpec("max_frames", 0, "Stop after this many overlay frames; 0: on shutdown.", 0, _INT_MAX),
    ParamSpec("video_fps", 10.0, "Frame rate written into the video.", 0.01, 1000.0),
    ParamSpec("video_name", "overlay.mp4", "File name of the overlay video (mp4v)."),
    ParamSpec("snapshot_every", 0, "Save every N-th overlay frame as a PNG; 0: none.", 0, _INT_MAX),
    ParamSpec("mcap_name", "recording.mcap", "File name of the MCAP recording (input image and camera_info, "
              "mask, overlay, drivable_area, drivable_grid, /diagnostics; for ros2 bag play and Foxglove); "
              "empty: none."),
    ParamSpec("jpeg_quality", 90, "JPEG quality of the JPEG images in the MCAP (the overlay, and the input "
              "image when input_format is jpeg).", 1, 100),
    ParamSpec("input_format", "jpeg", "How the MCAP stores the input image: jpeg (small: about a tenth "
              "of PNG's size for camera frames) or png (lossless: a replay gives the node the very pixels "
              "it saw, for regression tests). The mask is always PNG (class ids).",
              choices=("jpeg", "png")),
))

CARLA_BRIDGE = ParamTable("carla_bridge", (
    ParamSpec("host", "localhost", "CARLA simulator host."),
    ParamSpec("port", 2000, "CARLA simulator RPC port.", 1, 65535),
    ParamSpec("timeout_s", 10.0, "Seconds to wait for the simulator before giving up.", 0.1, 3600.0),
    ParamSpec("town", "", "Map to load (e.g. Town10HD_Opt); empty: keep the loaded one."),
    ParamSpec("synchronous_mode", True, "Run CARLA in synchronous mode (this node ticks the world)."),
    ParamSpec("fixed_delta_seconds", 0.05, "Simulation time step in synchronous mode (s).", 0.0, 10.0),
    ParamSpec("role_name", "ego_vehicle", "Role name of the ego vehicle (part of the topic names)."),
    ParamSpec("vehicle_filter", "vehicle.*", "Blueprint filter the ego vehicle is drawn from (4 wheels)."),
    ParamSpec("spawn_point", -1, "Index into the map's spawn points; -1: random.", -1, 100000),
    ParamSpec("seed", 0, "Seed of the vehicle and spawn point choice.", 0, _INT_MAX),
    ParamSpec("traffic_manager_port", 8000, "Port of CARLA's traffic manager (autopilot).", 1, 65535),
    ParamSpec("image_width", 800, "Width of both cameras (pixels).", 1, 8192),
    ParamSpec("image_height", 600, "Height of both cameras (pixels).", 1, 8192),
    ParamSpec("fov_deg", 90.0, "Horizontal field of view of both cameras.", 1.0, 179.0),
    ParamSpec("camera_x", 2.0, "Camera position forward of the vehicle origin (m).", -50.0, 50.0),
    ParamSpec("camera_z", 2.0, "Camera height above the vehicle origin (m).", -50.0, 50.0),
    ParamSpec("camera_pitch_deg", 0.0, "Camera pitch (deg, CARLA's sign: negative looks down).", -90.0, 90.0),
), cross_check=_sync_check)

CARLA_EVALUATOR = ParamTable("carla_evaluator", (
    ParamSpec("drivable_classes", [-1], "The model's drivable class ids; [-1]: the ids the segmentation "
              "node publishes on its ~/classes topic (subscribed as classes, latched), so they always match "
              "the model.", check=_class_ids_or_topic_check),
    ParamSpec("carla_labels", "palette", "How the semantic images encode CARLA's labels: palette colours "
              "(both bridges), or raw ids of CARLA < 0.9.14 / >= 0.9.14.", choices=CARLA_LABEL_SCHEMES),
    ParamSpec("buffer_size", 30, "Unpaired messages kept per side; the oldest is dropped and counted.",
              1, 100000),
    ParamSpec("stamp_tolerance_s", 0.0, "Pair stamps this close; 0: stamps must be equal.", 0.0, 60.0),
    ParamSpec("summary_path", "", "Write the final summary as JSON here; empty: only log it."),
))

#: Read-only parameters the segmentation node sets from the loaded model (facts, not settings:
#: no -p can change them, so they are in no table, the YAML or the README's parameter table).
MODEL_FACTS: dict[str, str] = {
    "model.class_names": "Class names of the model; index i names mask value i.",
    "model.class_colors": "RGB colour of each class, flat: r, g, b of class 0, then class 1, ...",
    "model.drivable_classes": "Class ids counted as drivable (the drivable_classes parameter, or the "
                              "checkpoint's).",
}

TABLES: dict[str, ParamTable] = {t.executable: t for t in
                                 (SEGMENTATION, MANAGED_SEGMENTATION, CAMERA_SOURCE, RECORDER, CARLA_BRIDGE,
                                  CARLA_EVALUATOR)}


# ----------------------------------------------------------------------------- declaring
def _declare_error(p: ParamSpec, exc: ParameterException) -> str:
    """One readable line for rclpy's rejection of an override (wrong type or out of range)."""
    text = one_line(exc)
    wrong_type = re.search(r"to '(.*)' of type '(\w+)', expecting type", text)
    if wrong_type:
        return (f"invalid parameter {p.name}={wrong_type.group(1)!r}: "
                f"expected {_TYPE_NAMES[p.ros_type].noun}, got {wrong_type.group(2).lower()}")
    value = re.search(r"Invalid parameter value \((.*?)\) for parameter", text)
    if value and p.low is not None:
        return f"invalid parameter {p.name}={value.group(1)}: out of {p.limits_text()}"
    return f"invalid parameter {p.name}: {text}"


def declare_parameters(node: Node, table: ParamTable) -> dict[str, Any]:
    """Declare every parameter of ``table`` on ``node`` and return their values, validated.

    Raises :class:`ConfigError` (one line) for a wrong type, an out-of-range value or any
    other invalid setting, whether it comes from ``-p`` overrides, a params file or a
    launch file.
    """
    values: dict[str, Any] = {}
    for p in table.params:
        try:
            value = node.declare_parameter(p.name, p.default, p.descriptor()).value
        except ParameterException as exc:
            raise ConfigError(_declare_error(p, exc)) from None
        values[p.name] = list(value) if isinstance(p.default, list) else value
    for p in table.params:
        reason = table.validate(p.name, values[p.name], values)
        if reason:
            raise ConfigError(f"invalid parameter {reason}")
    return values


# ----------------------------------------------------------------------------- documents
def markdown_table(table: ParamTable = SEGMENTATION) -> str:
    """The README's parameter table, generated from ``table`` so the docs cannot drift.

    Regenerate the README section with ``python -m roadseg_ros.nodes.params``.
    """
    rows = ["| parameter | type | default | limits | runtime | description |", "|---|---|---|---|---|---|"]
    return "\n".join(rows + [p.markdown_row() for p in table.params])


YAML_HEADER = """\
# Deployment defaults of roadseg_ros's segmentation node (node name: roadseg).
# Use with: ros2 run roadseg_ros segmentation_node --ros-args --params-file config/roadseg.yaml
# Generated from the declarations in roadseg_ros/nodes/params.py (SEGMENTATION):
#   ./dev.sh run python -m roadseg_ros.nodes.params --yaml > config/roadseg.yaml
# then edit the values for your deployment; test/nodes/test_params.py checks that this file
# lists exactly the declared parameters, with values of the declared types. Parameters marked
# (dynamic) may be changed while the node runs (ros2 param set); the others are read-only.
"""


def yaml_text(table: ParamTable = SEGMENTATION, values: dict[str, Any] | None = None) -> str:
    """A ``--params-file`` for ``table``'s node (``/**`` matches any node name), each parameter
    with its description as a comment; ``values`` replace defaults."""
    values = {**table.defaults(), **(values or {})}
    lines = [YAML_HEADER.rstrip("\n"), "/**:", "  ros__parameters:"]
    for p in table.params:
        lines += p.yaml_lines(values[p.name])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(yaml_text(), end="") if "--yaml" in sys.argv[1:] else print(markdown_table())
