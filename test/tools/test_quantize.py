"""roadseg-quantize end to end on a small trained model and generated scenes; the ranges file it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from roadseg_ros.backends import runtime_missing, weights_digest
from roadseg_ros.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from roadseg_ros.classes import CAMVID11
from roadseg_ros.data.synthetic import render_scene
from roadseg_ros.inference import Segmenter
from roadseg_ros.models import build_model
from roadseg_ros.quantization import (
    Int8Ranges,
    QuantizationError,
    accuracy_ok,
    find_ranges,
    insert_ranges,
    load_ranges,
    ranges_path_for,
    save_ranges,
)
from roadseg_ros.tools.quantize import main

pytestmark = [pytest.mark.skipif(runtime_missing("openvino") is not None, reason="openvino not installed"),
              pytest.mark.usefixtures("one_torch_thread")]
SIZE = (128, 96)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Checkpoint:
    """tiny_segnet fitted to a few scenes (a random net's logits are too flat to say anything about int8)."""
    torch.manual_seed(0)
    scenes = [render_scene(seed, *SIZE) for seed in range(16)]
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    x = (torch.from_numpy(np.stack([s[0] for s in scenes])).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    y = torch.from_numpy(np.stack([s[1] for s in scenes])).long()
    model = build_model("tiny_segnet", CAMVID11.num_classes, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ckpt = Checkpoint(arch="tiny_segnet", arch_kwargs={"width": 8}, class_names=list(CAMVID11.class_names),
                      class_colors=[tuple(c) for c in CAMVID11.class_colors],
                      drivable_classes=list(CAMVID11.drivable_classes), mean=mean, std=std,
                      input_size=SIZE, state_dict=model.state_dict(),
                      training={"datasets": {"train": ["synthetic:12:seed0"],
                                             "val": ["synthetic-val:6:seed9"]}})
    path = tmp_path_factory.mktemp("q") / "tiny.pt"
    save_checkpoint(ckpt, path)
    return path


@pytest.fixture(scope="module")
def quantized(trained) -> dict:
    """roadseg-quantize run once on the trained checkpoint: its JSON line."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["--weights", str(trained), "--images", "12", "--val-images", "6", "--threads", "1"])
    assert status == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_calibrates_validates_and_binds_the_ranges_to_the_checkpoint(trained, quantized) -> None:
    out = quantized
    path = ranges_path_for(trained)
    assert out["output"] == str(path) and path.is_file()
    ranges = load_ranges(path)
    ckpt = load_checkpoint(trained)
    assert ranges.digest == weights_digest(ckpt.state_dict, ckpt.arch, ckpt.arch_kwargs)
    info = ranges.info
    assert info["calibration"]["images"] == 12 and info["calibration"]["datasets"] == ["synthetic:12:seed0"]
    assert info["calibration"]["shape"] == [1, 3, SIZE[1], SIZE[0]]
    scores = info["accuracy"]["datasets"]["synthetic-val:6:seed9"]
    assert scores["fp32"]["images"] == scores["int8"]["images"] == 6
    assert info["accuracy"]["within_limits"] == (accuracy_ok(info["accuracy"]) is None)
    assert any(r["kind"] == "weight" for r in ranges.records) and any(r["kind"] == "activation"
                                                                      for r in ranges.records)
    # The file beside the weights is what the backend finds; used explicitly, it runs int8 at another shape.
    seg = Segmenter(trained, device="cpu", backend="openvino", precision="int8", int8_ranges=ranges,
                    keep_aspect=True, num_threads=1)
    assert (seg.backend, seg.precision) == ("openvino", "int8")
    ref = Segmenter(trained, device="cpu", backend="openvino", precision="fp32", keep_aspect=True,
                    num_threads=1)
    image = render_scene(77, 200, 100)[0]                     # network 160x64: not the calibration shape
    assert (seg.predict(image).mask == ref.predict(image).mask).mean() >= 0.95
    # From the file, int8 is taken only when its measured accuracy is within the limits.
    from_file = Segmenter(trained, device="cpu", backend="openvino", precision="int8", num_threads=1)
    assert (from_file.precision == "int8") == info["accuracy"]["within_limits"], from_file.backend_reason


def test_ranges_that_do_not_fit_the_graph_are_refused(trained, quantized) -> None:
    import openvino as ov

    ranges = load_ranges(quantized["output"])
    other = build_model("tiny_segnet", CAMVID11.num_classes, width=4).eval()
    graph = ov.convert_model(other, example_input=torch.zeros(1, 3, 64, 64))
    records = [dict(r, inputs=[["no_such_op", 0]]) if r["kind"] == "activation" else r
               for r in ranges.records]
    renamed = Int8Ranges(ranges.digest, records, ranges.arrays, ranges.info)
    with pytest.raises(QuantizationError, match="not in this graph .*'no_such_op'.*another model"):
        insert_ranges(graph, renamed)


def test_the_file_round_trips_and_bad_files_are_one_line(tmp_path) -> None:
    arrays = {str(i): np.float32([v]) for i, v in enumerate((-1.0, 1.0, -1.0, 1.0))}
    ranges = Int8Ranges("ab" * 32, [{"kind": "activation", "levels": 256, "inputs": [["conv", 0]],
                                     "arrays": ["0", "1", "2", "3"]}], arrays, {"note": "x"})
    path = save_ranges(ranges, tmp_path / "m.int8.npz")
    back = load_ranges(path)
    assert back.digest == ranges.digest and back.records == ranges.records and back.info == {"note": "x"}
    assert all(np.array_equal(back.arrays[k], v) for k, v in arrays.items())
    assert find_ranges(path, "ab" * 32) == (None, f"{path}: int8 accuracy was not measured against fp32 "
                                                  "(roadseg-quantize --validate)")
    assert "calibrated for other weights" in find_ranges(path, "cd" * 32)[1]
    assert "no calibrated int8 model" in find_ranges(tmp_path / "none.int8.npz", "ab" * 32)[1]
    bad = tmp_path / "bad.int8.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(QuantizationError, match="not a usable int8 calibration file") as err:
        load_ranges(bad)
    assert "\n" not in str(err.value)


def test_accuracy_limits() -> None:
    def acc(miou: float, road: float) -> dict:
        return {"datasets": {"camvid": {"fp32": {"mean_iou": 0.670, "road_iou": 0.960},
                                        "int8": {"mean_iou": miou, "road_iou": road}}}}

    assert accuracy_ok(acc(0.666, 0.958)) is None
    assert "0.60 points of mean IoU on camvid" in accuracy_ok(acc(0.664, 0.960))
    assert "0.40 points of road IoU" in accuracy_ok(acc(0.670, 0.956))
    assert "not measured" in accuracy_ok(None)


def test_bad_options_exit_2_with_one_line(trained, capsys) -> None:
    assert main(["--weights", str(trained), "--images", "0"]) == 2
    assert main(["--weights", str(trained), "--data", "nosuch=/x"]) == 2
    assert main(["--weights", str(trained), "--data", "camvid=/no/such/folder"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "roadseg-quantize: error: --images must be >= 1, got 0"
    assert err[1].startswith("roadseg-quantize: error: --data 'nosuch=/x': unknown dataset 'nosuch'")
    assert err[2] == ("roadseg-quantize: error: --data 'camvid=/no/such/folder': "
                      "no such folder /no/such/folder")
