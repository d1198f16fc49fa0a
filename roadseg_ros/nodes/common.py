"""Small helpers shared by the ROS nodes.

Kept apart from :mod:`roadseg_ros.nodes.params` (the segmentation node's typed, validated
parameter table): the camera source, recorder, CARLA bridge and evaluator only need their
plain defaults declared and read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rclpy.node import Node

__all__ = ["declare_defaults"]


def declare_defaults(node: Node, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Declare every ``defaults`` entry as a parameter of ``node`` and return the values in effect.

    Each node used to spell out the same declare-then-read loop; one helper keeps them in step.
    The values come back from the node, not from ``defaults``, so overrides given at start-up
    (launch files, ``--ros-args -p``, ``parameter_overrides``) win; the parameter type is the
    default's type, so ROS rejects an override of the wrong type.
    """
    for name, value in defaults.items():
        node.declare_parameter(name, value)
    return {name: node.get_parameter(name).value for name in defaults}
