"""roadseg_ros.training.schedule: warm-up and decay factors, and the scheduler built on them."""

from __future__ import annotations

import pytest
import torch

from roadseg_ros.training.schedule import build_scheduler, lr_factor


def test_lr_factor():
    assert lr_factor(0, 100, "poly") == 1.0
    assert lr_factor(50, 100, "poly") == pytest.approx(0.5 ** 0.9)
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(4, 100, "poly", warmup_steps=10) == pytest.approx(0.5)


def test_scheduler_follows_lr_factor_per_step():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = build_scheduler(opt, total_steps=20, schedule="cosine", warmup_steps=4)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1 * lr_factor(s, 20, "cosine", 4) for s in range(20)])
