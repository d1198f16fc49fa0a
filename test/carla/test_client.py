"""roadseg_ros.carla.client: sensor buffers and the clean-up of a shared simulator (no simulator here)."""

from __future__ import annotations

import numpy as np
import pytest

from roadseg_ros.carla.client import bgra_buffer_to_array, release_carla


def test_bgra_buffer_to_array_layout_and_errors():
    width, height = 5, 3
    pixels = np.arange(width * height * 4, dtype=np.uint32).astype(np.uint8).reshape(height, width, 4)
    raw = bytearray(pixels.tobytes())
    out = bgra_buffer_to_array(raw, width, height)
    np.testing.assert_array_equal(out, pixels)
    raw[0] = 250                            # a copy: CARLA may reuse its buffer
    assert out[0, 0, 0] == pixels[0, 0, 0]
    with pytest.raises(ValueError, match="59 bytes, a 5x3 BGRA image needs 60"):
        bgra_buffer_to_array(bytes(59), width, height)
    with pytest.raises(ValueError, match="positive"):
        bgra_buffer_to_array(b"", 0, 3)


class _Recorder:
    """Stand-in for CARLA actors / world / traffic manager (no simulator can run here)."""

    def __init__(self, log: list[str], name: str, fail: str | None = None) -> None:
        self.log, self.id, self.fail = log, name, fail

    def _do(self, what: str) -> None:
        if self.fail == what:
            raise RuntimeError(f"{what} failed")
        self.log.append(f"{what} {self.id}")


class _Sensor(_Recorder):
    def stop(self) -> None:
        self._do("stop")

    def destroy(self) -> None:
        self._do("destroy")


class _Vehicle(_Recorder):
    def destroy(self) -> None:
        self._do("destroy")


class _World(_Recorder):
    def apply_settings(self, settings: str) -> None:
        self._do(f"apply:{settings}")


class _TrafficManager(_Recorder):
    def set_synchronous_mode(self, on: bool) -> None:
        self._do(f"sync:{on}")


def test_release_carla_destroys_newest_first_and_restores_settings() -> None:
    log: list[str] = []
    warnings: list[str] = []
    actors = [_Vehicle(log, "car"), _Sensor(log, "rgb", fail="destroy"), _Sensor(log, "sem")]
    release_carla(actors, _World(log, "w"), "orig", _TrafficManager(log, "tm"), warnings.append)
    assert log == ["stop sem", "destroy sem", "stop rgb", "destroy car", "sync:False tm", "apply:orig w"]
    assert warnings == ["could not destroy actor rgb: destroy failed"]
    assert actors == []
    # Without known original settings nothing is applied to the world.
    log.clear()
    release_carla([_Vehicle(log, "car2")], _World(log, "w"), None, None, warnings.append)
    assert log == ["destroy car2"]
