"""The runtimes behind Segmenter: choice, parity with torch, the conversion cache, every fallback.

Parity is measured on the bundled default with generated road scenes at the demo's
640x360 (the network then runs at 544x288, shaped like the camera: not the shape the
int8 ranges were calibrated at, so their transfer between shapes is tested too).
Limits: OpenVINO fp32 logits within 1e-3 of torch's and arg-max agreement >= 99.9%;
bf16 >= 99.5%; int8 >= 98.5%.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from roadseg_ros.backends import Choice, choose, native_bf16, runtime_missing, weights_digest
from roadseg_ros.config import bundled_weights, default_weights_path
from roadseg_ros.data.synthetic import render_scene
from roadseg_ros.inference import Segmenter
from roadseg_ros.quantization import Int8Ranges, find_ranges, load_ranges, ranges_path_for, save_ranges

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
needs_openvino = pytest.mark.skipif(runtime_missing("openvino") is not None, reason="openvino not installed")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    return [render_scene(seed, 640, 360)[0] for seed in (101, 102, 103)]


@pytest.fixture(scope="module")
def torch_seg() -> Segmenter:
    return Segmenter(default_weights_path(), device="cpu", backend="torch", precision="fp32",
                     keep_aspect=True, num_threads=1)


def _seg(backend: str, precision: str, cache_dir: Path | None = None, **kw) -> Segmenter:
    return Segmenter(default_weights_path(), device="cpu", backend=backend, precision=precision,
                     keep_aspect=True, num_threads=1, cache_dir=cache_dir, **kw)


def _logits(seg: Segmenter, image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(seg.network_input(image))
    return seg._network(x.to(seg.dtype))  # noqa: SLF001 - the network alone, same input


# ----------------------------------------------------------------------------- choice
def test_choice_names_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid backend 'tensorrt'.*auto, torch, openvino, onnxruntime"):
        choose("tensorrt", "auto", CPU)
    with pytest.raises(ValueError, match="invalid precision 'int4'"):
        choose("auto", "int4", CPU)
    with pytest.raises(ValueError, match="'fp16' is not supported on the CPU"):
        choose("torch", "fp16", CPU)


def test_auto_keeps_torch_on_cuda_with_fp16() -> None:
    c = choose("auto", "auto", torch.device("cuda", 0))
    assert (c.backend, c.precision, c.fallback) == ("torch", "fp16", False)
    assert "not measured on cuda" in c.reason
    c = choose("openvino", "fp32", torch.device("cuda", 0))
    assert (c.backend, c.fallback) == ("torch", True) and "not offered on cuda" in c.reason


@needs_openvino
def test_auto_on_the_cpu_picks_openvino_and_says_why() -> None:
    c = choose("auto", "auto", CPU, int8_ready="no calibration")
    assert c.backend == "openvino" and not c.fallback
    assert c.precision == ("bf16" if native_bf16() else "fp32")
    assert "precision auto" in c.reason


def test_unsupported_precisions_fall_back_with_a_reason() -> None:
    c = choose("onnxruntime", "bf16", CPU)
    assert (c.backend, c.precision, c.fallback) == ("onnxruntime", "fp32", True)
    assert "precision bf16 is not supported by onnxruntime on cpu" in c.reason
    c = choose("openvino", "int8", CPU, int8_ready="no calibrated int8 model x.int8.npz")
    assert c.precision in ("bf16", "fp32") and c.fallback and "no calibrated int8 model" in c.reason
    asked = Choice("openvino", "int8", "openvino int8 as asked")
    assert choose("openvino", "int8", CPU, int8_ready=None) == asked


# ----------------------------------------------------------------------------- parity
@needs_openvino
def test_openvino_fp32_matches_torch(torch_seg, scenes) -> None:
    ov = _seg("openvino", "fp32")
    assert (ov.backend, ov.precision) == ("openvino", "fp32")
    for image in scenes:
        ref, out = _logits(torch_seg, image), _logits(ov, image)
        assert out.shape == ref.shape == (1, 11, 288, 544)
        assert float((out - ref).abs().max()) <= 1e-3
        assert float((out.argmax(1) == ref.argmax(1)).float().mean()) >= 0.999
        assert (ov.predict(image).mask == torch_seg.predict(image).mask).mean() >= 0.999


@needs_openvino
@pytest.mark.parametrize(("precision", "limit"), [("bf16", 0.995), ("int8", 0.985)])
def test_openvino_reduced_precision_agrees_with_torch(torch_seg, scenes, precision, limit) -> None:
    seg = _seg("openvino", precision)
    assert (seg.backend, seg.precision) == ("openvino", precision), seg.backend_reason
    agree = [(seg.predict(image).mask == torch_seg.predict(image).mask).mean() for image in scenes]
    assert min(agree) >= limit, f"{precision} agrees with torch fp32 on {min(agree):.4f} of the pixels"


def test_onnxruntime_fp32_matches_torch(torch_seg, scenes) -> None:
    ort = _seg("onnxruntime", "fp32")
    assert (ort.backend, ort.precision) == ("onnxruntime", "fp32"), ort.backend_reason
    image = scenes[0]
    assert float((_logits(ort, image) - _logits(torch_seg, image)).abs().max()) <= 1e-3
    assert (ort.predict(image).mask == torch_seg.predict(image).mask).mean() >= 0.999


@needs_openvino
def test_a_batch_runs_as_one_call_with_the_same_masks(torch_seg, scenes) -> None:
    seg = _seg("openvino", "fp32")
    batch = np.stack(scenes)
    masks = seg.predict(batch).mask
    assert masks.shape == (3, 360, 640)
    assert (1, 3, 288, 544) in seg._network.shapes() or (3, 3, 288, 544) in seg._network.shapes()  # noqa: SLF001
    for i, image in enumerate(scenes):
        assert (masks[i] == torch_seg.predict(image).mask).mean() >= 0.999


# ----------------------------------------------------------------------------- cache
@needs_openvino
def test_the_conversion_is_cached_and_a_broken_cache_file_converted_again(tmp_path, scenes, caplog) -> None:
    first = _seg("openvino", "fp32", tmp_path)
    image = scenes[0]
    expected = first.predict(image).mask
    cached = sorted(p.name for p in tmp_path.glob("*.xml"))
    assert len(cached) == 2                                  # warm-up 512x320, the camera's 544x288
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    second = _seg("openvino", "fp32", tmp_path)
    assert np.array_equal(second.predict(image).mask, expected)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps   # read, not written again
    for xml in tmp_path.glob("*.xml"):
        xml.write_text("<net>truncated")                     # a stale / half-written cache
    with caplog.at_level(logging.WARNING, logger="roadseg_ros"):
        third = _seg("openvino", "fp32", tmp_path)
        assert np.array_equal(third.predict(image).mask, expected)
    messages = [r.getMessage() for r in caplog.records]
    assert any("does not load" in m and "converting again" in m for m in messages)
    assert third.backend == "openvino"


# ----------------------------------------------------------------------------- int8 files
@needs_openvino
@pytest.mark.parametrize("name", sorted(bundled_weights()))
def test_every_bundled_checkpoint_ships_int8_ranges_bound_to_it_and_proven(name) -> None:
    from roadseg_ros.checkpoint import load_checkpoint

    weights = bundled_weights()[name]
    path = ranges_path_for(weights)
    ckpt = load_checkpoint(weights)
    ranges, why = find_ranges(path, weights_digest(ckpt.state_dict, ckpt.arch, ckpt.arch_kwargs))
    assert ranges is not None, why
    assert path.stat().st_size < 6 * 2**20
    accuracy = ranges.info["accuracy"]
    assert accuracy["within_limits"] and len(accuracy["datasets"]) >= 3
    assert ranges.info["calibration"]["images"] >= 200


@needs_openvino
def test_int8_ranges_of_another_checkpoint_are_refused_with_one_line_and_a_fallback(tmp_path, caplog) -> None:
    bundled = load_ranges(ranges_path_for(default_weights_path()))
    other = tmp_path / "other.int8.npz"
    save_ranges(Int8Ranges("0" * 64, bundled.records, bundled.arrays, bundled.info), other)
    with caplog.at_level(logging.WARNING, logger="roadseg_ros"):
        seg = _seg("openvino", "int8", int8_ranges=other)
    assert seg.backend == "openvino" and seg.precision in ("bf16", "fp32")
    assert "calibrated for other weights" in seg.backend_reason and "\n" not in seg.backend_reason
    assert any("calibrated for other weights" in r.getMessage() for r in caplog.records)
    garbage = tmp_path / "garbage.int8.npz"
    garbage.write_bytes(b"not a zip file")
    seg = _seg("openvino", "int8", int8_ranges=garbage)
    assert seg.precision != "int8" and "not a usable int8 calibration file" in seg.backend_reason


# ----------------------------------------------------------------------------- a broken install
_PROBE = """
import json, logging, numpy as np
from roadseg_ros.config import bundled_weights, default_weights_path
from roadseg_ros.inference import Segmenter
from roadseg_ros.data.synthetic import render_scene
logging.basicConfig(level=logging.WARNING)
image = render_scene(7, 320, 192)[0]
out = {}
for backend in ("auto", "openvino"):
    seg = Segmenter(default_weights_path(), device="cpu", backend=backend, precision="auto", num_threads=1,
                    keep_aspect=True)
    out[backend] = [seg.backend, seg.precision, seg.backend_reason, seg.predict(image).mask.tolist()]
print(json.dumps(out))
"""


def test_a_broken_openvino_install_is_one_line_and_torch_runs(tmp_path, torch_seg) -> None:
    """A real package named openvino that fails on import, first on the path (no mock)."""
    broken = tmp_path / "site" / "openvino"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        "raise ImportError('libopenvino.so.2026: cannot open shared object file')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    image = render_scene(7, 320, 192)[0]
    expected = torch_seg.predict(image).mask
    for used, precision, reason, mask in out.values():
        assert "openvino is not usable here (ImportError: libopenvino.so.2026" in reason
        assert used in ("onnxruntime", "torch") and precision == "fp32"
        assert (np.array(mask, dtype=np.uint8) == expected).mean() >= 0.999
    assert out["openvino"][0] == "torch"
    assert "openvino is not usable here" in proc.stderr      # the warning line of the explicit request
