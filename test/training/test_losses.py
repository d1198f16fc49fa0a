"""roadseg_ros.training.losses: each loss against a case whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roadseg_ros.classes import IGNORE_INDEX
from roadseg_ros.training.losses import build_loss, compute_loss, median_frequency_weights


def test_losses():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0, :] = IGNORE_INDEX
    ce = build_loss("ce")(logits, target)
    # focal with gamma 0 is cross-entropy
    focal0 = build_loss("focal", focal_gamma=0.0)(logits, target)
    assert focal0.item() == pytest.approx(ce.item(), rel=1e-5)
    assert build_loss("focal", focal_gamma=2.0)(logits, target).item() < ce.item()
    # a confident correct prediction has (near) zero Dice loss; ignored pixels do not matter
    perfect = torch.nn.functional.one_hot(target.clamp(0, 2), 3).permute(0, 3, 1, 2).float() * 50
    perfect[0, :, 0, :] = torch.randn(3, 5) * 50
    assert build_loss("dice")(perfect, target).item() == pytest.approx(0.0, abs=1e-3)
    assert build_loss("ce+dice")(perfect, target).item() == pytest.approx(0.0, abs=1e-3)
    # aux outputs add aux_weight x their loss
    both = compute_loss({"out": logits, "aux": logits}, target, build_loss("ce"), 0.5)
    assert both.item() == pytest.approx(1.5 * ce.item(), rel=1e-6)


def test_median_frequency_weights_by_hand():
    # class 0: 4 px of 8 px in images containing it -> 0.5; class 1: 1/4; class 2: 3/4; median 0.5
    data = [(None, np.array([[0, 0], [0, 1]], np.uint8)), (None, np.array([[0, 2], [2, 2]], np.uint8))]
    w = median_frequency_weights([data], 4)
    assert w.tolist() == pytest.approx([1.0, 2.0, 2 / 3, 1.0])
