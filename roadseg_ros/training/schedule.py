"""Optimiser and learning-rate schedule: AdamW or SGD, per-group rates, warm-up then poly or cosine.

The schedule is a function of the global step alone (:func:`lr_factor`), so a resumed run
continues on exactly the curve an uninterrupted one would have followed.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

__all__ = ["SCHEDULES", "lr_factor", "build_optimizer", "build_scheduler"]

SCHEDULES = ("poly", "cosine")


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then poly(0.9) or cosine decay."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "poly":
        return (1.0 - progress) ** 0.9
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW (default: robust from scratch) or SGD with Nesterov momentum; no decay on norms and biases.

    A model with a pretrained ``encoder`` gets it in its own groups at ``--encoder-lr-mult`` x
    the learning rate: the ImageNet features need nudging, the new heads need learning.
    """
    encoder = getattr(model, "encoder", None)
    enc_ids = {id(p) for p in encoder.parameters()} if isinstance(encoder, nn.Module) else set()
    mult = getattr(args, "encoder_lr_mult", 1.0) if enc_ids else 1.0
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            buckets.setdefault((id(p) in enc_ids, p.ndim <= 1), []).append(p)
    groups = [{"params": params, "weight_decay": 0.0 if flat else args.weight_decay,
               "lr": args.lr * (mult if in_enc else 1.0)}
              for (in_enc, flat), params in sorted(buckets.items())]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=args.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, schedule: str,
                    warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping every batch along :func:`lr_factor` (its state is saved in resume.pt)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, schedule, warmup_steps))
