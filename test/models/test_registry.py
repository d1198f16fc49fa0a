"""The model registry: names, errors that list the valid choices, main_output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import roadseg_ros.models as models
from roadseg_ros.models import DEFAULT_MODEL, build_model, list_models, main_output, register_model

REQUIRED = ["fcn8s_vgg16", "pspnet_resnet18", "pspnet_resnet50", "tiny_segnet"]


def test_required_models_and_default_are_registered():
    names = list_models()
    for name in REQUIRED:
        assert name in names
    assert DEFAULT_MODEL in names
    assert DEFAULT_MODEL not in REQUIRED  # the default is the real-time model, not a reference net
    assert names == sorted(names)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        build_model("nope", 2)
    msg = str(info.value)
    assert "'nope'" in msg
    for name in list_models():
        assert name in msg


@pytest.mark.parametrize("bad", [0, -3, 2.5, "11", True])
def test_bad_num_classes_is_refused(bad):
    with pytest.raises(ValueError, match="num_classes"):
        build_model("tiny_segnet", bad)


def test_bad_keyword_names_the_model():
    with pytest.raises(TypeError, match="tiny_segnet"):
        build_model("tiny_segnet", 2, no_such_option=1)


def test_build_passes_num_classes_and_kwargs():
    model = build_model("tiny_segnet", 7, width=4)
    assert model.classifier.out_channels == 7
    assert model.enc1[0].out_channels == 4


def test_register_custom_model_and_refuse_duplicates():
    class Constant(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.num_classes = num_classes

        def forward(self, x):
            return x.new_zeros(x.shape[0], self.num_classes, *x.shape[2:])

    try:
        register_model("test_constant", Constant)
        assert "test_constant" in list_models()
        assert build_model("test_constant", 3)(torch.zeros(1, 3, 5, 6)).shape == (1, 3, 5, 6)
        with pytest.raises(ValueError, match="already registered"):
            register_model("test_constant", lambda n: Constant(n))

        @register_model("test_constant_deco")
        def _builder(num_classes: int) -> nn.Module:
            return Constant(num_classes)

        assert isinstance(build_model("test_constant_deco", 2), Constant)
    finally:
        models._REGISTRY.pop("test_constant", None)
        models._REGISTRY.pop("test_constant_deco", None)
    assert "test_constant" not in list_models()


def test_main_output():
    t = torch.ones(1, 2, 3, 4)
    aux = torch.zeros(1, 2, 3, 4)
    assert main_output(t) is t
    assert main_output({"out": t, "aux": aux}) is t
