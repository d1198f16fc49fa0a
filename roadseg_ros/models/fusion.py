"""Fold BatchNorm into the preceding convolution for inference.

In eval mode a ``BatchNorm2d`` is a fixed per-channel affine map, so a ``Conv2d`` followed
by it equals one convolution with rescaled weights and a bias. Folding removes a full pass
over every activation map (on a GPU, a kernel launch per layer). Measured on this project's
2-core CPU, 2026-11-21, ``roadnet_small`` (27 BatchNorms, all folded), one thread, two
alternating runs of ``bench_segmenter.py --models roadnet_small --sizes 576x160 1242x375
--batches 1 --threads 1 --no-baseline`` with and without ``--no-fuse``: median predict
23.2 / 23.0 ms folded against 25.9 / 22.9 ms unfolded at 576x160, and 112.4 / 100.4 ms
against 113.5 / 115.2 ms at 1242x375: a few per cent, about the size of this machine's
run-to-run noise. Masks agree (test/models/test_fusion.py).

Only ``Conv2d -> BatchNorm2d`` pairs (``Conv2dSame``, the EfficientNet encoder's
TF-padded stride-2 convolution, included) that sit next to each other in an ``nn.Sequential``
are folded (the form every model here, and torchvision's down-sampling branches, use);
anything else is left untouched, so the result always computes the same function.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from roadseg_ros.models.efficientnet import Conv2dSame

__all__ = ["fuse_conv_bn"]

#: Convolution types whose forward applies ``self.bias`` (so a folded bias takes effect).
#: Exact types: a subclass may compute something else (``Conv2dSame`` pads first, then
#: convolves with weight and bias, which folding preserves).
_FOLDABLE_CONVS = (nn.Conv2d, Conv2dSame)


def fuse_conv_bn(model: nn.Module) -> int:
    """Fold adjacent ``Conv2d -> BatchNorm2d`` pairs of an eval-mode ``model`` in place.

    The BatchNorm is replaced by ``nn.Identity`` so module indices (and any code that
    walks the ``Sequential``) stay valid. Returns the number of pairs folded. Refuses a
    model in training mode: folding freezes the running statistics.
    """
    if model.training:
        raise ValueError("fuse_conv_bn needs an eval-mode model (call model.eval() first): folding "
                         "freezes BatchNorm's running statistics")
    folded = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, nn.Sequential):
                continue
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if (type(conv) in _FOLDABLE_CONVS and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                        and bn.running_mean is not None and conv.out_channels == bn.num_features):
                    module[i] = fuse_conv_bn_eval(conv, bn)
                    module[i + 1] = nn.Identity()
                    folded += 1
    return folded
