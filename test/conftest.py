"""Shared test set-up.

Every test session gets its own DDS domain, confined to this host, so that parallel
runs (and other ROS graphs on the machine) never see each other's topics.
"""

from __future__ import annotations

import os
import random

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
