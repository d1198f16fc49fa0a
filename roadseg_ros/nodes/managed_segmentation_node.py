"""The segmentation node as a managed (lifecycle) node, for graphs brought up by a lifecycle manager.

Same parameters, topics and products as :mod:`roadseg_ros.nodes.segmentation_node` (it is
that node's wiring, driven by the standard ROS 2 state machine instead of the constructor),
plus ``autostart``. The states, as Nav2 and yolo_ros users expect them:

* **unconfigured** (at start): parameters declared, nothing loaded, no topics.
* ``configure`` loads the network (the slow, fallible step: weights, device, backend) and
  creates the output publishers; a failure (missing or broken weights, say) logs one error
  line and leaves the node **unconfigured**, so a manager can report it or retry.
* ``activate`` latches ``~/classes``, subscribes to the camera and starts the worker:
  products are published from now on.
* ``deactivate`` unsubscribes, stops the worker (the frame in progress is finished, then
  the thread ends) and silences the outputs; the network stays loaded, so ``activate`` is
  quick again. The frame counters start afresh at each activation.
* ``cleanup`` destroys the publishers and drops the network (its memory is freed).
* ``shutdown`` from any state does whatever of the above is still needed.

``autostart: true`` runs configure and activate in the constructor, so the node works
without a manager (``ros2 launch roadseg_ros roadseg.launch.py managed:=true`` sets it);
a failure there is then a configuration error like the plain node's (exit status 2).

Run: ``python -m roadseg_ros.nodes.managed_segmentation_node --ros-args -p weights:=model.pt``
(``ros2 run roadseg_ros managed_segmentation_node`` on a ROS install), then e.g.
``ros2 lifecycle set /roadseg configure`` and ``ros2 lifecycle set /roadseg activate``.
"""

from __future__ import annotations

import sys
from typing import Any

from roadseg_ros.config import ConfigError, one_line
from roadseg_ros.nodes.common import run_node
from roadseg_ros.nodes.compat import (
    LifecycleNodeMixin,
    LifecycleState,
    TransitionCallbackReturn,
    lifecycle_state_label,
)
from roadseg_ros.nodes.params import MANAGED_SEGMENTATION, declare_parameters
from roadseg_ros.nodes.segmentation_node import DEFAULT_NODE_NAME, SegmentationNode
from roadseg_ros.runtime import configure_process

__all__ = ["ManagedSegmentationNode", "main"]

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class ManagedSegmentationNode(LifecycleNodeMixin, SegmentationNode):
    """The segmentation node under lifecycle control; see the module docstring.

    ``configure_error`` holds the reason of the last failed configure (``None`` after a
    successful one). With ``autostart``, the constructor raises :class:`ConfigError` when
    the node cannot reach the active state.
    """

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, **node_kwargs: Any) -> None:
        self.configure_error: str | None = None
        self._report_configure_errors = True
        SegmentationNode.__init__(self, node_name, **node_kwargs)   # declares the parameters only: _setup
        LifecycleNodeMixin.__init__(self)
        if self._cfg["autostart"]:
            try:
                self._autostart()
            except BaseException:   # nobody else holds the half-started node
                self.destroy_node()
                raise

    def _setup(self) -> None:
        """Unconfigured: the parameters exist (``ros2 param`` works), nothing is loaded yet."""
        self.segmenter = None
        self._cfg = declare_parameters(self, MANAGED_SEGMENTATION)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _autostart(self) -> None:
        """Configure and activate now; a failure is the constructor's ConfigError (one line, once)."""
        self._report_configure_errors = False   # raised instead, and run_node prints it
        try:
            if self.trigger_configure() != SUCCESS:
                raise ConfigError(self.configure_error or "configure failed")
        finally:
            self._report_configure_errors = True
        if self.trigger_activate() != SUCCESS:
            raise ConfigError("activate failed after a successful configure")

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the network and create the (silent until active) output publishers."""
        try:
            self._load_model()
            self._create_outputs(self.create_lifecycle_publisher)
        except Exception as exc:   # rclpy would turn an escaping exception into an unlogged ERROR
            self._release()
            self.configure_error = one_line(exc) if isinstance(exc, ConfigError) \
                else f"configure failed: {type(exc).__name__}: {one_line(exc)}"
            if self._report_configure_errors:
                self.get_logger().error(self.configure_error)
            return FAILURE
        self.configure_error = None
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, latch ``~/classes``, then subscribe and start the worker."""
        result = super().on_activate(state)
        if result != SUCCESS:
            return result
        self._publish_classes()
        self._start_processing()
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker (it finishes its frame), then silence the publishers."""
        self._stop_processing()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the publishers and drop the network."""
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """After an unexpected failure in a transition: back to unconfigured with nothing held."""
        self._stop_processing()
        self._release()
        return SUCCESS

    # ------------------------------------------------------------------ helpers
    def _release(self) -> None:
        for pub in [*getattr(self, "_pubs", {}).values(), getattr(self, "_diag_pub", None),
                    getattr(self, "_classes_pub", None)]:
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._pubs, self._diag_pub, self._classes_pub = {}, None, None
        self.segmenter = None

    @property
    def lifecycle_state(self) -> str:
        """The current state's label (``unconfigured``, ``inactive``, ``active``, ``finalized``)."""
        return lifecycle_state_label(self)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``managed_segmentation_node``; returns the process exit status."""
    configure_process()
    return run_node("managed_segmentation_node", ManagedSegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
