"""roadseg_ros.config: the one home of sizes, devices, precisions, file kinds and weights (datasets:
test_dataset_registry.py)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from roadseg_ros import config
from roadseg_ros.config import (
    ConfigError,
    WeightsError,
    bundled_weights,
    check_device,
    default_weights_path,
    fit_aspect,
    parse_size,
    resolve_weights,
    size_type,
)


def test_parse_size_and_its_argparse_form():
    assert parse_size("576x160") == (576, 160) and parse_size("64X48") == (64, 48)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("big")
    with pytest.raises(ValueError, match=">= 8"):
        parse_size("4x4", minimum=8)
    with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
        size_type()("12")
    assert size_type(8)("8x8") == (8, 8)


def test_fit_aspect_keeps_the_pixel_count_and_takes_the_frame_shape():
    # KITTI's 1242x375 camera with the bundled model's 512x320: not squeezed to 1.6:1.
    assert fit_aspect((512, 320), (1242, 375)) == (736, 224)
    assert fit_aspect((512, 320), (480, 360)) == (480, 352)          # CamVid, 4:3
    assert fit_aspect((512, 320), (1024, 640)) == (512, 320)         # same shape: the size itself
    assert fit_aspect((64, 48), (640, 480)) == (64, 48)              # ... even off the 32 grid
    w, h = fit_aspect((512, 320), (1920, 1080))
    assert w % 32 == 0 and h % 32 == 0 and abs(w * h / (512 * 320) - 1) < 0.15
    assert abs(w / h - 16 / 9) < 0.15
    assert fit_aspect((512, 320), (4000, 10)) == (5120, 32)          # never below one multiple
    assert fit_aspect((512, 320), (10, 4000)) == (32, 5120)
    with pytest.raises(ValueError, match="positive"):
        fit_aspect((512, 320), (0, 375))


def test_one_line_folds_every_whitespace_run_of_an_error():
    exc = OSError("cannot open\n  /tmp/x:\tNo such file\r\n")
    assert config.one_line(exc) == "cannot open /tmp/x: No such file"
    assert config.one_line("  already   one line ") == "already one line"
    assert config.one_line(ConfigError()) == ""


def test_device_names_are_checked_without_torch():
    for ok in ("auto", "cpu", "cuda", "cuda:3"):
        assert check_device(ok) is None
    for bad in ("tpu", "cuda:x", "CPU", ""):
        assert "auto, cpu, cuda, cuda:N" in check_device(bad)
    code = "import sys, roadseg_ros.config; print('torch' in sys.modules, 'rclpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False False", out.stderr[-1000:]


def test_default_weights_path():
    path = default_weights_path()
    assert path.parts[-3:] == ("roadseg_ros", "weights", "roadseg_default.pt")
    assert path.is_absolute()


def test_resolve_weights(tmp_path, monkeypatch):
    given = tmp_path / "model.pt"
    given.write_bytes(b"x")
    assert resolve_weights(str(given)) == given
    with pytest.raises(WeightsError, match="missing.pt does not exist"):
        resolve_weights(tmp_path / "missing.pt")
    absent = tmp_path / "weights" / "roadseg_default.pt"
    monkeypatch.setattr(config, "default_weights_path", lambda: absent)
    for nothing in (None, ""):
        with pytest.raises(ConfigError, match="bundled checkpoint .* roadseg-train .* -p weights:=PATH"):
            resolve_weights(nothing, how="-p weights:=PATH")
    absent.parent.mkdir()
    absent.write_bytes(b"x")
    assert resolve_weights(None) == absent
    # a bundled checkpoint's name (file stem) when no such file exists; the error lists the names
    other = absent.parent / "fcn8s_lite0.pt"
    other.write_bytes(b"x")
    assert bundled_weights() == {"fcn8s_lite0": other, "roadseg_default": absent}
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("fcn8s_lite0") == other
    (tmp_path / "fcn8s_lite0").write_bytes(b"y")          # a real file of that name wins
    assert resolve_weights("fcn8s_lite0") == Path("fcn8s_lite0")
    with pytest.raises(WeightsError, match="bundled: fcn8s_lite0, roadseg_default"):
        resolve_weights("psp_lite9")
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights("sub/fcn8s_lite0")
