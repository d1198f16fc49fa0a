"""``roadseg-carla-collect``: drive CARLA and save RGB + semantic pairs for training.

Connects to a running simulator, switches it to synchronous mode (so both cameras see
the same simulation step), spawns an ego vehicle on autopilot with an RGB and a raw
semantic-segmentation camera at the same pose, and every ``--every`` ticks saves one
pair in the Lyft/Udacity layout that ``roadseg-train --data carla=OUTPUT`` reads::

    OUTPUT/CameraRGB/000000.png    RGB frame
    OUTPUT/CameraSeg/000000.png    label id in the red channel (CARLA's raw output)
    OUTPUT/collect_info.json       server version, id numbering (pre_0914 / post_0914),
                                   town, weather, camera, and the training command

Everything spawned is destroyed and the world settings restored at the end, also on
Ctrl-C or an error. A server that is not running gives one error after ``--timeout``.

    roadseg-carla-collect --output data/carla_town10 --town Town10HD_Opt --frames 500 \
        --weather ClearNoon,WetCloudyNoon,ClearSunset
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from roadseg_ros.carla.client import CarlaConnectionError, bgra_buffer_to_array, connect, release_carla
from roadseg_ros.carla.labels import label_scheme_for_version
from roadseg_ros.config import ConfigError
from roadseg_ros.tools import ToolError, run_tool


def weather_presets() -> list[str]:
    """Names of the client's ``carla.WeatherParameters`` presets (empty without the client)."""
    try:
        import carla
    except ImportError:
        return []
    cls = carla.WeatherParameters
    return sorted(n for n in dir(cls) if n[:1].isupper() and isinstance(getattr(cls, n), cls))


def parse_weathers(text: str, presets: Sequence[str]) -> list[str]:
    """Comma-separated preset names; an unknown one fails listing the valid names."""
    names = [w.strip() for w in text.split(",") if w.strip()]
    if not names:
        raise ValueError("--weather needs at least one preset name")
    bad = [w for w in names if w not in presets]
    if bad:
        raise ValueError(f"unknown weather preset(s) {', '.join(bad)}; valid: {', '.join(presets)}")
    return names


