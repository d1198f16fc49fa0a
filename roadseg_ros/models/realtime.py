"""Real-time models for the CPU/GPU node.

``roadnet_small`` (the default, ``DEFAULT_MODEL``): the project's own small
encoder-decoder, chosen by measurement with ``benchmarks/pick_realtime_model.py`` on the
2-core CPU box (576x160, batch 1, fp32, channels-last, 2 threads, quiet machine):
~11 ms per frame (~90 frames/s, 4.1 M parameters) against ~12.6 ms for torchvision's
LRASPP/MobileNetV3-Large, which leaves most of the 50 ms frame budget for pre- and
post-processing. Speed alone did not decide it: no pretrained backbone can be downloaded,
so the net must train from scratch on CamVid's 367 images on a CPU. Plain ResNet basic
blocks with BatchNorm and ReLU (no squeeze-excitation, no hard-swish, no depthwise
convolutions) and a feature-pyramid decoder with skips at 1/4, 1/8 and 1/16 do: in a
5-minute from-scratch CamVid run (240x176, same recipe for both) it reached 0.45 val
mIoU where LRASPP/MobileNetV3-Large reached 0.32. The skips recover thin structures
(poles, kerbs) that a 1/8-only head loses.

Layout (strides): stem 3x3/2 -> 3x3/2 (1/4), ResNet stages at 1/4, 1/8, 1/16, 1/32; a
global-context branch on 1/32 (BiSeNet-style global average pool added back); top-down
decoder with 1x1 laterals and a 3x3 fusion conv per level; 1x1 classifier at 1/4 and a
bilinear x4 to the input size. An auxiliary head on the 1/16 stage supervises the
encoder directly in training (returned as ``"aux"``; absent in eval). Widths, depths and
decoder width are keyword arguments, so the benchmark can sweep them.

``lraspp_mobilenet_v3_large`` (torchvision's LRASPP, wrapped to return a tensor; takes
``width_mult`` and ``reduced_tail``) is registered as an alternative and as the
measurement's baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.lraspp import LRASPP

from roadseg_ros.models.blocks import conv_bn_act, upsample_to


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, identity or 1x1 projection shortcut)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(in_ch, out_ch, 3, stride)
        self.conv2 = conv_bn_act(out_ch, out_ch, 3, act=None)
        self.short = None
        if stride != 1 or in_ch != out_ch:
            self.short = conv_bn_act(in_ch, out_ch, 1, stride, act=None)
        # Zero-init the last BN so each block starts as identity: helps from-scratch training.
        nn.init.zeros_(self.conv2[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.short is None else self.short(x)
        return F.relu(self.conv2(self.conv1(x)) + identity, inplace=True)


def _stage(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_ch, out_ch, stride)]
    layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class RoadNet(nn.Module):
    """Small ResNet encoder + global context + FPN decoder (see the module docstring)."""

    def __init__(self, num_classes: int, widths: Sequence[int] = (32, 48, 96, 192, 256),
                 blocks: Sequence[int] = (1, 2, 2, 2), decoder: int = 64, dropout: float = 0.1,
                 aux: bool = True) -> None:
        super().__init__()
        if len(widths) != 5 or len(blocks) != 4:
            raise ValueError(f"roadnet: widths needs 5 values (stem, 4 stages) and blocks 4, "
                             f"got widths={list(widths)} blocks={list(blocks)}")
        w0, w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(conv_bn_act(3, w0, 3, 2), conv_bn_act(w0, w1, 3, 2))  # 1/4
        self.stage1 = _stage(w1, w1, blocks[0], 1)                           # 1/4
        self.stage2 = _stage(w1, w2, blocks[1], 2)                           # 1/8
        self.stage3 = _stage(w2, w3, blocks[2], 2)                           # 1/16
        self.stage4 = _stage(w3, w4, blocks[3], 2)                           # 1/32
        self.context = conv_bn_act(w4, decoder, 1)
        self.global_context = nn.Sequential(nn.Conv2d(w4, decoder, 1), nn.ReLU(inplace=True))
        self.lat3, self.lat2, self.lat1 = (conv_bn_act(w3, decoder, 1), conv_bn_act(w2, decoder, 1),
                                            conv_bn_act(w1, decoder, 1))
        self.fuse3, self.fuse2, self.fuse1 = (conv_bn_act(decoder, decoder, 3) for _ in range(3))
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(decoder, num_classes, 1))
        self.aux_head = None
        if aux:
            self.aux_head = nn.Sequential(conv_bn_act(w3, decoder, 3), nn.Dropout2d(dropout),
                                          nn.Conv2d(decoder, num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        f1 = self.stage1(self.stem(x))
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        f4 = self.stage4(f3)
        ctx = self.context(f4) + self.global_context(f4.mean(dim=(2, 3), keepdim=True))
        d = self.fuse3(upsample_to(ctx, f3) + self.lat3(f3))
        d = self.fuse2(upsample_to(d, f2) + self.lat2(f2))
        d = self.fuse1(upsample_to(d, f1) + self.lat1(f1))
        out = upsample_to(self.classifier(d), x)
        if self.training and self.aux_head is not None:
            return {"out": out, "aux": upsample_to(self.aux_head(f3), x)}
        return out


def roadnet_small(num_classes: int, widths: Sequence[int] = (32, 48, 96, 192, 256),
                  blocks: Sequence[int] = (1, 2, 2, 2), decoder: int = 64, dropout: float = 0.1,
                  aux: bool = True) -> RoadNet:
    """The real-time default. The defaults are the measured choice; the benchmark sweeps the others."""
    return RoadNet(num_classes, widths=tuple(widths), blocks=tuple(blocks), decoder=decoder,
                   dropout=dropout, aux=aux)


class LRASPPWrapper(nn.Module):
    """torchvision LRASPP returning a plain tensor (its native output is ``{"out": ...}``)."""

    def __init__(self, model: LRASPP) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def lraspp_mobilenet_v3_large(num_classes: int, width_mult: float = 1.0,
                              reduced_tail: bool = False) -> LRASPPWrapper:
    """LRASPP on a dilated MobileNetV3-Large (torchvision blocks, random init)."""
    backbone = mobilenet_v3_large(weights=None, dilated=True, width_mult=width_mult,
                                  reduced_tail=reduced_tail).features
    strided = [0] + [i for i, b in enumerate(backbone) if getattr(b, "_is_cn", False)] + [len(backbone) - 1]
    low, high = strided[-4], strided[-1]     # C2 (stride 8) and C5 (stride 16, dilated)
    getter = IntermediateLayerGetter(backbone, return_layers={str(low): "low", str(high): "high"})
    return LRASPPWrapper(LRASPP(getter, backbone[low].out_channels, backbone[high].out_channels, num_classes))


#: The real-time models registered by :mod:`roadseg_ros.models`.
REALTIME_MODELS = {
    "roadnet_small": roadnet_small,
    "lraspp_mobilenet_v3_large": lraspp_mobilenet_v3_large,
}
