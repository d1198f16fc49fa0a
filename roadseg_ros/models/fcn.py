"""FCN-8s on a VGG16 encoder (Long, Shelhamer and Darrell), as in the project's seed code.

Layout follows the paper's reference net: VGG16 conv blocks, fc6/fc7 turned into
convolutions (7x7 and 1x1), 1x1 "score" layers on pool3, pool4 and fc7, and learned
transposed-convolution upsampling x2, x2, x8 with the skip additions in between. The
"at-once" variant scales pool3 and pool4 by 0.0001 and 0.01 before their score layers so
that the coarse fc7 path dominates early in training (it is what lets FCN-8s train in one
stage instead of 32s -> 16s -> 8s).

Instead of the reference net's 100-pixel input padding and crop offsets, the input is
padded on the bottom/right to a multiple of 32 so every stride lines up exactly, and the
logits are cropped back to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg16, vgg16_bn

_STRIDE = 32


def _bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Per-channel bilinear interpolation weights for a transposed convolution."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt
    return weight


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Exact x``factor`` transposed convolution (kernel 2f, padding f/2), bilinear-initialised."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(_bilinear_kernel(channels, 2 * factor))
    return up


class FCN8s(nn.Module):
    """FCN-8s. ``forward`` takes any input size; logits come back at that size."""

    def __init__(self, num_classes: int, fc_channels: int = 4096, dropout: float = 0.5,
                 at_once_scaling: bool = True, batch_norm: bool = False) -> None:
        super().__init__()
        features = (vgg16_bn if batch_norm else vgg16)(weights=None).features
        # Split VGG16's feature stack after pool3, pool4 and pool5.
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        self.to_pool3 = features[: pools[2] + 1]
        self.to_pool4 = features[pools[2] + 1: pools[3] + 1]
        self.to_pool5 = features[pools[3] + 1: pools[4] + 1]
        self.fc = nn.Sequential(
            nn.Conv2d(512, fc_channels, 7, padding=3),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(fc_channels, fc_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        # The skip scores start at zero so the untrained net equals FCN-32s (as in the paper).
        for score in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        self.upscore2 = _upsampler(num_classes, 2)
        self.upscore_pool4 = _upsampler(num_classes, 2)
        self.upscore8 = _upsampler(num_classes, 8)
        self.pool3_scale = 1e-4 if at_once_scaling else 1.0
        self.pool4_scale = 1e-2 if at_once_scaling else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h = (_STRIDE - h % _STRIDE) % _STRIDE
        pad_w = (_STRIDE - w % _STRIDE) % _STRIDE
        x = F.pad(x, (0, pad_w, 0, pad_h))
        pool3 = self.to_pool3(x)
        pool4 = self.to_pool4(pool3)
        fc7 = self.fc(self.to_pool5(pool4))
        up = self.upscore2(self.score_fr(fc7))                                        # 1/16
        up = self.upscore_pool4(up + self.score_pool4(pool4 * self.pool4_scale))      # 1/8
        logits = self.upscore8(up + self.score_pool3(pool3 * self.pool3_scale))       # 1/1
        return logits[:, :, :h, :w]


def fcn8s_vgg16(num_classes: int, fc_channels: int = 4096, dropout: float = 0.5,
                at_once_scaling: bool = True, batch_norm: bool = False) -> FCN8s:
    """FCN-8s / VGG16. ``fc_channels`` is the fc6/fc7 width (4096 in the paper; smaller for tests),
    ``batch_norm`` uses VGG16-BN blocks (easier to train from scratch; off = the seeds' net)."""
    return FCN8s(num_classes, fc_channels=fc_channels, dropout=dropout,
                 at_once_scaling=at_once_scaling, batch_norm=batch_norm)
