"""``carla_bridge``: the project's own minimal CARLA -> ROS 2 camera bridge.

The official ``carla_ros_bridge`` supports ROS 2 Foxy only, so Humble/Jazzy/Kilted users
have none. This node uses the ``carla`` Python client from PyPI to connect to a running
simulator (``host``, ``port``, ``timeout_s``), optionally switches it to synchronous
mode with a fixed time step, spawns an ego vehicle on autopilot with an RGB and a
semantic-segmentation camera, and publishes them under the official bridge's names and
encodings, so the rest of the graph (launch/carla.launch.py) works with either bridge:

* ``/carla/<role_name>/rgb_front/image`` (bgra8) and ``.../camera_info``
* ``/carla/<role_name>/semantic_segmentation_front/image`` (bgra8, CityScapes-palette
  colours) and ``.../camera_info``
* ``/clock`` (simulation time; every image is stamped with its simulation time)

On shutdown it destroys every actor it spawned and restores the world settings it
changed. A simulator that is not reachable gives one error naming the address and the
timeout, and a non-zero exit, instead of a hang.
"""

from __future__ import annotations

import random
import sys
import threading
from typing import Any

from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from roadseg_ros.carla.client import CarlaConnectionError, bgra_buffer_to_array, connect, release_carla
from roadseg_ros.config import ConfigError
from roadseg_ros.nodes.common import run_node
from roadseg_ros.nodes.messages import camera_info_msg
from roadseg_ros.nodes.params import CARLA_BRIDGE, declare_parameters

__all__ = ["CarlaBridge", "CarlaConnectionError", "bgra_image_msg", "connect", "stamp_from_seconds",
           "topic_names", "main"]

def topic_names(role_name: str) -> dict[str, str]:
    """The official bridge's topic names for the two front cameras of ``role_name``."""
    base = f"/carla/{role_name}"
    return {
        "rgb_image": f"{base}/rgb_front/image",
        "rgb_info": f"{base}/rgb_front/camera_info",
        "semantic_image": f"{base}/semantic_segmentation_front/image",
        "semantic_info": f"{base}/semantic_segmentation_front/camera_info",
    }


