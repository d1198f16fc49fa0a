"""roadseg-export: TorchScript and ONNX files, parity with the eager model, sidecar."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from roadseg_ros.checkpoint import Checkpoint, model_from_checkpoint, save_checkpoint
from roadseg_ros.classes import ROAD_BINARY
from roadseg_ros.models import build_model
from roadseg_ros.tools.export import export_checkpoint, main

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

TOL = 1e-3  # max |exported - eager| logits on small random inputs


def make_checkpoint() -> Checkpoint:
    torch.manual_seed(2)
    model = build_model("tiny_segnet", ROAD_BINARY.num_classes, width=6)
    # non-trivial BatchNorm statistics, so a graph that dropped them would fail parity
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return Checkpoint(arch="tiny_segnet", arch_kwargs={"width": 6}, class_names=list(ROAD_BINARY.class_names),
                      class_colors=list(ROAD_BINARY.class_colors), drivable_classes=[1],
                      mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=(40, 24),
                      state_dict=model.state_dict(), training={})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    sidecar = export_checkpoint(make_checkpoint(), out, "tiny", input_size=(44, 28), batch_size=2)
    return out, sidecar


def test_files_and_sidecar(exported):
    out, sidecar = exported
    assert sidecar["ok"] is True
    assert {p.name for p in out.iterdir()} == {"tiny.torchscript.pt", "tiny.onnx", "tiny.json"}
    on_disk = json.loads((out / "tiny.json").read_text())
    assert on_disk["class_names"] == ["background", "road"] and on_disk["drivable_classes"] == [1]
    assert on_disk["input"]["mean"] == [0.5, 0.5, 0.5] and on_disk["input"]["size"] == [44, 28]
    assert on_disk["exports"]["onnx"]["opset"] == 17
    for fmt in ("torchscript", "onnx"):
        parity = on_disk["exports"][fmt]["parity"]
        assert parity["ok"] and parity["max_abs_diff"] <= TOL and parity["mask_agreement"] > 0.999
    assert on_disk["exports"]["onnx"]["dynamic_shapes"] is True  # tiny_segnet allows any size


def _eager(x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model_from_checkpoint(make_checkpoint())(x).numpy()


@pytest.mark.parametrize("shape", [(2, 3, 28, 44), (1, 3, 31, 57), (3, 3, 17, 23)])
def test_onnx_parity_independent(exported, shape):
    out, _ = exported
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    session = ort.InferenceSession(str(out / "tiny.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input": x.numpy()})[0]
    ref = _eager(x)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= TOL
    assert (got.argmax(1) == ref.argmax(1)).mean() > 0.999


def test_torchscript_parity_independent(exported):
    out, _ = exported
    x = torch.randn(2, 3, 28, 44, generator=torch.Generator().manual_seed(8))
    module = torch.jit.load(str(out / "tiny.torchscript.pt"))
    with torch.inference_mode():
        got = module(x).numpy()
    assert np.abs(got - _eager(x)).max() <= TOL


def test_cli(tmp_path, capsys):
    weights = save_checkpoint(make_checkpoint(), tmp_path / "road.pt")
    rc = main(["--weights", str(weights), "--output", str(tmp_path / "ex"), "--format", "onnx", "--static"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == ["road.json", "road.onnx"]
    text = capsys.readouterr().out
    assert "road.onnx" in text and "ok" in text
    side = json.loads((tmp_path / "ex" / "road.json").read_text())
    assert side["exports"]["onnx"]["dynamic_shapes"] is False and side["input"]["size"] == [40, 24]
    # an impossible tolerance must turn into a failing exit status
    assert main(["--weights", str(weights), "-o", str(tmp_path / "ex2"), "--format", "torchscript",
                 "--atol", "-1"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "e")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--weights", "x.pt", "--format", "tflite"])


@pytest.mark.parametrize("arch", ["psp_lite0", "fcn8s_lite0"])
def test_pretrained_encoder_models_export_with_parity(tmp_path, arch):
    """The EfficientNet-Lite0 models (TF 'same' padding, pyramid pooling) export to TorchScript and
    ONNX with the eager model's logits, at the export size and, for ONNX, at another size."""
    from roadseg_ros.classes import CAMVID11
    from roadseg_ros.models.efficientnet import LITE_MEAN, LITE_STD

    torch.manual_seed(3)
    model = build_model(arch, CAMVID11.num_classes, pretrained=True).eval()
    ckpt = Checkpoint(arch=arch, arch_kwargs={}, class_names=list(CAMVID11.class_names),
                      class_colors=list(CAMVID11.class_colors), drivable_classes=[3], mean=LITE_MEAN,
                      std=LITE_STD, input_size=(96, 64), state_dict=model.state_dict(), training={})
    side = export_checkpoint(ckpt, tmp_path, arch, input_size=(96, 64), batch_size=1)
    assert side["ok"] is True
    for fmt in ("torchscript", "onnx"):
        parity = side["exports"][fmt]["parity"]
        assert parity["ok"] and parity["max_abs_diff"] <= TOL, (fmt, parity)
    if side["exports"]["onnx"]["dynamic_shapes"]:
        x = torch.randn(1, 3, 75, 131, generator=torch.Generator().manual_seed(9))
        session = ort.InferenceSession(str(tmp_path / f"{arch}.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(["logits"], {"input": x.numpy()})[0]
        with torch.inference_mode():
            ref = model_from_checkpoint(ckpt)(x).numpy()
        assert np.abs(got - ref).max() <= TOL
