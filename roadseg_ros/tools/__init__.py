"""Every console tool, each a thin argument parser over the engine, and their one exit contract.

``roadseg-train`` (:mod:`.train`, over :mod:`roadseg_ros.training`), ``roadseg-eval``
(:mod:`.evaluate`, over :mod:`roadseg_ros.evaluation`), ``roadseg-infer``, ``roadseg-export``,
``roadseg-carla-collect`` and ``roadseg-demo`` (:mod:`.demo`, the one that starts ROS nodes).
The ROS nodes' executables live in :mod:`roadseg_ros.nodes`.

Exit statuses, the same for every tool and node (the nodes' are kept by
``roadseg_ros.nodes.common.run_node``), so a script or a launch system can tell "you
configured me wrong" from "I failed while running":

* 0 - done;
* 2 (:data:`CONFIG_ERROR`) - a configuration problem (a bad option value, a missing
  weights file, ...): :class:`~roadseg_ros.config.ConfigError`, or argparse's own usage
  errors; one line on stderr;
* 1 (:data:`FAILED`) - an expected failure while running (the simulator went away, an
  input could not be read, a check did not pass), one line too;
* 130 - interrupted (Ctrl-C).

This module stays free of torch and ROS: every tool imports it before anything heavy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from roadseg_ros.config import ConfigError, one_line

__all__ = ["CONFIG_ERROR", "FAILED", "ToolError", "report", "run_tool"]

#: Exit status of a configuration problem found before the work could start.
CONFIG_ERROR = 2
#: Exit status of an expected failure while the tool ran.
FAILED = 1


class ToolError(Exception):
    """An expected failure while a tool runs; its text is the one line to print (exit status 1)."""


def report(prog: str, problem: object, status: int = CONFIG_ERROR) -> int:
    """Print ``PROG: error: PROBLEM`` as one line on stderr (whitespace folded, as argparse's own
    errors read) and return ``status``, so a tool can ``return report(...)``."""
    print(f"{prog}: error: {one_line(problem)}", file=sys.stderr)
    return status


def run_tool(prog: str, body: Callable[[], int], failures: tuple[type[Exception], ...] = ()) -> int:
    """Run a tool's ``body`` and keep the exit contract.

    ``body`` raises :class:`~roadseg_ros.config.ConfigError` for a configuration problem
    (-> :data:`CONFIG_ERROR`), :class:`ToolError` or one of ``failures`` for an expected
    failure (-> :data:`FAILED`); either becomes one line on stderr. Anything else is a bug
    and keeps its traceback.
    """
    try:
        return body()
    except ConfigError as exc:
        return report(prog, exc, CONFIG_ERROR)
    except (ToolError, *failures) as exc:
        return report(prog, exc, FAILED)
