"""Talking to a CARLA simulator: connection, clean-up of what was spawned, sensor buffers.

Shared by the bridge node and ``roadseg-carla-collect``. The ``carla`` client is imported
lazily (:func:`connect`) or never (the other functions only call methods of the objects
they are handed), so this module imports, and is tested, without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["CarlaConnectionError", "connect", "release_carla", "bgra_buffer_to_array"]


class CarlaConnectionError(RuntimeError):
    """The simulator could not be reached or did not answer in time (or no client is installed)."""


def connect(host: str, port: int, timeout_s: float) -> tuple[Any, Any]:
    """``(carla.Client, carla.World)`` of a running simulator.

    A simulator that is down or unreachable raises :class:`CarlaConnectionError` once, after
    ``timeout_s`` seconds, naming the address: the client's own error is a bare
    RuntimeError that callers would otherwise have to recognise by its text.
    """
    try:
        import carla
    except ImportError:
        raise CarlaConnectionError("the 'carla' Python client is not installed (pip install carla==0.9.16, "
                                   "matching your simulator's version)") from None
    if timeout_s <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout_s}")
    client = carla.Client(host, int(port))
    client.set_timeout(float(timeout_s))
    try:
        world = client.get_world()
    except RuntimeError as exc:
        raise CarlaConnectionError(f"no CARLA simulator answered at {host}:{port} within {timeout_s:g} s "
                                   f"({exc}); start CarlaUE4.sh / CarlaUnreal.sh or set host/port") from None
    return client, world


def release_carla(actors: list[Any], world: Any | None, original_settings: Any | None,
                  traffic_manager: Any | None, warn: Callable[[str], None]) -> None:
    """Destroy the spawned ``actors`` (newest first) and give the world back as it was found.

    The bridge node and the collector both change a shared simulator (spawned vehicles and
    sensors, synchronous mode); leaving any of it behind would freeze or clutter the server
    for the next client, so one place undoes it. Sensors are stopped before they are
    destroyed so no callback fires on a dead actor. A failure is reported through ``warn``
    (one line, no prefix: the caller logs or prints it its own way) and the clean-up goes on;
    ``actors`` is emptied in place. The world settings are restored only when both ``world``
    and ``original_settings`` are known, after the traffic manager leaves synchronous mode.
    """
    for actor in reversed(actors):
        try:
            if hasattr(actor, "stop"):
                actor.stop()
            actor.destroy()
        except RuntimeError as exc:
            warn(f"could not destroy actor {actor.id}: {exc}")
    actors.clear()
    if world is None or original_settings is None:
        return
    try:
        if traffic_manager is not None:
            traffic_manager.set_synchronous_mode(False)
        world.apply_settings(original_settings)
    except RuntimeError as exc:
        warn(f"could not restore the world settings: {exc}")


def bgra_buffer_to_array(
    raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int
) -> np.ndarray:
    """HxWx4 uint8 BGRA array over a CARLA sensor's ``raw_data`` (a copy, so the result stays
    valid after CARLA recycles the buffer). A size mismatch fails with both sizes."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1)
    expected = width * height * 4
    if buf.size != expected:
        raise ValueError(f"BGRA buffer has {buf.size} bytes, a {width}x{height} BGRA image needs {expected}")
    return buf.reshape(height, width, 4).copy()
