"""The two pinned environments (Kilted: requirements.txt, Jazzy: requirements-jazzy.txt) stay in step.

Both are edited by hand when a pin moves; these checks catch the mistakes that would
otherwise show only as a slow, confusing CI failure on one distro: a non-ROS pin bumped in
one file only (the distros would then test different torch builds), a ROS wheel pinned at
a version that is not Jazzy's (the ``ros-jazzy-<name>`` meta-package pins the real
``ros-<name>`` wheel exactly, so the two lines must agree), or a Kilted-only wheel left in.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)$")
# Kilted wheels with no Jazzy counterpart (see requirements-jazzy.txt's header).
KILTED_ONLY = {"ros-fastdds", "ros-rmw-security-common", "ros-ament-cmake-ros-core"}
DISTRO_NEUTRAL = {"ros-wheels-bootstrapper"}


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"{name}: not an exact pin: {line!r}"
        key = match.group(1).lower()
        assert key not in pins, f"{name}: {key} pinned twice"
        pins[key] = match.group(2)
    return pins


def _is_ros(name: str) -> bool:
    return name.startswith("ros-") and name not in DISTRO_NEUTRAL


def test_non_ros_pins_are_the_same_for_both_distros() -> None:
    kilted = {k: v for k, v in _pins("requirements.txt").items() if not _is_ros(k)}
    jazzy = {k: v for k, v in _pins("requirements-jazzy.txt").items() if not _is_ros(k)}
    assert jazzy == kilted, {k: (kilted.get(k), jazzy.get(k)) for k in kilted.keys() | jazzy.keys()
                             if kilted.get(k) != jazzy.get(k)}


def test_every_jazzy_ros_wheel_is_pinned_at_the_version_its_meta_package_names() -> None:
    pins = _pins("requirements-jazzy.txt")
    metas = {k.removeprefix("ros-jazzy-"): v for k, v in pins.items() if k.startswith("ros-jazzy-")}
    wheels = {k.removeprefix("ros-"): v for k, v in pins.items()
              if _is_ros(k) and not k.startswith("ros-jazzy-")}
    assert metas, "no ros-jazzy-* meta-packages pinned"
    assert wheels == metas, {k: (wheels.get(k), metas.get(k)) for k in wheels.keys() | metas.keys()
                             if wheels.get(k) != metas.get(k)}


def test_every_kilted_ros_wheel_has_a_jazzy_counterpart_or_is_known_kilted_only() -> None:
    kilted = {k for k in _pins("requirements.txt") if _is_ros(k)}
    jazzy = set(_pins("requirements-jazzy.txt"))
    assert not KILTED_ONLY & jazzy
    assert kilted >= KILTED_ONLY, "a Kilted-only wheel is no longer in requirements.txt: update KILTED_ONLY"
    missing = sorted(k for k in kilted - KILTED_ONLY if k not in jazzy)
    assert not missing, f"Kilted pins with no Jazzy pin: {missing}"
    assert {"ros-ament-cmake-ros", "ros-fastrtps"} <= jazzy


def test_dev_sh_maps_each_distro_to_its_own_environment() -> None:
    text = (ROOT / "dev.sh").read_text()
    assert 'kilted) SUFFIX="" ;;' in text and 'jazzy) SUFFIX="-jazzy" ;;' in text
    assert 'REQ="$ROOT/requirements$SUFFIX.txt"' in text
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {".venv/", ".ws/", ".venv-jazzy/", ".ws-jazzy/"} <= set(ignored)
