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
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from roadseg_ros.config import ConfigError

__all__ = ["run_node", "one_line", "EngineLogHandler"]

N = TypeVar("N", bound=Node)


def one_line(text: object) -> str:
    """``text`` with its whitespace (newlines from rcl, say) folded into single spaces."""
    return " ".join(str(text).split())


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
    try:
        rclpy.init(args=list(args) if args is not None else None)
    except Exception as exc:  # malformed --ros-args and the like
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    node: N | None = None
    try:
        node = make()
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
