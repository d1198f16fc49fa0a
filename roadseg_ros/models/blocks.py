"""The layers the segmentation heads share: convolution-BatchNorm-activation, and resize-to-a-feature.

Each head used to write these itself, with different default kernels, so reading one head
told nothing about the next. Both are kept deliberately plain:

* :func:`conv_bn_act` returns an ``nn.Sequential(conv, bn[, act])``, not a module class of
  its own: the state_dict keys of the trained checkpoints (``<name>.0.weight``,
  ``<name>.1.running_mean``) are those of that layout, and :func:`~roadseg_ros.models.fuse_conv_bn`
  folds exactly such adjacent pairs. A head may also unpack it into a longer ``Sequential``
  (``nn.Sequential(*conv_bn_act(...), nn.Dropout2d(p), ...)``) and keep flat indices.
* :func:`upsample_to` resizes to another tensor's actual height and width, never by a fixed
  factor, so odd input sizes line up with their skip features.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv_bn_act", "upsample_to"]


def _relu() -> nn.Module:
    """The activation every head uses (in place: the BatchNorm output is not needed again)."""
    return nn.ReLU(inplace=True)


def conv_bn_act(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                act: Callable[[], nn.Module] | None = _relu) -> nn.Sequential:
    """``kernel`` x ``kernel`` convolution (no bias, "same" padding), BatchNorm, then ``act()``.

    The kernel has no default because the heads disagree on it (1x1 laterals, 3x3 fusions);
    spelling it at each call keeps that visible. ``act=None`` leaves the activation out (the
    last BatchNorm of a residual branch, a projection shortcut).
    """
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2,
                                         groups=groups, bias=False),
                               nn.BatchNorm2d(out_ch)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` resized bilinearly (``align_corners=False``) to the height and width of ``like``."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
