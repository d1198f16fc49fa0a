"""Every registered model: any input size in, logits at that size out, trainable, exportable.

Big networks are built at full width (so the real architecture is what is tested) but fed
small images; FCN-8s's fc6/fc7 (4096 wide, 120M parameters) is narrowed with
``fc_channels`` for the gradient tests, and its full-width build is checked separately.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from roadseg_ros.models import DEFAULT_MODEL, build_model, list_models, main_output
from roadseg_ros.models.pspnet import _bin_pool

NUM_CLASSES = 5
# Small-but-real settings for the gradient tests (only FCN's fc6/fc7 width is reduced).
TEST_KWARGS = {"fcn8s_vgg16": {"fc_channels": 64}}
AUX_MODELS = {"pspnet_resnet18", "pspnet_resnet50", "roadnet_small", "psp_lite0", "fcn8s_lite0"}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _build(name: str, device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, **TEST_KWARGS.get(name, {})).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list_models())
def test_forward_backward_odd_size(name, device):
    model = _build(name, device).train()
    x = torch.randn(1, 3, 45, 53, device=device)
    out = model(x)
    if name in AUX_MODELS:
        assert isinstance(out, dict) and set(out) == {"out", "aux"}
        assert out["aux"].shape == (1, NUM_CLASSES, 45, 53)
    logits = main_output(out)
    assert logits.shape == (1, NUM_CLASSES, 45, 53)
    target = torch.randint(0, NUM_CLASSES, (1, 45, 53), device=device)
    loss = F.cross_entropy(logits, target)
    if isinstance(out, dict):
        loss = loss + 0.4 * F.cross_entropy(out["aux"], target)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # the whole network learns: the first layer gets a non-zero gradient
    first = next(p for p in model.parameters() if p.requires_grad)
    assert first.grad.abs().sum() > 0

    model.eval()
    with torch.inference_mode():
        y = model(x)
    assert isinstance(y, torch.Tensor)   # eval mode never returns the aux dict
    assert y.shape == (1, NUM_CLASSES, 45, 53)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size", [(33, 47), (70, 41)])
def test_any_input_size_eval(name, size):
    model = _build(name).eval()
    with torch.inference_mode():
        y = model(torch.randn(2, 3, *size))
    assert y.shape == (2, NUM_CLASSES, *size)


def test_fcn8s_full_width_and_options():
    model = build_model("fcn8s_vgg16", 11).eval()
    assert model.fc[0].out_channels == 4096 and model.fc[0].kernel_size == (7, 7)
    assert model.fc[3].out_channels == 4096 and model.fc[3].kernel_size == (1, 1)
    assert (model.pool3_scale, model.pool4_scale) == (1e-4, 1e-2)
    ups = (model.upscore2, model.upscore_pool4, model.upscore8)
    assert [m.stride for m in ups] == [(2, 2), (2, 2), (8, 8)]
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 35, 41)).shape == (1, 11, 35, 41)
    plain = build_model("fcn8s_vgg16", 3, fc_channels=16, dropout=0.3, at_once_scaling=False)
    assert (plain.pool3_scale, plain.pool4_scale) == (1.0, 1.0)
    assert [m.p for m in plain.fc if isinstance(m, torch.nn.Dropout2d)] == [0.3, 0.3]


def test_fcn8s_upsamplers_start_bilinear():
    """Untrained, the x2 transposed conv interpolates: a constant map stays constant inside."""
    model = build_model("fcn8s_vgg16", 2, fc_channels=8)
    with torch.no_grad():
        up = model.upscore2(torch.ones(1, 2, 6, 6))
    assert up.shape == (1, 2, 12, 12)
    assert torch.allclose(up[..., 1:-1, 1:-1], torch.ones(1, 2, 10, 10))


@pytest.mark.parametrize("name, stage_channels", [("pspnet_resnet18", 512), ("pspnet_resnet50", 2048)])
def test_pspnet_output_stride_8(name, stage_channels):
    model = build_model(name, 3).eval()
    feats = {}
    model.layer4.register_forward_hook(lambda m, i, o: feats.setdefault("layer4", o))
    with torch.inference_mode():
        model(torch.randn(1, 3, 48, 40))
    assert feats["layer4"].shape == (1, stage_channels, 6, 5)
    assert model.ppm.bins == (1, 2, 3, 6)


def test_pspnet_without_aux_returns_tensor_in_training():
    model = build_model("pspnet_resnet18", 3, aux=False).train()
    assert isinstance(model(torch.randn(2, 3, 40, 40)), torch.Tensor)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (6, 12), (11, 23), (40, 17)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_exportable_bin_pool_matches_adaptive_avg_pool(size, bins):
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    assert torch.allclose(_bin_pool(x, bins), F.adaptive_avg_pool2d(x, bins))


# The default, and the two with shape arithmetic inside (FCN's padding, PSP's bin pooling);
# torchvision's LRASPP was checked by hand (it exports too) but is slow to export here.
EXPORT_MODELS = ["tiny_segnet", DEFAULT_MODEL, "pspnet_resnet18", "fcn8s_vgg16"]


@pytest.mark.parametrize("name", EXPORT_MODELS)
def test_trace_and_onnx_export_work_at_other_sizes(name, tmp_path):
    """Traced at one size, the TorchScript and ONNX models run at another and match eager."""
    ort = pytest.importorskip("onnxruntime")
    model = _build(name).eval()
    x_trace = torch.randn(1, 3, 64, 96)
    x_other = torch.randn(1, 3, 45, 53)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x_trace)
        ref = model(x_other)
        assert torch.allclose(traced(x_other), ref, atol=1e-5)
        path = tmp_path / f"{name}.onnx"
        torch.onnx.export(model, (x_trace,), str(path), input_names=["image"], output_names=["logits"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"},
                                        "logits": {0: "n", 2: "h", 3: "w"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"image": x_other.numpy()})
    assert y.shape == tuple(ref.shape)
    np.testing.assert_allclose(y, ref.numpy(), atol=1e-4, rtol=1e-3)