def stamp_from_seconds(seconds: float) -> Time:
    """builtin_interfaces/Time of a (simulation) time in seconds, nanoseconds rounded."""
    if seconds < 0:
        raise ValueError(f"time must be >= 0, got {seconds}")
    total_ns = int(round(seconds * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def bgra_image_msg(raw: Any, width: int, height: int, stamp: Time, frame_id: str) -> Image:
    """sensor_msgs/Image (bgra8) from a CARLA sensor's raw BGRA buffer (size-checked)."""
    pixels = bgra_buffer_to_array(raw, width, height)
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = height, width
    msg.encoding = "bgra8"
    msg.is_bigendian = 0
    msg.step = width * 4
    msg.data = pixels.tobytes()
    return msg


class CarlaBridge(Node):
    """Connects to CARLA in :meth:`start`; see the module docstring."""

    def __init__(self, **node_kwargs: Any) -> None:
        node_kwargs.setdefault("node_name", "carla_bridge")
        super().__init__(**node_kwargs)
        self.p = declare_parameters(self, CARLA_BRIDGE)
        self.topics = topic_names(self.p["role_name"])
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {key: self.create_publisher(CameraInfo if key.endswith("info") else Image, name, qos)
                     for key, name in self.topics.items()}
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.client = self.world = self.traffic_manager = None
        self.original_settings = None
        self.actors: list[Any] = []
        self.frames_published = 0
        self._lock = threading.Lock()
        self._tick_timer = None

    def start(self) -> None:
        """Connect, configure the world, spawn the ego vehicle and its cameras."""
        import carla

        p = self.p
        self.client, self.world = connect(p["host"], p["port"], p["timeout_s"])
        if p["town"] and not self.world.get_map().name.endswith(p["town"]):
            self.get_logger().info(f"loading {p['town']}")
            self.world = self.client.load_world(p["town"])
        self.original_settings = self.world.get_settings()
        self.traffic_manager = self.client.get_trafficmanager(int(p["traffic_manager_port"]))
        if p["synchronous_mode"]:
            settings = self.world.get_settings()
            settings.synchronous_mode = True
            settings.fixed_delta_seconds = float(p["fixed_delta_seconds"])
            self.world.apply_settings(settings)
            self.traffic_manager.set_synchronous_mode(True)
        rng = random.Random(int(p["seed"]))
        library = self.world.get_blueprint_library()
        candidates = [bp for bp in library.filter(p["vehicle_filter"])
                      if not bp.has_attribute("number_of_wheels")
                      or int(bp.get_attribute("number_of_wheels")) == 4]
        if not candidates:
            raise ConfigError("no 4-wheeled vehicle blueprint matches "
                              f"vehicle_filter={p['vehicle_filter']!r}")
        blueprint = rng.choice(candidates)
        blueprint.set_attribute("role_name", p["role_name"])
        spawn_points = self.world.get_map().get_spawn_points()
        if p["spawn_point"] >= len(spawn_points):
            raise ConfigError(f"spawn_point {p['spawn_point']} out of range: the map has {len(spawn_points)}")
        order = [p["spawn_point"]] if p["spawn_point"] >= 0 else rng.sample(range(len(spawn_points)),
                                                                             len(spawn_points))
        vehicle = None
        for index in order:
            vehicle = self.world.try_spawn_actor(blueprint, spawn_points[index])
            if vehicle is not None:
                break
        if vehicle is None:
            raise RuntimeError("could not spawn the ego vehicle: every spawn point tried is occupied")
        self.actors.append(vehicle)
        vehicle.set_autopilot(True, int(p["traffic_manager_port"]))
        transform = carla.Transform(carla.Location(x=float(p["camera_x"]), z=float(p["camera_z"])),
                                    carla.Rotation(pitch=float(p["camera_pitch_deg"])))
        for kind, blueprint_id in (("rgb", "sensor.camera.rgb"),
                                   ("semantic", "sensor.camera.semantic_segmentation")):
            bp = library.find(blueprint_id)
            bp.set_attribute("image_size_x", str(int(p["image_width"])))
            bp.set_attribute("image_size_y", str(int(p["image_height"])))
            bp.set_attribute("fov", str(float(p["fov_deg"])))
            camera = self.world.spawn_actor(bp, transform, attach_to=vehicle)
            self.actors.append(camera)
            camera.listen(lambda image, kind=kind: self._on_image(kind, image))
        if p["synchronous_mode"]:
            self._tick_timer = self.create_timer(float(p["fixed_delta_seconds"]), self._tick)
        else:
            self.world.on_tick(self._on_world_tick)
        self.get_logger().info(
            f"connected to CARLA at {p['host']}:{p['port']} ({self.world.get_map().name}); ego vehicle "
            f"{vehicle.type_id} on autopilot, publishing {self.topics['rgb_image']}")

    def _tick(self) -> None:
        try:
            frame = self.world.tick(float(self.p["timeout_s"]))
        except RuntimeError as exc:
            self.get_logger().error(f"CARLA tick failed: {exc}", throttle_duration_sec=5.0)
            return
        snapshot = self.world.get_snapshot()
        if snapshot is not None and snapshot.frame == frame:
            self._publish_clock(snapshot.timestamp.elapsed_seconds)

    def _on_world_tick(self, snapshot: Any) -> None:
        self._publish_clock(snapshot.timestamp.elapsed_seconds)

    def _publish_clock(self, seconds: float) -> None:
        self.clock_pub.publish(Clock(clock=stamp_from_seconds(seconds)))

    def _on_image(self, kind: str, image: Any) -> None:
        """Sensor callback (CARLA's thread): convert and publish image + camera_info."""
        import carla

        if kind == "semantic":
            image.convert(carla.ColorConverter.CityScapesPalette)
        key = "rgb" if kind == "rgb" else "semantic"
        stamp = stamp_from_seconds(image.timestamp)
        frame_id = f"{self.p['role_name']}/{'rgb_front' if kind == 'rgb' else 'semantic_segmentation_front'}"
        msg = bgra_image_msg(image.raw_data, image.width, image.height, stamp, frame_id)
        info = camera_info_msg(image.width, image.height, fov_deg=float(image.fov), header=msg.header)
        with self._lock:
            self.pubs[f"{key}_image"].publish(msg)
            self.pubs[f"{key}_info"].publish(info)
            self.frames_published += 1

    def stop(self) -> None:
        """Destroy what was spawned and restore the world settings (idempotent)."""
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        release_carla(self.actors, self.world, self.original_settings, self.traffic_manager,
                      self.get_logger().warning)
        self.original_settings = None


def main(args: list[str] | None = None) -> int:
    """Bridge until Ctrl-C; 1 (with one error line) when CARLA cannot be reached, 2 on bad parameters."""
    return run_node("carla_bridge", CarlaBridge, args, start=CarlaBridge.start, on_exit=CarlaBridge.stop,
                    failures=(CarlaConnectionError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
