"""roadseg_ros.training.schedule: warm-up and decay factors, and the scheduler built on them.

The expected values are worked out here from the definitions (linear warm-up to the base
rate, then poly ``(1 - t) ** 0.9`` or cosine ``(1 + cos(pi t)) / 2`` over the steps after
warm-up), not by calling :func:`lr_factor`, so a change to the curve fails the tests.
"""

from __future__ import annotations

import math

import pytest
import torch

from roadseg_ros.training.schedule import build_scheduler, lr_factor


def test_lr_factor():
    assert lr_factor(0, 100, "poly") == 1.0
    assert lr_factor(50, 100, "poly") == pytest.approx(0.5 ** 0.9)
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(4, 100, "poly", warmup_steps=10) == pytest.approx(0.5)
    assert lr_factor(150, 100, "poly") == 0.0                      # past the end: stays at zero
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor(0, 10, "step")


def _rates(schedule: str, total: int, warmup: int, base: float = 0.1) -> list[float]:
    """The learning rate of each of ``total`` optimiser steps, as the run's scheduler sets it."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base)
    sched = build_scheduler(opt, total_steps=total, schedule=schedule, warmup_steps=warmup)
    seen = []
    for _ in range(total):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    seen.append(opt.param_groups[0]["lr"])                           # after the last step
    return seen


def test_warm_up_ramps_linearly_to_the_base_rate():
    seen = _rates("cosine", total=20, warmup=4)
    assert seen[:5] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])   # 1/4, 2/4, 3/4, 4/4, then decay starts


def test_cosine_decays_from_the_base_rate_through_half_to_zero():
    seen = _rates("cosine", total=20, warmup=4)
    # 16 decay steps after warm-up: step 4 + k is at t = k / 16
    assert seen[4] == pytest.approx(0.1)
    assert seen[8] == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)) / 2)       # t = 1/4: 0.0854
    assert seen[12] == pytest.approx(0.05)                                        # t = 1/2: the midpoint
    assert seen[20] == pytest.approx(0.0, abs=1e-12)                              # t = 1: the end
    assert all(a >= b for a, b in zip(seen[4:], seen[5:]))                        # never rises again


def test_poly_decays_from_the_base_rate_to_zero():
    seen = _rates("poly", total=10, warmup=0)
    assert seen[0] == pytest.approx(0.1)
    assert seen[5] == pytest.approx(0.1 * 0.5 ** 0.9)                             # 0.0536 at half way
    assert seen[9] == pytest.approx(0.1 * 0.1 ** 0.9)                             # last step: 0.0126
    assert seen[10] == pytest.approx(0.0, abs=1e-12)
    assert seen[5] > 0.05                     # poly(0.9) lies above the straight line to zero
