"""Parameter tables: the README's table is generated from them, and every node declares from one.

The nodes' own tests check the segmentation node's declarations over DDS; here each table
is declared on a plain rclpy node, so every node's parameters are typed, described and
validated the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from rclpy.context import Context  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from roadseg_ros.config import ConfigError  # noqa: E402
from roadseg_ros.nodes.params import (  # noqa: E402
    CAMERA_SOURCE,
    CARLA_BRIDGE,
    CARLA_EVALUATOR,
    SEGMENTATION,
    TABLES,
    ParamSpec,
    declare_parameters,
    markdown_table,
    yaml_text,
)
from roadseg_ros.pipeline import OUTPUTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_readme_parameter_table_is_current() -> None:
    text = README.read_text()
    block = re.search(r"<!-- params:begin[^>]*-->\n(.*?)\n<!-- params:end -->", text, re.S)
    assert block, "README.md has no params:begin/params:end block"
    assert block.group(1) == markdown_table(), (
        "README parameter table is stale: regenerate it with ./dev.sh run python -m roadseg_ros.nodes.params")


def test_every_pipeline_output_has_a_publish_flag() -> None:
    """One dynamic ``publish_<output>`` per pipeline output, in the pipeline's order: the flags come
    from ``pipeline.OUTPUTS``, so a new output gets its flag (and README row) without a second list."""
    flags = [p for p in SEGMENTATION.params if p.name.startswith("publish_")]
    assert [p.name for p in flags] == [f"publish_{name}" for name in OUTPUTS]
    assert all(p.dynamic and p.default is True for p in flags)


def test_a_range_renders_the_same_everywhere() -> None:
    p = ParamSpec("alpha", 0.5, "Blend weight.", 0.0, 1.0, dynamic=True)
    assert (p.type_name, p.limits_text()) == ("double", "range [0.0, 1.0]")
    assert p.help_text() == "Blend weight. Range [0.0, 1.0]."
    assert p.markdown_row() == "| `alpha` | double | `0.5` | range [0.0, 1.0] | yes | Blend weight. |"
    assert p.yaml_lines(0.25) == ["    # Blend weight. Range [0.0, 1.0]. (dynamic)", "    alpha: 0.25"]
    assert p.help_line() == "  alpha: double = 0.5  Blend weight. Range [0.0, 1.0]. (dynamic)"
    d = p.descriptor()
    assert d.description == "Blend weight." and not d.read_only and not d.additional_constraints
    assert [(r.from_value, r.to_value) for r in d.floating_point_range] == [(0.0, 1.0)]
    assert p.problem(1.5) == "alpha=1.5 is out of range [0.0, 1.0]" and p.problem(1.0) is None


def test_choices_render_the_same_everywhere() -> None:
    p = ParamSpec("mode", "fast", "How | when.", choices=("fast", "exact"))
    assert (p.type_name, p.limits_text()) == ("string", "one of: fast, exact")
    assert p.markdown_row() == '| `mode` | string | `"fast"` | one of: fast, exact | no | How / when. |'
    assert p.yaml_lines("exact") == ["    # How | when. One of: fast, exact.", '    mode: "exact"']
    assert p.help_line() == '  mode: string = "fast"  How | when. One of: fast, exact.'
    d = p.descriptor()
    assert d.read_only and d.description == "How | when. One of: fast, exact."
    assert d.additional_constraints == "one of: fast, exact"
    assert p.problem("slow") == "mode='slow' is not valid; valid choices: fast, exact"


def test_unlimited_parameters_render_no_limits_and_bad_limits_are_refused() -> None:
    p = ParamSpec("ids", [-1], "Class ids.")
    assert (p.type_name, p.limits_text(), p.help_text()) == ("int[]", "", "Class ids.")
    assert p.markdown_row() == "| `ids` | int[] | `[-1]` |  | no | Class ids. |"
    assert p.help_line() == "  ids: int[] = [-1]  Class ids."
    with pytest.raises(ValueError, match="low and high together"):
        ParamSpec("n", 1, "N.", low=0)
    with pytest.raises(ValueError, match="not both"):
        ParamSpec("n", "a", "N.", 0, 1, choices=("a",))


@pytest.mark.parametrize("table", list(TABLES.values()), ids=list(TABLES))
def test_every_table_shows_one_type_name_and_one_limits_text(table) -> None:
    markdown, yaml_doc = markdown_table(table), yaml_text(table)
    for p in table.params:
        row = p.markdown_row()
        assert row in markdown and f" | {p.type_name} | " in row and f" | {p.limits_text()} | " in row
        assert p.help_line().startswith(f"  {p.name}: {p.type_name} = ") and p.help_text() in p.help_line()
        lines = p.yaml_lines(p.default)
        assert "\n".join(lines) in yaml_doc
        comment = " ".join(line.removeprefix("    # ") for line in lines[:-1])
        assert comment == p.help_text() + (" (dynamic)" if p.dynamic else "")
        assert p.help_text().endswith(f"{p.limits_text()[1:]}." if p.limits_text() else p.description)


def test_every_parameter_is_documented_once() -> None:
    table = markdown_table()
    for p in SEGMENTATION.params:
        assert table.count(f"| `{p.name}` |") == 1


def test_config_yaml_is_generated_from_the_declarations() -> None:
    """config/roadseg.yaml: exactly the declared parameters, in order, with their descriptions and values
    of the declared types; only the values may be edited for a deployment."""
    text = (ROOT / "config" / "roadseg.yaml").read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert list(params) == SEGMENTATION.names
    for p in SEGMENTATION.params:
        assert type(params[p.name]) is type(p.default), p.name
        assert SEGMENTATION.validate(p.name, params[p.name], params) is None, p.name
    assert text == yaml_text(SEGMENTATION, params), (
        "config/roadseg.yaml is stale: regenerate it with "
        "./dev.sh run python -m roadseg_ros.nodes.params --yaml > config/roadseg.yaml")


def test_every_node_executable_has_a_table() -> None:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"set\(ROADSEG_EXECUTABLES(.*?)\)", cmake, re.S).group(1)
    nodes = {entry.split("=")[0] for entry in re.findall(r'"([^"]+)"', block) if ".nodes." in entry}
    assert nodes == set(TABLES)


@pytest.fixture()
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


@pytest.mark.parametrize("table", list(TABLES.values()), ids=list(TABLES))
def test_every_table_declares_typed_described_parameters(context, table) -> None:
    node = Node("declared", context=context)
    try:
        values = declare_parameters(node, table)
        assert values == table.defaults()
        for p in table.params:
            assert p.description.strip(), (table.executable, p.name)
            d = node.describe_parameter(p.name)
            assert d.type == p.ros_type and d.description and d.read_only == (not p.dynamic)
    finally:
        node.destroy_node()


@pytest.mark.parametrize("table, name, value, words", [
    (CAMERA_SOURCE, "reliability", "sometimes", "best_effort"),
    (CAMERA_SOURCE, "rate_hz", 0.0, "out of range"),
    (CAMERA_SOURCE, "camera_matrix", [1.0, 2.0], "9 values"),
    (CARLA_EVALUATOR, "drivable_classes", [300], "0..254"),
    (CARLA_EVALUATOR, "carla_labels", "rgb", "palette"),
    (CARLA_BRIDGE, "fixed_delta_seconds", 0.0, "synchronous_mode needs fixed_delta_seconds > 0"),
    (SEGMENTATION, "device", "tpu", "cuda:N"),
])
def test_invalid_values_are_one_line_config_errors(context, table, name, value, words) -> None:
    node = Node("invalid", context=context, parameter_overrides=[Parameter(name, value=value)])
    try:
        with pytest.raises(ConfigError, match=re.escape(words)) as err:
            declare_parameters(node, table)
        assert "\n" not in str(err.value) and name in str(err.value)
    finally:
        node.destroy_node()
