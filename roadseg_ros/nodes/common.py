"""The one ``main()`` of every node: ROS start-up, signals, clean-up and exit statuses.

Each node used to spell this out, and they disagreed: a bad parameter ended one node
with status 2 and another with 1. Here it is once. Exit statuses:

* 0 - stopped normally (Ctrl-C, SIGTERM, ``ros2 launch`` shutting down, or the node's own end);
* 2 - a configuration problem (:class:`~roadseg_ros.config.ConfigError`, or arguments
  rclpy cannot parse), reported as one line on stderr before any work started;
* 1 - a failure while running that the node declares expected (``failures``), one line too.

``rclpy.init`` is paired with ``try_shutdown`` in a ``finally`` block rather than used
as ``with rclpy.init()``: the context manager exists from Jazzy on, and the package
supports Humble too.

Two things every node gets here rather than in its own code: ``--help`` (usage and the
node's parameter table, printed before rclpy starts, so asking for help never publishes),
and one warning per parameter override the node does not declare (rclpy drops those
silently, so ``-p timeout:=2.0`` for ``timeout_s`` would otherwise look accepted).
"""

from __future__ import annotations

import difflib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from roadseg_ros.config import ConfigError, one_line
from roadseg_ros.nodes.params import TABLES

__all__ = ["run_node", "EngineLogHandler", "wants_help", "usage", "undeclared_overrides",
           "warn_undeclared_overrides"]

N = TypeVar("N", bound=Node)


def run_node(name: str, make: Callable[[], N], args: Sequence[str] | None = None, *,
             start: Callable[[N], None] | None = None, until: Callable[[N], bool] | None = None,
             linger_s: float = 0.0, on_exit: Callable[[N], None] | None = None,
             failures: tuple[type[Exception], ...] = ()) -> int:
    """Initialise rclpy, create the node with ``make()``, spin it, clean up; the exit status.

    ``start(node)`` runs after creation (e.g. connecting to a simulator), so a failure
    there still reaches ``on_exit``. ``until(node)``: spin until it is true, then keep
    spinning ``linger_s`` seconds so reliable readers can fetch the last messages;
    without it, spin until shutdown. ``on_exit(node)`` runs before the node is destroyed,
    however the run ended.
    """
    argv = list(sys.argv[1:] if args is None else args)
    if wants_help(argv):
        module = sys.modules.get(getattr(make, "__module__", ""))
        print(usage(name, module.__doc__ if module is not None else None))
        return 0
    try:
        rclpy.init(args=list(args) if args is not None else None)
    except Exception as exc:  # malformed --ros-args and the like
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    node: N | None = None
    try:
        node = make()
        warn_undeclared_overrides(node)
        if start is not None:
            start(node)
        if until is None:
            rclpy.spin(node)
        else:
            while rclpy.ok() and not until(node):
                rclpy.spin_once(node, timeout_sec=0.1)
            linger_until = time.monotonic() + linger_s
            while rclpy.ok() and time.monotonic() < linger_until:
                rclpy.spin_once(node, timeout_sec=0.1)
        return 0
    except ConfigError as exc:
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except failures as exc:
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            if on_exit is not None:
                on_exit(node)
            node.destroy_node()
        rclpy.try_shutdown()


def wants_help(argv: Sequence[str]) -> bool:
    """Whether ``-h``/``--help`` is among the node's own arguments (outside ``--ros-args ... --``)."""
    in_ros_args = False
    for token in argv:
        if token == "--ros-args":
            in_ros_args = True
        elif token == "--" and in_ros_args:
            in_ros_args = False
        elif not in_ros_args and token in ("-h", "--help"):
            return True
    return False


def usage(name: str, doc: str | None = None) -> str:
    """What ``NODE --help`` prints: how to run it, what it does, and its parameters from ``nodes.params``."""
    lines = [f"usage: ros2 run roadseg_ros {name} [--ros-args [-p NAME:=VALUE ...] [--params-file FILE] "
             "[-r FROM:=TO ...]]"]
    if doc:
        lines += ["", doc.strip().split("\n\n")[0]]
    table = TABLES.get(name)
    if table is not None:
        lines += ["", "parameters (NAME: type = default  description):"]
        lines += [p.help_line() for p in table.params]
    return "\n".join(lines)


def undeclared_overrides(node: Node) -> list[str]:
    """Names given as parameter overrides (``-p``, params file, launch) that ``node`` did not declare.

    rclpy keeps the overrides it was started with (``Node._parameter_overrides``: global and
    node-specific ``--ros-args``, plus ``parameter_overrides=``) and uses one only when the
    node declares that name; with ``allow_undeclared_parameters=False`` the rest are dropped
    without a word. Call after the node declared everything.
    """
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    return sorted(n for n in overrides if not node.has_parameter(n) and not n.startswith("qos_overrides."))


def warn_undeclared_overrides(node: Node) -> list[str]:
    """Log one warning per undeclared override, naming it and the closest declared parameter."""
    unknown = undeclared_overrides(node)
    declared = list(getattr(node, "_parameters", {}))
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        node.get_logger().warning(f"parameter '{name}' is not a parameter of {node.get_name()} and is "
                                  f"ignored{hint}")
    return unknown


class EngineLogHandler(logging.Handler):
    """Forwards the engine's Python log records (``logging.getLogger("roadseg_ros")``) to a node's
    logger, so they reach ``/rosout`` and the launch log like the node's own messages."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        log = self._logger.error if record.levelno >= logging.ERROR else \
            self._logger.warning if record.levelno >= logging.WARNING else self._logger.info
        log(record.getMessage())
