"""roadseg-carla-collect: output layout the training reads, options, and a server that is down."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from roadseg_ros.carla.labels import ids_to_camvid11, label_scheme_for_version
from roadseg_ros.tools.carla_collect import (
    main,
    parse_weathers,
    save_pair,
    weather_for_frame,
    weather_presets,
)


def test_saved_pairs_read_back_through_the_carla_dataset(tmp_path):
    """A pair written like CARLA's raw cameras deliver it is what CarlaDataset reads."""
    from roadseg_ros.data.datasets import CarlaDataset

    for sub in ("CameraRGB", "CameraSeg"):
        (tmp_path / sub).mkdir()
    rng = np.random.default_rng(0)
    ids = rng.choice([1, 2, 11, 14, 24], size=(12, 16)).astype(np.uint8)   # post-0.9.14 numbering
    rgb = rng.integers(0, 256, (12, 16, 4), dtype=np.uint8)
    sem = np.zeros((12, 16, 4), np.uint8)
    sem[..., 2] = ids            # BGRA: raw id in red
    sem[..., 3] = 255
    save_pair(tmp_path, 0, rgb, sem)
    ds = CarlaDataset(tmp_path, split="all", carla_labels="post_0914")
    image, label = ds[0]
    np.testing.assert_array_equal(image, rgb[..., 2::-1])                  # RGB of the BGRA frame
    np.testing.assert_array_equal(label, ids_to_camvid11(ids, "post_0914"))


def test_label_scheme_from_server_version():
    assert label_scheme_for_version("0.9.13") == "pre_0914"
    assert label_scheme_for_version("0.9.14") == "post_0914"
    assert label_scheme_for_version("0.9.16-dirty") == "post_0914"
    assert label_scheme_for_version("0.10.0") == "post_0914"
    with pytest.raises(ValueError, match="cannot read"):
        label_scheme_for_version("latest")


def test_weather_options():
    presets = weather_presets()
    if not presets:
        pytest.skip("carla client not installed")
    assert "ClearNoon" in presets
    assert parse_weathers("ClearNoon, WetNoon", presets) == ["ClearNoon", "WetNoon"]
    with pytest.raises(ValueError, match="valid: .*ClearNoon"):
        parse_weathers("Sunny", presets)
    order = [weather_for_frame(["A", "B", "C"], i, 7) for i in range(7)]
    assert order == ["A", "A", "A", "B", "B", "B", "C"]


def test_server_down_gives_one_error_within_the_timeout(tmp_path, capsys):
    pytest.importorskip("carla", reason="carla client not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    rc = main(["--output", str(tmp_path / "out"), "--host", "127.0.0.1", "--port", str(port),
               "--timeout", "1.5", "--frames", "2"])
    assert rc == 1
    assert time.monotonic() - start < 1.5 + 5.0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"127.0.0.1:{port} within 1.5 s" in err[0]
    assert not (tmp_path / "out").exists()       # nothing half-made
    assert main(["--output", str(tmp_path / "x"), "--weather", "Sunny"]) == 2     # a bad option
    assert "unknown weather preset" in capsys.readouterr().err
