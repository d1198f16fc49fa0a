"""``tiny_segnet``: a few-thousand-parameter encoder-decoder for fast tests.

It exercises everything the real models do (normalised input of any size, logits at the
input resolution, BatchNorm in training mode, export) while a forward pass on a small
image takes milliseconds, so tests of training, inference, export and the ROS node can
use real trained-and-saved checkpoints without waiting for a big network.
"""

from __future__ import annotations

import torch
from torch import nn

from roadseg_ros.models.blocks import conv_bn_act, upsample_to


class TinySegNet(nn.Module):
    """Two stride-2 encoder stages, one skip connection, bilinear upsampling to the input size."""

    def __init__(self, num_classes: int, width: int = 8) -> None:
        super().__init__()
        self.enc1 = conv_bn_act(3, width, 3, stride=2)          # 1/2
        self.enc2 = conv_bn_act(width, 2 * width, 3, stride=2)  # 1/4
        self.dec = conv_bn_act(2 * width, width, 3)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.enc1(x)
        f2 = self.enc2(f1)
        logits = self.classifier(upsample_to(self.dec(f2), f1) + f1)
        return upsample_to(logits, x)


def tiny_segnet(num_classes: int, width: int = 8) -> TinySegNet:
    """Build the test network (``width`` channels in the first stage)."""
    return TinySegNet(num_classes, width=width)
