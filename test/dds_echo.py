"""Second-process subscriber for the cross-process DDS tests.

Run as ``python test/dds_echo.py TOPIC TIMEOUT_S``: subscribes to a DrivableArea topic,
prints ``READY`` once its subscription exists, then prints the first received message as
one JSON line (every field, recursively) and exits 0; exits 2 on timeout.
"""

from __future__ import annotations

import json
import sys
import time


def to_plain(msg: object) -> object:
    """Convert a ROS message (or a value inside one) to JSON-able Python data."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: to_plain(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)) or type(msg).__name__ == "ndarray" or hasattr(msg, "typecode"):
        return [to_plain(v) for v in msg]
    if isinstance(msg, float) and msg != msg:
        return "NaN"
    return msg


def main() -> int:
    topic, timeout_s = sys.argv[1], float(sys.argv[2])
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from roadseg_ros.msg import DrivableArea

    rclpy.init()
    node = rclpy.create_node("dds_echo")
    received: list[DrivableArea] = []
    node.create_subscription(DrivableArea, topic, received.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    print("READY", flush=True)
    deadline = time.monotonic() + timeout_s
    try:
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not received:
            print(f"no message on {topic} within {timeout_s} s", file=sys.stderr)
            return 2
        print(json.dumps(to_plain(received[0])), flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
