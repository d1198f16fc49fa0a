"""PSPNet (Zhao et al.) on a dilated torchvision ResNet-18 or ResNet-50.

Output stride 8: layer3 and layer4 keep their resolution and dilate their 3x3
convolutions by 2 and 4 instead (torchvision's ``replace_stride_with_dilation`` refuses
BasicBlock, so the layers are converted here, the same way for both depths). A pyramid
pooling module with bins 1, 2, 3 and 6 adds global context; an auxiliary head on layer3
adds a deep-supervision loss in training only.

Pyramid pooling: ``F.adaptive_avg_pool2d`` to a fixed number of bins exports to ONNX only
when the feature size is a multiple of the bin count (the exporter turns it into a
fixed-kernel AvgPool). To export at any size, :func:`_bin_pool` computes the same
adaptive average with two small averaging matrices built from the feature's shape
(identical bin edges: floor(i*n/b) .. ceil((i+1)*n/b)), which traces and exports.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18, resnet50

from roadseg_ros.models.blocks import conv_bn_act, upsample_to

BINS = (1, 2, 3, 6)


def _dilate(layer: nn.Sequential, dilation: int) -> None:
    """Turn a strided ResNet stage into a dilated one in place (stride 1, 3x3 dilation ``dilation``)."""
    for module in layer.modules():
        if isinstance(module, nn.Conv2d):
            if module.stride == (2, 2):
                module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = (dilation, dilation)
                module.padding = (dilation, dilation)


def _pool_matrix(n: torch.Tensor, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``[bins, n]`` matrix whose row i averages adaptive-pool bin i of a length-``n`` axis.

    ``n`` is a tensor so that tracing records it as the input's size, not a constant.
    """
    nf = n.to(like.dtype)
    idx = torch.arange(n, device=like.device).to(like.dtype)
    b = torch.arange(bins, device=like.device).to(like.dtype)[:, None]
    start = torch.floor(b * nf / bins)
    end = torch.ceil((b + 1) * nf / bins)
    mask = ((idx[None, :] >= start) & (idx[None, :] < end)).to(like.dtype)
    return mask / mask.sum(dim=1, keepdim=True)


def _bin_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Adaptive average pooling to ``bins x bins`` written with matmuls (exportable at any size)."""
    if bins == 1:
        return x.mean(dim=(2, 3), keepdim=True)
    h, w = x.shape[-2:]
    ph = _pool_matrix(torch.as_tensor(h), bins, x)   # [b, H]
    pw = _pool_matrix(torch.as_tensor(w), bins, x)   # [b, W]
    return torch.matmul(torch.matmul(ph, x), pw.transpose(0, 1))


class PyramidPooling(nn.Module):
    """Pool to each bin count, 1x1-reduce, upsample back, concatenate with the input."""

    def __init__(self, in_ch: int, bins: tuple[int, ...] = BINS) -> None:
        super().__init__()
        self.bins = tuple(bins)
        red = in_ch // len(self.bins)
        # No BatchNorm here: the 1x1-bin branch has a single value per channel and image,
        # which BatchNorm cannot normalise at batch size 1.
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_ch, red, 1), nn.ReLU(inplace=True)) for _ in self.bins
        )
        self.out_channels = in_ch + red * len(self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for bins, branch in zip(self.bins, self.branches):
            feats.append(upsample_to(branch(_bin_pool(x, bins)), x))
        return torch.cat(feats, dim=1)


def _head(in_ch: int, mid_ch: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(*conv_bn_act(in_ch, mid_ch, 3), nn.Dropout2d(dropout),
                         nn.Conv2d(mid_ch, num_classes, 1))


class PSPNet(nn.Module):
    """Dilated ResNet + pyramid pooling; ``{"out", "aux"}`` in training, logits in eval."""

    def __init__(self, num_classes: int, depth: int = 18, dropout: float = 0.1, aux: bool = True) -> None:
        super().__init__()
        if depth not in (18, 50):
            raise ValueError(f"pspnet: depth must be 18 or 50, got {depth!r}")
        backbone = (resnet18 if depth == 18 else resnet50)(weights=None)
        _dilate(backbone.layer3, 2)
        _dilate(backbone.layer4, 4)
        self.stem = nn.Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool)
        self.layer1, self.layer2 = backbone.layer1, backbone.layer2
        self.layer3, self.layer4 = backbone.layer3, backbone.layer4
        c3 = 256 if depth == 18 else 1024
        c4 = 512 if depth == 18 else 2048
        self.ppm = PyramidPooling(c4)
        self.head = _head(self.ppm.out_channels, 512 if depth == 50 else 256, num_classes, dropout)
        self.aux_head = _head(c3, 256 if depth == 50 else 128, num_classes, dropout) if aux else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        f3 = self.layer3(self.layer2(self.layer1(self.stem(x))))
        out = upsample_to(self.head(self.ppm(self.layer4(f3))), x)
        if self.training and self.aux_head is not None:
            return {"out": out, "aux": upsample_to(self.aux_head(f3), x)}
        return out


def pspnet_resnet18(num_classes: int, dropout: float = 0.1, aux: bool = True) -> PSPNet:
    """PSPNet on dilated ResNet-18 (output stride 8)."""
    return PSPNet(num_classes, depth=18, dropout=dropout, aux=aux)


def pspnet_resnet50(num_classes: int, dropout: float = 0.1, aux: bool = True) -> PSPNet:
    """PSPNet on dilated ResNet-50 (output stride 8)."""
    return PSPNet(num_classes, depth=50, dropout=dropout, aux=aux)
