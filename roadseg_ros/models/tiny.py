"""``tiny_segnet``: a few-thousand-parameter encoder-decoder for fast tests.

It exercises everything the real models do (normalised input of any size, logits at the
input resolution, BatchNorm in training mode, export) while a forward pass on a small
image takes milliseconds, so tests of training, inference, export and the ROS node can
use real trained-and-saved checkpoints without waiting for a big network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class TinySegNet(nn.Module):
    """Two stride-2 encoder stages, one skip connection, bilinear upsampling to the input size."""

    def __init__(self, num_classes: int, width: int = 8) -> None:
        super().__init__()
        self.enc1 = _conv_bn_relu(3, width, stride=2)          # 1/2
        self.enc2 = _conv_bn_relu(width, 2 * width, stride=2)  # 1/4
        self.dec = _conv_bn_relu(2 * width, width)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        f1 = self.enc1(x)
        f2 = self.enc2(f1)
        up = F.interpolate(self.dec(f2), size=f1.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.classifier(up + f1)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def tiny_segnet(num_classes: int, width: int = 8) -> TinySegNet:
    """Build the test network (``width`` channels in the first stage)."""
    return TinySegNet(num_classes, width=width)
