"""Parameters of the segmentation node: one table with type, default, description, range.

Everything about a parameter lives in :data:`PARAMS`, so the declarations (what
``ros2 param describe`` shows), the validation at startup and at runtime, and the
defaults in ``config/roadseg.yaml`` (a test checks they agree) cannot drift apart.

Only parameters whose change needs no rebuild (overlay alpha, which outputs to
publish, rate limit, warning throttle) are dynamic; everything else is declared
``read_only`` because changing it would mean reloading the network or recreating
subscriptions, which a restart does more predictably.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterException
from rclpy.node import Node

__all__ = ["PARAMS", "OUTPUTS", "ParamSpec", "ConfigError", "declare_parameters", "validate", "spec"]

#: Output topics (relative to the node's private namespace) and their publish_* flag.
OUTPUTS = ("mask", "overlay", "color_mask", "confidence", "drivable_area", "drivable_grid")

QOS_CHOICES = ("auto", "reliable", "best_effort")
PRECISION_CHOICES = ("fp32", "fp16", "bf16")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class ConfigError(Exception):
    """A configuration problem found at startup; its text is the one line the node prints."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: ROS type, default, description and constraints."""

    name: str
    default: Any
    description: str
    low: float | None = None          # inclusive range for numbers (declared in the descriptor)
    high: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None   # extra check: returns the reason or None
    dynamic: bool = False             # may change while running

    @property
    def ros_type(self) -> int:
        if isinstance(self.default, bool):
            return ParameterType.PARAMETER_BOOL
        if isinstance(self.default, int):
            return ParameterType.PARAMETER_INTEGER
        if isinstance(self.default, float):
            return ParameterType.PARAMETER_DOUBLE
        return ParameterType.PARAMETER_STRING

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" One of: {', '.join(self.choices)}."
        d = ParameterDescriptor(name=self.name, type=self.ros_type, description=text,
                                read_only=not self.dynamic)
        if self.low is not None and self.ros_type == ParameterType.PARAMETER_INTEGER:
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
        elif self.low is not None and self.ros_type == ParameterType.PARAMETER_DOUBLE:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.low),
                                                         to_value=float(self.high), step=0.0)]
        if self.choices:
            d.additional_constraints = f"one of: {', '.join(self.choices)}"
        return d


def _device_check(value: str) -> str | None:
    if not _DEVICE_RE.match(value):
        return "valid choices: auto, cpu, cuda, cuda:N"
    return None


def _classes_check(value: str) -> str | None:
    items = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in items
           if not (re.fullmatch(r"\d+", s) and int(s) < 256) and not re.fullmatch(r"[A-Za-z_][\w\-]*", s)]
    if bad:
        return f"entries must be class ids 0..255 or class names, got {bad}"
    return None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("weights", "", "Checkpoint file (.pt); empty: the bundled default checkpoint."),
    ParamSpec("device", "auto", "Where the network runs: auto (CUDA if available, else CPU with a warning), "
              "cpu, cuda, cuda:N.", check=_device_check),
    ParamSpec("precision", "fp32", "Network precision (fp16 needs CUDA).", choices=PRECISION_CHOICES),
    ParamSpec("num_threads", 0, "CPU threads for the network; 0: half the CPU cores (at least 1).", 0, 256),
    ParamSpec("input_width", 0, "Network input width in pixels; 0: the checkpoint's.", 0, 8192),
    ParamSpec("input_height", 0, "Network input height in pixels; 0: the checkpoint's.", 0, 8192),
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
)

_BY_NAME = {p.name: p for p in PARAMS}
_MAX_GRID_CELLS = 16_000_000


def spec(name: str) -> ParamSpec:
    return _BY_NAME[name]


