"""The PSP and FCN-8s heads on the pretrained EfficientNet-Lite0 encoder (build, shape and gradient
checks of every registered model are in test_models.py; export parity in test/tools/test_export.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from roadseg_ros.models import accepts_pretrained, build_model, fuse_conv_bn, list_models
from roadseg_ros.models.efficientnet import LITE_MEAN, LITE_STD, imagenet_weights_path

LITE_MODELS = ["psp_lite0", "fcn8s_lite0"]


def test_registered_and_take_pretrained() -> None:
    assert set(LITE_MODELS) <= set(list_models())
    assert all(accepts_pretrained(n) for n in LITE_MODELS)
    assert not accepts_pretrained("roadnet_small")
    with pytest.raises(ValueError, match="valid models"):
        accepts_pretrained("psp_lite9")


@pytest.mark.parametrize("name", LITE_MODELS)
def test_pretrained_encoder_holds_the_imagenet_weights(name: str) -> None:
    source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    model = build_model(name, 4, pretrained=True)
    assert torch.equal(model.encoder.stem[0].weight, source["_conv_stem.weight"])
    last_bn = model.encoder.stages[6][0].project[1]
    assert torch.equal(last_bn.running_var, source["_blocks.15._bn2.running_var"])
    fresh = build_model(name, 4)
    assert not torch.equal(fresh.encoder.stem[0].weight, source["_conv_stem.weight"])
    assert model.input_mean == LITE_MEAN and model.input_std == LITE_STD


@pytest.mark.parametrize("name", LITE_MODELS)
def test_encoder_batchnorm_statistics_stay_frozen(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, pretrained=True).train()
    enc_bn = model.encoder.stages[2][0].depthwise[1]
    head_bn = next(m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
                   and not n.startswith("encoder."))
    before_enc, before_head = enc_bn.running_mean.clone(), head_bn.running_mean.clone()
    out = model(torch.randn(2, 3, 64, 96) * 3 + 1)
    F.cross_entropy(out["out"], torch.randint(0, 3, (2, 64, 96))).backward()
    assert torch.equal(enc_bn.running_mean, before_enc)       # ImageNet statistics kept
    assert not torch.equal(head_bn.running_mean, before_head)  # the new head's BatchNorm learns
    assert enc_bn.weight.grad is not None                       # the affine parameters still train
    unfrozen = build_model(name, 3, freeze_encoder_bn=False).train()
    bn = unfrozen.encoder.stages[2][0].depthwise[1]
    before = bn.running_mean.clone()
    unfrozen(torch.randn(2, 3, 64, 96))
    assert not torch.equal(bn.running_mean, before)


@pytest.mark.parametrize("name", LITE_MODELS)
def test_batchnorm_folding_keeps_the_output(name: str) -> None:
    torch.manual_seed(1)
    model = build_model(name, 5, pretrained=True).eval()
    x = torch.randn(1, 3, 75, 131)
    with torch.inference_mode():
        ref = model(x)
        assert fuse_conv_bn(model) > 40
        assert torch.allclose(model(x), ref, atol=1e-4, rtol=1e-4)
