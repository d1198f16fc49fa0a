"""Segmentation heads on the ImageNet-pretrained EfficientNet-Lite0 encoder: PSP and FCN-8s families.

Both take the encoder's features at strides 8, 16 and 32 (40, 112 and 320 channels) and
return logits at the input size for any input size (odd sizes included: every upsampling
goes to the skip feature's actual size, never by a fixed factor).

``psp_lite0`` (pyramid pooling): PSPNet's pyramid pooling module (bins 1, 2, 3, 6, the same
exportable module as ``pspnet_resnet*``) gives the stride-32 features global context, a
3x3 bottleneck reduces them, and a light top-down path adds the stride-16 and stride-8
features back (1x1 laterals, one depthwise-separable 3x3 fusion each) before a 1x1
classifier at stride 8. PSPNet proper keeps stride 8 by dilating the encoder; on a CPU the
dilated stride-8 encoder costs several times more, and the skips recover the boundaries
(kerbs, poles) that a stride-32 head alone blurs.

``fcn8s_lite0`` (FCN-8s skips): FCN's recipe on the same encoder: a 3x3 "fc" layer and a
class scorer at stride 32, 1x1 scorers on the stride-16 and stride-8 features, each score
map upsampled and added to the next finer one, then bilinear to the input size. The
cheapest head; its class maps are coarser.

Both have an auxiliary head on the stride-16 features in training (``{"out", "aux"}``).
``pretrained=True`` loads the ImageNet encoder weights (and fails with a clear error when
the weights package is missing); a checkpoint is rebuilt with ``pretrained=False`` and then
gets all its weights from the file. ``freeze_encoder_bn`` keeps the encoder's BatchNorm
statistics at their ImageNet values during training (batch 8 on a CPU is too small to
re-estimate them well); the affine parameters still learn.
"""

from __future__ import annotations

import torch
from torch import nn

from roadseg_ros.models.blocks import conv_bn_act, upsample_to
from roadseg_ros.models.efficientnet import LITE_MEAN, LITE_STD, EfficientNetLite, efficientnet_lite0
from roadseg_ros.models.pspnet import PyramidPooling


def _sep(ch: int, out_ch: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BatchNorm and ReLU (a cheap 3x3 fusion).

    One flat ``Sequential`` (depthwise conv, BN, ReLU, then the pointwise block as index 3),
    the layout the trained checkpoints' keys follow.
    """
    return nn.Sequential(*conv_bn_act(ch, ch, 3, groups=ch), conv_bn_act(ch, out_ch, 1))


class _LiteSegmenter(nn.Module):
    """Shared parts: the encoder, its normalisation, BatchNorm freezing, the auxiliary head."""

    #: Input normalisation the encoder's weights expect (recorded in checkpoints by training).
    input_mean = LITE_MEAN
    input_std = LITE_STD

    def __init__(self, num_classes: int, pretrained: bool, freeze_encoder_bn: bool, aux: bool,
                 drop_path: float) -> None:
        super().__init__()
        self.encoder: EfficientNetLite = efficientnet_lite0(pretrained=pretrained, drop_path=drop_path)
        self.freeze_encoder_bn = bool(freeze_encoder_bn)
        c16 = self.encoder.feature_channels[16]
        self.aux_head = nn.Sequential(conv_bn_act(c16, 64, 3), nn.Conv2d(64, num_classes, 1)) if aux else None

    def train(self, mode: bool = True) -> _LiteSegmenter:
        super().train(mode)
        if mode and self.freeze_encoder_bn:
            for m in self.encoder.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def _finish(self, logits: torch.Tensor, feats: dict[int, torch.Tensor], x: torch.Tensor
                ) -> torch.Tensor | dict[str, torch.Tensor]:
        # Upsample class planes (NCHW), not channels-last pixels: with ~11 channels the NHWC kernel
        # vectorises badly and needs a transposing copy of the full-size logits, and the caller
        # wants planes anyway (arg-max/softmax per class). Figures: README, "Benchmarks".
        out = upsample_to(logits.contiguous(), x)
        if self.training and self.aux_head is not None:
            return {"out": out, "aux": upsample_to(self.aux_head(feats[16]), x)}
        return out


class PSPLite(_LiteSegmenter):
    """EfficientNet-Lite0 + pyramid pooling + a light top-down path to stride 8 (see module docstring)."""

    def __init__(self, num_classes: int, pretrained: bool = False, width: int = 128, dropout: float = 0.1,
                 aux: bool = True, freeze_encoder_bn: bool = True, drop_path: float = 0.0) -> None:
        super().__init__(num_classes, pretrained, freeze_encoder_bn, aux, drop_path)
        ch = self.encoder.feature_channels
        self.ppm = PyramidPooling(ch[32])
        self.bottleneck = conv_bn_act(self.ppm.out_channels, width, 3)
        self.lateral16 = conv_bn_act(ch[16], width, 1)
        self.lateral8 = conv_bn_act(ch[8], width, 1)
        self.fuse16 = _sep(width, width)
        self.fuse8 = _sep(width, width)
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        feats = self.encoder.forward_features(x)
        p = self.bottleneck(self.ppm(feats[32]))
        p = self.fuse16(upsample_to(p, feats[16]) + self.lateral16(feats[16]))
        p = self.fuse8(upsample_to(p, feats[8]) + self.lateral8(feats[8]))
        return self._finish(self.classifier(p), feats, x)


class FCN8sLite(_LiteSegmenter):
    """EfficientNet-Lite0 + FCN-8s score-map skips at strides 32, 16 and 8 (see module docstring)."""

    def __init__(self, num_classes: int, pretrained: bool = False, width: int = 256, dropout: float = 0.1,
                 aux: bool = True, freeze_encoder_bn: bool = True, drop_path: float = 0.0) -> None:
        super().__init__(num_classes, pretrained, freeze_encoder_bn, aux, drop_path)
        ch = self.encoder.feature_channels
        self.fc = nn.Sequential(conv_bn_act(ch[32], width, 3), nn.Dropout2d(dropout))
        self.score32 = nn.Conv2d(width, num_classes, 1)
        self.score16 = nn.Conv2d(ch[16], num_classes, 1)
        self.score8 = nn.Conv2d(ch[8], num_classes, 1)
        # FCN's skip scorers start at zero so training begins from the stride-32 prediction.
        for m in (self.score16, self.score8):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        feats = self.encoder.forward_features(x)
        s = self.score32(self.fc(feats[32]))
        s = upsample_to(s, feats[16]) + self.score16(feats[16])
        s = upsample_to(s, feats[8]) + self.score8(feats[8])
        return self._finish(s, feats, x)


def psp_lite0(num_classes: int, pretrained: bool = False, width: int = 128, dropout: float = 0.1,
              aux: bool = True, freeze_encoder_bn: bool = True, drop_path: float = 0.0) -> PSPLite:
    """Pyramid-pooling head on ImageNet EfficientNet-Lite0 (``pretrained=True``: start from ImageNet)."""
    return PSPLite(num_classes, pretrained, width, dropout, aux, freeze_encoder_bn, drop_path)


def fcn8s_lite0(num_classes: int, pretrained: bool = False, width: int = 256, dropout: float = 0.1,
                aux: bool = True, freeze_encoder_bn: bool = True, drop_path: float = 0.0) -> FCN8sLite:
    """FCN-8s skip head on ImageNet EfficientNet-Lite0 (``pretrained=True``: start from ImageNet)."""
    return FCN8sLite(num_classes, pretrained, width, dropout, aux, freeze_encoder_bn, drop_path)