def validate(name: str, value: Any, values: dict[str, Any] | None = None) -> str | None:
    """The reason ``value`` is invalid for parameter ``name`` (``None`` when it is fine).

    ``values`` (all current values) allows cross-parameter checks such as the grid size.
    """
    p = _BY_NAME.get(name)
    if p is None:
        return None
    if p.low is not None and not (p.low <= value <= p.high):
        return f"{name}={value!r} is out of range [{p.low}, {p.high}]"
    if p.choices and value not in p.choices:
        return f"{name}={value!r} is not valid; valid choices: {', '.join(p.choices)}"
    if p.check is not None:
        reason = p.check(value)
        if reason:
            return f"{name}={value!r} is not valid; {reason}"
    if values is not None and name.startswith("grid_"):
        v = dict(values)
        v[name] = value
        cells = ((2 * v["grid_extent_side_m"] / v["grid_resolution_m"])
                 * (v["grid_extent_forward_m"] / v["grid_resolution_m"]))
        if cells > _MAX_GRID_CELLS:
            return (f"{name}={value!r} makes ~/drivable_grid {cells:.3g} cells (limit {_MAX_GRID_CELLS}); "
                    "use a coarser grid_resolution_m or smaller extents")
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_TYPE_NAMES = {ParameterType.PARAMETER_BOOL: "a boolean (true/false)",
               ParameterType.PARAMETER_INTEGER: "an integer",
               ParameterType.PARAMETER_DOUBLE: "a floating-point number (e.g. 1.0)",
               ParameterType.PARAMETER_STRING: "a string"}


def _declare_error(p: ParamSpec, exc: ParameterException) -> str:
    """One readable line for rclpy's rejection of an override (wrong type or out of range)."""
    text = _one_line(exc)
    wrong_type = re.search(r"to '(.*)' of type '(\w+)', expecting type", text)
    if wrong_type:
        return (f"invalid parameter {p.name}={wrong_type.group(1)!r}: expected {_TYPE_NAMES[p.ros_type]}, "
                f"got {wrong_type.group(2).lower()}")
    value = re.search(r"Invalid parameter value \((.*?)\) for parameter", text)
    if value and p.low is not None:
        return f"invalid parameter {p.name}={value.group(1)}: out of range [{p.low}, {p.high}]"
    return f"invalid parameter {p.name}: {text}"


def declare_parameters(node: Node) -> dict[str, Any]:
    """Declare every parameter on ``node`` and return their values, validated.

    Raises :class:`ConfigError` (one line) for a wrong type, an out-of-range value or any
    other invalid setting, whether it comes from ``-p`` overrides or a params file.
    """
    values: dict[str, Any] = {}
    for p in PARAMS:
        try:
            values[p.name] = node.declare_parameter(p.name, p.default, p.descriptor()).value
        except ParameterException as exc:
            raise ConfigError(_declare_error(p, exc)) from None
    for p in PARAMS:
        reason = validate(p.name, values[p.name], values)
        if reason:
            raise ConfigError(f"invalid parameter {reason}")
    return values


def markdown_table() -> str:
    """The README's parameter table, generated from :data:`PARAMS` so the docs cannot drift.

    Regenerate the README section with ``python -m roadseg_ros.nodes.params``.
    """
    rows = ["| parameter | type | default | range / choices | runtime | description |",
            "|---|---|---|---|---|---|"]
    type_names = {ParameterType.PARAMETER_BOOL: "bool", ParameterType.PARAMETER_INTEGER: "int",
                  ParameterType.PARAMETER_DOUBLE: "double", ParameterType.PARAMETER_STRING: "string"}
    for p in PARAMS:
        if p.choices:
            limits = ", ".join(p.choices)
        elif p.low is not None:
            limits = f"[{p.low}, {p.high}]"
        else:
            limits = ""
        default = f'"{p.default}"' if isinstance(p.default, str) else str(p.default).lower()
        rows.append(f"| `{p.name}` | {type_names[p.ros_type]} | `{default}` | {limits} | "
                    f"{'yes' if p.dynamic else 'no'} | {p.description.replace('|', '/')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
