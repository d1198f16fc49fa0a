"""models.blocks: the shared conv-BN-activation and upsample, in the layout trained checkpoints rely on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from roadseg_ros.models import fuse_conv_bn
from roadseg_ros.models.blocks import conv_bn_act, upsample_to

BN_KEYS = ["1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]


def test_conv_bn_act_is_a_flat_sequential_with_checkpoint_keys() -> None:
    block = conv_bn_act(4, 6, 3)
    assert type(block) is nn.Sequential
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] and block[2].inplace
    assert list(block.state_dict()) == ["0.weight", *BN_KEYS]          # no conv bias
    assert block[0].padding == (1, 1) and block[0].groups == 1
    plain = conv_bn_act(4, 6, 1, stride=2, act=None)
    assert [type(m) for m in plain] == [nn.Conv2d, nn.BatchNorm2d] and plain[0].padding == (0, 0)
    depthwise = conv_bn_act(6, 6, 3, groups=6, act=nn.ReLU6)
    assert depthwise[0].weight.shape == (6, 1, 3, 3) and type(depthwise[2]) is nn.ReLU6


def test_conv_bn_act_keeps_the_size_or_halves_it_rounding_up() -> None:
    x = torch.randn(1, 4, 15, 22)
    assert conv_bn_act(4, 6, 3)(x).shape == (1, 6, 15, 22)
    assert conv_bn_act(4, 6, 5, stride=2)(x).shape == (1, 6, 8, 11)


def test_conv_bn_act_folds_and_computes_the_same() -> None:
    torch.manual_seed(0)
    block = conv_bn_act(4, 6, 3)
    block.train()
    block(torch.randn(8, 4, 9, 9))                  # non-trivial running statistics
    block.eval()
    x = torch.randn(2, 4, 11, 7)
    with torch.no_grad():
        before = block(x)
        assert fuse_conv_bn(block) == 1
        assert torch.allclose(block(x), before, atol=1e-5)


def test_upsample_to_takes_the_reference_size_even_when_odd() -> None:
    x, like = torch.randn(1, 3, 4, 6), torch.empty(2, 9, 15, 23)
    out = upsample_to(x, like)
    assert out.shape == (1, 3, 15, 23)
    assert torch.equal(out, F.interpolate(x, size=(15, 23), mode="bilinear", align_corners=False))
