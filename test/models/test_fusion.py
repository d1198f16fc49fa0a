"""roadseg_ros.models.fusion: folding BatchNorm into convolutions keeps the function."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from roadseg_ros.data.synthetic import render_scene
from roadseg_ros.inference import Segmenter
from roadseg_ros.models import build_model, fuse_conv_bn

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters (fresh ones are 0/1: too easy)."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


@pytest.mark.parametrize("name", ["tiny_segnet", "roadnet_small", "pspnet_resnet18", "psp_lite0",
                                  "fcn8s_lite0"])
def test_folding_keeps_the_output(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 11)
    _randomise_batchnorm(model)
    model.eval()
    fused = copy.deepcopy(model)
    folded = fuse_conv_bn(fused)
    assert folded > 0
    remaining = sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert remaining == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) - folded
    x = torch.randn(2, 3, 47, 61)  # odd: the TF-"same" stride-2 convolutions pad unevenly
    with torch.no_grad():
        ref, out = model(x), fused(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("name", ["roadnet_small", "psp_lite0", "fcn8s_lite0"])
def test_every_batchnorm_is_folded(name: str) -> None:
    """Including the EfficientNet stem and stride-2 depthwise convolutions (``Conv2dSame``)."""
    model = build_model(name, 11).eval()
    total = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fuse_conv_bn(model) == total
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_training_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="eval-mode"):
        fuse_conv_bn(build_model("tiny_segnet", 11))


def test_segmenter_folds_by_default_with_the_same_masks(tmp_path, save_tiny_checkpoint) -> None:
    path = save_tiny_checkpoint(tmp_path / "tiny.pt", (64, 48))
    fused = Segmenter(path, device="cpu", warmup=False)
    plain = Segmenter(path, device="cpu", warmup=False, fuse_batchnorm=False)
    assert fused.fused_batchnorms > 0 and plain.fused_batchnorms == 0
    for seed in range(3):
        image, _ = render_scene(seed, 64, 48)
        a, b = fused.predict(image), plain.predict(image)
        assert np.mean(a.mask == b.mask) > 0.999
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
