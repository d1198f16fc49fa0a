"""roadseg_ros.nodes.compat on whichever distro this environment has (CI runs Kilted and Jazzy).

A bare lifecycle node (no network) stands for every user of the mixin; its lifecycle
services are called over DDS from a second node, as ``ros2 lifecycle set`` or a manager would.
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.lifecycle import LifecycleNodeMixin as RclpyLifecycleNodeMixin  # noqa: E402
from rclpy.node import Node  # noqa: E402

from roadseg_ros.nodes import compat  # noqa: E402
from roadseg_ros.nodes.compat import LifecycleNodeMixin, TransitionCallbackReturn  # noqa: E402


class BareLifecycleNode(LifecycleNodeMixin, Node):
    """The smallest managed node: every transition succeeds and is counted."""

    def __init__(self, name: str, **kwargs) -> None:
        Node.__init__(self, name, **kwargs)
        LifecycleNodeMixin.__init__(self)
        self.configured = 0

    def on_configure(self, state) -> TransitionCallbackReturn:
        self.configured += 1
        return TransitionCallbackReturn.SUCCESS


def _call(nt, client, request):
    future = client.call_async(request)
    nt.wait_for(future.done, 20, f"a reply from {client.srv_name}")
    return future.result()


@pytest.fixture()
def bare(ros_context, nt, request):
    ns = f"/compat_{request.node.name.split('[')[0][-20:]}"
    node = BareLifecycleNode("bare", namespace=ns, context=ros_context)
    caller = Node("caller", namespace=ns, context=ros_context)
    change = caller.create_client(ChangeState, f"{ns}/bare/change_state")
    get = caller.create_client(GetState, f"{ns}/bare/get_state")
    spinner = nt.Spinner(ros_context, node, caller)
    nt.wait_for(lambda: change.service_is_ready() and get.service_is_ready(), 20, "the lifecycle services")
    yield node, change, get, spinner
    spinner.stop()
    caller.destroy_node()
    node.destroy_node()


def test_this_rclpy_still_has_the_step_compat_overrides() -> None:
    assert hasattr(RclpyLifecycleNodeMixin, compat._CHANGE_STATE)  # noqa: SLF001


def test_an_impossible_transition_over_the_service_fails_and_the_node_stays_up(bare, nt) -> None:
    """Activate (by id) while unconfigured: a failed reply, on Jazzy too (there rclpy's error would
    escape the service callback and end the spinning thread)."""
    node, change, get, spinner = bare
    reply = _call(nt, change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE)))
    assert reply.success is False
    assert spinner._thread.is_alive()  # noqa: SLF001 - the executor survived the callback
    assert _call(nt, get, GetState.Request()).current_state.label == "unconfigured"
    # ... and the node still takes a possible one.
    reply = _call(nt, change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
    assert reply.success is True and node.configured == 1
    assert _call(nt, get, GetState.Request()).current_state.label == "inactive"
    assert compat.lifecycle_state_label(node) == "inactive"


def test_an_impossible_trigger_returns_an_error_instead_of_raising(bare) -> None:
    node = bare[0]
    assert node.trigger_activate() == TransitionCallbackReturn.ERROR
    assert compat.lifecycle_state_label(node) == "unconfigured"
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert compat.lifecycle_state_label(node) == "unconfigured"
