"""nodes.common.run_node: the one main() of every node, and its exit statuses."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.node import Node  # noqa: E402

from roadseg_ros.config import ConfigError  # noqa: E402
from roadseg_ros.nodes.common import run_node, undeclared_overrides, wants_help  # noqa: E402


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


def _never() -> Node:
    raise AssertionError("--help must not create the node")


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--ros-args", "-p", "seed:=1", "--", "--help"]])
def test_help_prints_usage_and_starts_nothing(argv, capsys) -> None:
    assert run_node("camera_source", _never, argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ros2 run roadseg_ros camera_source")
    # Each parameter's line as the README and the YAML word it: type name, literal, limits.
    assert "\n  rate_hz: double = 10.0  Frames published per second (a recording: only when bag_rate " \
           "is 0). Range [0.01, 1000.0].\n" in out
    assert '\n  reliability: string = "reliable"  Reliability of the two publishers. One of: reliable, ' \
           "best_effort.\n" in out
    assert "\n  wait_for_subscribers: bool = false  " in out
    assert not rclpy.ok()


def test_help_inside_ros_args_is_not_ours() -> None:
    assert not wants_help(["--ros-args", "-p", "x:=--help"]) and not wants_help([])
    assert wants_help(["--ros-args", "-p", "x:=1", "--", "-h"])


class _Declares(Node):
    def __init__(self) -> None:
        super().__init__("declares_timeout_s")
        self.declare_parameter("timeout_s", 10.0)


def test_undeclared_overrides_are_warned_once_by_name(capfd) -> None:
    seen: list[list[str]] = []

    def make() -> _Declares:
        return _Declares()

    def until(node: _Declares) -> bool:
        seen.append(undeclared_overrides(node))
        return True

    argv = ["--ros-args", "-p", "timeout:=2.0", "-p", "timeout_s:=3.0", "-p", "colour:=red"]
    assert run_node("t", make, argv, until=until) == 0
    assert seen == [["colour", "timeout"]]
    err = capfd.readouterr().err
    assert err.count("parameter 'timeout' is not a parameter of declares_timeout_s") == 1
    assert "did you mean 'timeout_s'?" in err and "parameter 'colour' is not a parameter" in err
    assert "'timeout_s' is not" not in err
