"""Starting the network for a host: the Segmenter from configuration values, and process tuning.

The node, the demo and the tools all start a :class:`~roadseg_ros.inference.Segmenter`
from the same handful of settings (weights, device, backend, precision, size, threads);
this module turns those values into one, or into one :class:`~roadseg_ros.config.ConfigError`
line, so every entry point fails alike. It also holds the process-wide settings a
long-running host needs before its threads start. ROS-free: hosts pass their own wording
for hints (``how``: ``-p weights:=PATH`` for a node, ``--weights PATH`` for a tool).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from roadseg_ros.allocator import keep_freed_memory
from roadseg_ros.classes import parse_class_list
from roadseg_ros.config import BACKENDS, PRECISIONS, ConfigError, one_line, resolve_weights

__all__ = ["GIL_SWITCH_INTERVAL_S", "default_num_threads", "configure_process", "load_segmenter"]

#: CPython's thread switch interval while a pipeline runs (default 5 ms), see configure_process().
GIL_SWITCH_INTERVAL_S = 0.0005


def default_num_threads() -> int:
    """CPU threads for the network when none are set: half the cores, at least one.

    Every core (torch's default) makes the network's threads wait for each other whenever
    the camera driver or another node takes a core, and a frame then costs many times
    more; half the cores leaves room for the rest of the graph.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def configure_process() -> None:
    """Process-wide settings for a process that hosts a pipeline; call before other threads start.

    * The tuned allocator (:func:`roadseg_ros.allocator.keep_freed_memory`): the worker
      thread otherwise page-faults its buffers in every frame. Before ROS starts its DDS
      threads, so every thread shares the one tuned arena.
    * A short GIL switch interval: executor threads (and, in the demo, the camera and
      recorder nodes) share the GIL with the worker, and with CPython's default 5 ms the
      worker can wait that long for it between two of the network's operators.
    """
    keep_freed_memory()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def load_segmenter(weights: str, *, device: str, precision: str, input_size: tuple[int, int],
                   num_threads: int, drivable_classes: str, keep_aspect: bool = False, backend: str = "torch",
                   cache_dir: str = "", how: str = "--weights PATH") -> tuple[Any, list[int]]:
    """The :class:`~roadseg_ros.inference.Segmenter` and the drivable class ids for a configuration.

    ``weights`` empty: the bundled checkpoint; ``input_size`` (0, 0): the checkpoint's;
    ``num_threads`` 0: :func:`default_num_threads`; ``drivable_classes`` empty: the
    checkpoint's; ``backend``/``precision``: see :func:`roadseg_ros.backends.choose` (a
    runtime that cannot be used is a logged fallback, not an error); ``cache_dir`` empty:
    the user's cache. Anything unusable raises :class:`~roadseg_ros.config.ConfigError`
    with one line. torch is imported only after the cheap checks, so those fail fast.
    """
    resolve_weights(weights, how=how)    # a missing file fails before the torch import
    width, height = input_size
    if (width == 0) != (height == 0):
        raise ConfigError(f"input_width={width} and input_height={height}: set both, or both to 0 "
                          "(the checkpoint's size)")
    if backend not in BACKENDS:
        raise ConfigError(f"invalid backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"invalid precision {precision!r}; valid choices: {', '.join(PRECISIONS)}")
    from roadseg_ros.checkpoint import CheckpointError, load_weights
    from roadseg_ros.inference import Segmenter
    from roadseg_ros.quantization import ranges_path_for

    path, ckpt = load_weights(weights, how=how)
    # Checked before the model is built, so a wrong name fails fast and with nothing else printed.
    try:
        drivable = parse_class_list(drivable_classes, list(ckpt.class_names), list(ckpt.drivable_classes))
    except ValueError as exc:
        raise ConfigError(f"invalid parameter drivable_classes: {exc}") from None
    try:
        seg = Segmenter(ckpt, device=device, precision=precision, backend=backend,
                        input_size=(width, height) if width else None, warmup=True,
                        num_threads=num_threads or default_num_threads(), keep_aspect=keep_aspect,
                        cache_dir=Path(cache_dir).expanduser() if cache_dir else None,
                        int8_ranges=ranges_path_for(path))
    except (CheckpointError, RuntimeError, ValueError, OSError) as exc:
        raise ConfigError(f"cannot start the model from {path} on device {device!r} "
                          f"({backend}, {precision}): {one_line(exc)}") from None
    seg.weights_path = path
    return seg, drivable
