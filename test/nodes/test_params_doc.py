"""The README's parameter table is the one generated from the declarations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
from roadseg_ros.nodes.params import PARAMS, markdown_table  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_parameter_table_is_current() -> None:
    text = README.read_text()
    block = re.search(r"<!-- params:begin[^>]*-->\n(.*?)\n<!-- params:end -->", text, re.S)
    assert block, "README.md has no params:begin/params:end block"
    assert block.group(1) == markdown_table(), (
        "README parameter table is stale: regenerate it with ./dev.sh run python -m roadseg_ros.nodes.params")


def test_every_parameter_is_documented_once() -> None:
    table = markdown_table()
    for p in PARAMS:
        assert table.count(f"| `{p.name}` |") == 1
