"""Training losses: cross-entropy, focal, Dice and their sum, with an auxiliary head's share.

All of them ignore ``IGNORE_INDEX`` pixels. Class weights (``--class-weights median-freq``)
are SegNet's median-frequency balancing, computed once from the training labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from roadseg_ros.classes import IGNORE_INDEX

__all__ = ["LOSSES", "FocalLoss", "DiceLoss", "build_loss", "compute_loss", "median_frequency_weights"]

LOSSES = ("ce", "focal", "dice", "ce+dice")


class FocalLoss(nn.Module):
    """Focal loss (Lin et al.): cross-entropy scaled by (1 - p_t)^gamma, averaged over valid pixels."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none")
        valid = target != self.ignore_index
        pt = torch.exp(-ce)
        loss = (1 - pt).pow(self.gamma) * ce
        if self.weight is not None:
            loss = loss * self.weight[target.clamp(0, logits.shape[1] - 1)]
        return loss[valid].sum() / valid.sum().clamp(min=1)


class DiceLoss(nn.Module):
    """Soft Dice loss over the classes present in the batch's valid pixels (1 - mean Dice)."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1).float()
        probs = logits.float().softmax(1) * valid
        onehot = F.one_hot(target.clamp(0, n - 1), n).permute(0, 3, 1, 2).float() * valid
        inter = (probs * onehot).sum((0, 2, 3))
        denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        dice = (2 * inter + self.smooth) / (denom + self.smooth)
        present = onehot.sum((0, 2, 3)) > 0
        return 1 - (dice[present].mean() if present.any() else dice.mean())


def build_loss(name: str, class_weights: torch.Tensor | None = None,
               focal_gamma: float = 2.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-output loss: ``ce``, ``focal``, ``dice`` or ``ce+dice`` (all ignore label 255)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    ce = nn.CrossEntropyLoss(weight=class_weights, ignore_index=IGNORE_INDEX)
    if name == "ce":
        return ce
    if name == "focal":
        return FocalLoss(focal_gamma, class_weights)
    dice = DiceLoss()
    if name == "dice":
        return dice
    return lambda logits, target: ce(logits, target) + dice(logits, target)


def compute_loss(out: torch.Tensor | dict[str, torch.Tensor], target: torch.Tensor,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 aux_weight: float) -> torch.Tensor:
    """Loss of the main logits plus ``aux_weight`` x the auxiliary head's (models returning a dict)."""
    if isinstance(out, dict):
        loss = loss_fn(out["out"].float(), target)
        if "aux" in out and aux_weight > 0:
            loss = loss + aux_weight * loss_fn(out["aux"].float(), target)
        return loss
    return loss_fn(out.float(), target)


def median_frequency_weights(datasets: Sequence[Dataset], num_classes: int) -> torch.Tensor:
    """SegNet's median-frequency balancing: w_c = median(f) / f_c.

    f_c = pixels of class c / total pixels of the images in which c occurs.

    Classes absent from the training labels get weight 1 (they cannot contribute anyway).
    """
    from tqdm import tqdm

    pixels = np.zeros(num_classes, dtype=np.float64)
    image_pixels = np.zeros(num_classes, dtype=np.float64)
    for ds in datasets:
        for i in tqdm(range(len(ds)), desc="class frequencies", leave=False):
            label = np.asarray(ds[i][1])
            counts = np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=num_classes)[:num_classes]
            pixels += counts
            image_pixels[counts > 0] += label.size
    present = image_pixels > 0
    freq = np.where(present, pixels / np.maximum(image_pixels, 1), 0.0)
    weights = np.ones(num_classes)
    if present.any():
        weights[present] = np.median(freq[present]) / freq[present]
    return torch.tensor(weights, dtype=torch.float32)
