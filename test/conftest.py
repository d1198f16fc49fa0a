"""Shared test set-up.

Every test session gets its own DDS domain, confined to this host, so that parallel
runs (and other ROS graphs on the machine) never see each other's topics.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: tiny nets on a shared 2-core box are slower with OpenMP contention.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the
    previous count is restored afterwards. torch is imported here, not at the top, so test
    modules that never use it do not pay for loading it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
