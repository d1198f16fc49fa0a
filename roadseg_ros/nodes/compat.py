"""What differs between the ROS 2 distros this package is tested on (Kilted and Jazzy), in one place.

Nodes import the rclpy pieces listed here from this module rather than from rclpy, so a
difference between distros is handled once and tested on both (``./dev.sh test`` and
``ROADSEG_ROS_DISTRO=jazzy ./dev.sh test``; test/nodes/test_compat.py).

Found so far, by running the whole suite on both:

* **An impossible lifecycle transition** (``activate`` while unconfigured, say, asked for
  by id through ``~/change_state`` or by ``trigger_activate()``): Kilted's rclpy (9.x)
  logs it and answers failure; Jazzy's (7.x) lets the ``RCLError`` of the state machine
  escape from the service callback, which ends the executor's ``spin`` and so takes the
  node down. :class:`LifecycleNodeMixin` gives Kilted's answer on both.

Everything else the package uses (message info in subscription callbacks, graph queries,
QoS, parameters, ``rclpy.lifecycle`` names) behaves the same on both.
"""

from __future__ import annotations

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNodeMixin as _RclpyLifecycleNodeMixin
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

__all__ = ["LifecycleNodeMixin", "LifecycleState", "TransitionCallbackReturn", "lifecycle_state_label"]

# rclpy's one step that runs a transition (used by its change_state service and every trigger_*).
_CHANGE_STATE = "_LifecycleNodeMixin__change_state"


class LifecycleNodeMixin(_RclpyLifecycleNodeMixin):
    """rclpy's lifecycle mixin, with an impossible transition answered as a failure on every distro.

    Overrides rclpy's private transition step (by its mangled name, the only hook both the
    service and the ``trigger_*`` methods go through); where a distro already catches the
    error, as Kilted does, the override never sees one. Should a future rclpy rename that
    step, the override is simply not called: test/nodes/test_compat.py then tells whether
    that distro still needs it.
    """

    def _LifecycleNodeMixin__change_state(self, transition_id: int) -> TransitionCallbackReturn:  # noqa: N802
        try:
            return getattr(super(), _CHANGE_STATE)(transition_id)
        except _rclpy.RCLError as exc:
            self.get_logger().error(f"lifecycle transition {transition_id} is not possible from state "
                                    f"'{lifecycle_state_label(self)}': {' '.join(str(exc).split())}")
            return TransitionCallbackReturn.ERROR


def lifecycle_state_label(node: _RclpyLifecycleNodeMixin) -> str:
    """The lifecycle node's current state label (``unconfigured``, ``inactive``, ``active``, ...)."""
    return node._state_machine.current_state[1]  # noqa: SLF001 - the same private field on both distros
