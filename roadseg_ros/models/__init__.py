"""Segmentation models, built by name.

Everything that makes a network (training, checkpoints, inference, export, benchmarks)
goes through :func:`build_model` so that a checkpoint only has to record a registry
name plus keyword arguments to be rebuilt later, and so that a typo in a config or on a
command line fails immediately with the list of valid names.

Contract shared by every registered model: ``model(x)`` with ``x`` float ``[N,3,H,W]``
(normalised) returns logits ``[N,num_classes,H,W]`` at the input resolution for any H, W.
In training mode a model with an auxiliary head returns ``{"out": ..., "aux": ...}``;
:func:`main_output` picks the main logits either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

ModelBuilder = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str, builder: ModelBuilder | None = None):
    """Register ``builder(num_classes, **kwargs) -> nn.Module`` under ``name``.

    Usable directly (``register_model("x", fn)``) or as a decorator (``@register_model("x")``).
    Registering a name twice is an error: two models silently sharing a name would make
    checkpoints ambiguous.
    """

    def _add(fn: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    if builder is not None:
        return _add(builder)
    return _add


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build model ``name`` with ``num_classes`` output channels (weights randomly initialised).

    Raises ``ValueError`` naming the bad name and listing the valid ones, or naming a bad
    ``num_classes``; bad keyword arguments raise ``TypeError`` naming the model.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(list_models())}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"model {name!r}: num_classes must be a positive integer, got {num_classes!r}")
    try:
        return _REGISTRY[name](num_classes, **kwargs)
    except TypeError as exc:
        raise TypeError(f"model {name!r}: bad arguments {sorted(kwargs)}: {exc}") from exc


def accepts_pretrained(name: str) -> bool:
    """Whether model ``name`` takes ``pretrained=`` (an ImageNet encoder that training starts from).

    Training passes ``pretrained=True`` to such models; checkpoints never record it, so
    rebuilding a trained model neither needs the weights package nor spends time loading it.
    """
    import inspect

    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(list_models())}")
    return "pretrained" in inspect.signature(_REGISTRY[name]).parameters


def main_output(out: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The main logits of a model output: the tensor itself, or ``out["out"]`` in training mode."""
    if isinstance(out, Mapping):
        return out["out"]
    return out


# Registration happens here (not in the submodules) so that importing a single submodule has
# no side effects and there is no import cycle.
from roadseg_ros.models.fcn import fcn8s_vgg16  # noqa: E402
from roadseg_ros.models.fusion import fuse_conv_bn  # noqa: E402
from roadseg_ros.models.lite import fcn8s_lite0, psp_lite0  # noqa: E402
from roadseg_ros.models.pspnet import pspnet_resnet18, pspnet_resnet50  # noqa: E402
from roadseg_ros.models.realtime import REALTIME_MODELS  # noqa: E402
from roadseg_ros.models.tiny import tiny_segnet  # noqa: E402

register_model("fcn8s_vgg16", fcn8s_vgg16)
register_model("pspnet_resnet18", pspnet_resnet18)
register_model("pspnet_resnet50", pspnet_resnet50)
register_model("tiny_segnet", tiny_segnet)
register_model("psp_lite0", psp_lite0)
register_model("fcn8s_lite0", fcn8s_lite0)
for _name, _builder in REALTIME_MODELS.items():
    register_model(_name, _builder)

#: The node's default network and roadseg-train's default ``--model``: the ImageNet-pretrained
#: EfficientNet-Lite0 with a pyramid-pooling head. Chosen by measurement against the former
#: default ``roadnet_small`` (from scratch): better on every validation split, from CamVid to
#: roads it was never trained on, for a somewhat higher CPU cost (figures and commands: README,
#: "Results: the bundled weights" and "Benchmarks"). ``roadnet_small`` stays registered for the
#: fastest CPUs.
DEFAULT_MODEL = "psp_lite0"

__all__ = ["DEFAULT_MODEL", "ModelBuilder", "accepts_pretrained", "build_model", "fuse_conv_bn",
           "list_models", "main_output", "register_model"]