def weather_for_frame(weathers: Sequence[str], index: int, frames: int) -> str:
    """The presets take turns in equal consecutive blocks over the run."""
    block = max(1, -(-frames // len(weathers)))
    return weathers[min(index // block, len(weathers) - 1)]


def save_pair(output: Path, index: int, rgb_bgra: np.ndarray, semantic_bgra: np.ndarray) -> tuple[Path, Path]:
    """Write one pair in the Lyft layout: RGB PNG and label PNG with the raw id in red."""
    name = f"{index:06d}.png"
    rgb_path, seg_path = output / "CameraRGB" / name, output / "CameraSeg" / name
    # BGRA -> BGR keeps the red channel where OpenCV writes red: CARLA's raw semantic id.
    if not cv2.imwrite(str(rgb_path), np.ascontiguousarray(rgb_bgra[..., :3])):
        raise OSError(f"could not write {rgb_path}")
    if not cv2.imwrite(str(seg_path), np.ascontiguousarray(semantic_bgra[..., :3])):
        raise OSError(f"could not write {seg_path}")
    return rgb_path, seg_path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="roadseg-carla-collect",
        description="Drive a CARLA ego vehicle on autopilot and save RGB + semantic pairs "
                    "(CameraRGB/, CameraSeg/ with the label id in red) for roadseg-train.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output", type=Path, required=True, help="output folder")
    p.add_argument("--frames", type=int, default=200, help="number of pairs to save")
    p.add_argument("--every", type=int, default=10,
                   help="save every N simulation ticks (decorrelates frames)")
    p.add_argument("--town", default="", help="map to load, e.g. Town10HD_Opt (empty: keep the loaded one)")
    p.add_argument("--weather", default="ClearNoon",
                   help="weather preset(s), comma-separated; several take turns over the run")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=2000)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the simulator")
    p.add_argument("--width", type=int, default=800)
    p.add_argument("--height", type=int, default=600)
    p.add_argument("--fov", type=float, default=90.0, help="horizontal field of view (deg)")
    p.add_argument("--fixed-delta", type=float, default=0.05, help="simulation step (s)")
    p.add_argument("--vehicle", default="vehicle.*", help="blueprint filter of the ego vehicle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tm-port", type=int, default=8000, help="traffic manager port")
    return p


def _warn(message: str) -> None:
    """One warning line on stderr, named after the tool like its errors."""
    print(f"roadseg-carla-collect: warning: {message}", file=sys.stderr)


class _Session:
    """Spawned actors and changed settings, undone by :meth:`close` whatever happens."""

    def __init__(self, client: Any, world: Any) -> None:
        self.client, self.world = client, world
        self.original_settings = world.get_settings()
        self.actors: list[Any] = []
        self.traffic_manager = None

    def close(self) -> None:
        release_carla(self.actors, self.world, self.original_settings, self.traffic_manager, _warn)


def _next_image(q: queue.Queue, frame: int, timeout: float) -> Any:
    """The sensor's image of simulation frame ``frame`` (older ones are skipped)."""
    while True:
        image = q.get(timeout=timeout)
        if image.frame >= frame:
            return image


def collect(args: argparse.Namespace, weathers: list[str]) -> dict:
    """Run the collection; returns what collect_info.json holds."""
    import carla

    client, world = connect(args.host, args.port, args.timeout)
    for sub in ("CameraRGB", "CameraSeg"):      # only once a simulator answered
        (args.output / sub).mkdir(parents=True, exist_ok=True)
    if args.town and not world.get_map().name.endswith(args.town):
        world = client.load_world(args.town)
    session = _Session(client, world)
    try:
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = args.fixed_delta
        world.apply_settings(settings)
        session.traffic_manager = client.get_trafficmanager(args.tm_port)
        session.traffic_manager.set_synchronous_mode(True)
        session.traffic_manager.set_random_device_seed(args.seed)
        rng = random.Random(args.seed)
        library = world.get_blueprint_library()
        vehicles = [bp for bp in library.filter(args.vehicle) if not bp.has_attribute("number_of_wheels")
                    or int(bp.get_attribute("number_of_wheels")) == 4]
        if not vehicles:
            raise ConfigError(f"no 4-wheeled vehicle blueprint matches --vehicle {args.vehicle!r}")
        blueprint = rng.choice(vehicles)
        blueprint.set_attribute("role_name", "ego_vehicle")
        points = world.get_map().get_spawn_points()
        rng.shuffle(points)
        attempts = (world.try_spawn_actor(blueprint, p) for p in points)
        vehicle = next((v for v in attempts if v is not None), None)
        if vehicle is None:
            raise RuntimeError("could not spawn the ego vehicle: every spawn point is occupied")
        session.actors.append(vehicle)
        vehicle.set_autopilot(True, args.tm_port)
        transform = carla.Transform(carla.Location(x=2.0, z=2.0))
        queues: dict[str, queue.Queue] = {}
        sensors = (("rgb", "sensor.camera.rgb"), ("semantic", "sensor.camera.semantic_segmentation"))
        for kind, bp_id in sensors:
            bp = library.find(bp_id)
            bp.set_attribute("image_size_x", str(args.width))
            bp.set_attribute("image_size_y", str(args.height))
            bp.set_attribute("fov", str(args.fov))
            camera = world.spawn_actor(bp, transform, attach_to=vehicle)
            session.actors.append(camera)
            queues[kind] = queue.Queue()
            camera.listen(queues[kind].put)
        version = client.get_server_version()
        saved, tick = 0, 0
        current_weather = None
        with tqdm(total=args.frames, unit="pair", desc="roadseg-carla-collect") as bar:
            while saved < args.frames:
                weather = weather_for_frame(weathers, saved, args.frames)
                if weather != current_weather:
                    world.set_weather(getattr(carla.WeatherParameters, weather))
                    current_weather = weather
                frame = world.tick(args.timeout)
                tick += 1
                rgb = _next_image(queues["rgb"], frame, args.timeout)
                sem = _next_image(queues["semantic"], frame, args.timeout)
                if tick % args.every:
                    continue
                save_pair(args.output, saved, bgra_buffer_to_array(rgb.raw_data, rgb.width, rgb.height),
                          bgra_buffer_to_array(sem.raw_data, sem.width, sem.height))
                saved += 1
                bar.update(1)
        scheme = label_scheme_for_version(version)
        return {
            "frames": saved, "server_version": version, "client_version": getattr(carla, "__version__", None),
            "carla_labels": scheme, "town": world.get_map().name, "weather": weathers,
            "camera": {"width": args.width, "height": args.height, "fov_deg": args.fov, "x": 2.0, "z": 2.0},
            "every_ticks": args.every, "fixed_delta_seconds": args.fixed_delta, "seed": args.seed,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "train_command": f"roadseg-train --data carla={args.output} --carla-labels {scheme}",
        }
    finally:
        session.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 on success, 2 on a bad option, 1 when the collection fails (one error line)."""
    args = build_parser().parse_args(argv)
    # CarlaConnectionError (no simulator, no client) and RuntimeError are RuntimeErrors; a
    # ValueError here is a server answer the tool cannot read (its version, say).
    return run_tool("roadseg-carla-collect", lambda: _run(args), failures=(RuntimeError, ValueError, OSError))


def _run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.every < 1:
        raise ConfigError(f"--frames and --every must be >= 1, got {args.frames} and {args.every}")
    if args.width < 1 or args.height < 1 or not 0 < args.fov < 180:
        raise ConfigError(f"bad camera: {args.width}x{args.height}, fov {args.fov} "
                          "(sizes must be > 0, fov in (0, 180))")
    presets = weather_presets()
    if not presets:
        raise CarlaConnectionError("the 'carla' Python client is not installed "
                                   "(pip install carla==0.9.16, matching your simulator's version)")
    try:
        weathers = parse_weathers(args.weather, presets)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        info = collect(args, weathers)
    except queue.Empty:
        raise ToolError(f"no sensor data within --timeout {args.timeout} s") from None
    except KeyboardInterrupt:
        print("roadseg-carla-collect: interrupted; the pairs saved so far are kept", file=sys.stderr)
        return 130
    (args.output / "collect_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"roadseg-carla-collect: saved {info['frames']} pairs in {args.output} "
          f"(labels: {info['carla_labels']}); train with: {info['train_command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
