"""nodes.common.run_node: the one main() of every node, and its exit statuses."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.node import Node  # noqa: E402

from roadseg_ros.config import ConfigError  # noqa: E402
from roadseg_ros.nodes.common import run_node  # noqa: E402


class _Once(Node):
    def __init__(self) -> None:
        super().__init__("run_node_test")
        self.spins = 0
        self.closed = False


def _bad_config() -> Node:
    raise ConfigError("invalid parameter x=1: out of range\n[0, 0]")


def test_exit_statuses(capsys) -> None:
    seen: list[_Once] = []

    def make() -> _Once:
        seen.append(_Once())
        return seen[-1]

    def until(node: _Once) -> bool:
        node.spins += 1
        return node.spins >= 3

    def on_exit(node: _Once) -> None:
        node.closed = True

    assert run_node("t", make, [], until=until, on_exit=on_exit) == 0
    assert seen[-1].spins == 3 and seen[-1].closed and not rclpy.ok()
    assert run_node("t", _bad_config, []) == 2
    assert capsys.readouterr().err == "t: error: invalid parameter x=1: out of range [0, 0]\n"

    def fail(node: Node) -> None:
        raise RuntimeError("simulator not reachable")

    assert run_node("t", make, [], start=fail, on_exit=on_exit, failures=(RuntimeError,)) == 1
    assert "t: error: simulator not reachable" in capsys.readouterr().err and seen[-1].closed
    assert run_node("t", make, ["--ros-args", "-p"]) == 2          # malformed --ros-args
    assert capsys.readouterr().err.startswith("t: error: ")
    assert not rclpy.ok()
