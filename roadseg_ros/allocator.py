"""Keep freed tensor memory in the process instead of handing it back to the OS every frame.

Why: torch's CPU allocator is plain ``malloc``. A segmentation network allocates and frees
the same few megabyte-sized buffers every frame (activations, the logits upsampled to the
image size, the mask). With glibc's defaults those buffers are ``mmap``-ed and ``munmap``-ed,
or trimmed off the heap, on every call, so every frame page-faults its working set in
again, and the page faults cost more than many of the network's layers. In a worker
thread, which is where the segmentation node runs the network, glibc also gives the
thread its own arena, whose heaps are limited to 64 MiB, and what does not fit goes to
``mmap``. Measured on the 2-core development machine (2026-11-21, one torch thread,
network at 576x160, ``./dev.sh run python benchmarks/bench_allocator.py``):

* 576x160 image, in a worker thread: about 2,560 minor page faults per frame and 29.7 ms
  per predict, against 1 fault and 24.4 ms after :func:`keep_freed_memory`;
* 1280x720 image, worker thread: about 19,800 faults and 98.6 ms per frame, against 18
  faults and 60.3 ms.

:func:`keep_freed_memory` sets three ``mallopt`` knobs: serve allocations of up to 256 MiB
from the heap (not ``mmap``), never trim the heap back, and use one arena for all threads.
The process keeps the peak of its heap (for the node: one frame's working set) instead of
returning it. It is process-wide and idempotent; :class:`~roadseg_ros.inference.Segmenter`
calls it for CPU devices unless told not to, and the segmentation node calls it first
thing, before any other thread exists. On a C library other than glibc it does nothing
and says so in its return value. ``ROADSEG_KEEP_FREED_MEMORY=0`` in the environment turns
it off (e.g. when the node shares a process with many other allocation-heavy threads,
which the single arena would serialise). Nothing here imports ROS or torch.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading

__all__ = ["AllocatorStatus", "keep_freed_memory", "allocator_status", "DISABLE_ENV"]

#: Set this environment variable to ``0`` to leave glibc's allocator alone.
DISABLE_ENV = "ROADSEG_KEEP_FREED_MEMORY"

logger = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Allocations up to this size come from the heap instead of a fresh ``mmap``.
MMAP_THRESHOLD_BYTES = 256 << 20
#: Free memory at the top of the heap is only returned beyond this much (i.e. practically never).
TRIM_THRESHOLD_BYTES = 1 << 30

_lock = threading.Lock()
_status: AllocatorStatus | None = None


class AllocatorStatus(str):
    """A one-line description of what :func:`keep_freed_memory` did; truthy only when it applied."""

    applied: bool = False

    def __new__(cls, text: str, applied: bool) -> AllocatorStatus:
        obj = super().__new__(cls, text)
        obj.applied = applied
        return obj

    def __bool__(self) -> bool:
        return self.applied


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")   # glibc's soname on every Linux architecture
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def _apply() -> AllocatorStatus:
    if os.environ.get(DISABLE_ENV, "1").strip() == "0":
        return AllocatorStatus(f"unchanged: {DISABLE_ENV}=0", False)
    libc = _glibc()
    if libc is None:
        return AllocatorStatus(f"unchanged: not glibc ({platform.system()} "
                               f"{' '.join(platform.libc_ver()) or 'unknown libc'})", False)
    settings = {"mmap_threshold": (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                "trim_threshold": (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                "arena_max": (_M_ARENA_MAX, 1)}
    refused = [name for name, (param, value) in settings.items() if libc.mallopt(param, value) != 1]
    if refused:
        return AllocatorStatus(f"partly applied: glibc refused {', '.join(refused)}", False)
    return AllocatorStatus(f"glibc malloc: heap up to {MMAP_THRESHOLD_BYTES >> 20} MiB per allocation, "
                           f"no trimming, one arena", True)


def keep_freed_memory() -> AllocatorStatus:
    """Tune glibc ``malloc`` so per-frame buffers are reused, not page-faulted in again.

    Returns an :class:`AllocatorStatus`: truthy when glibc accepted all three settings,
    falsy (with the reason as its text) otherwise. Only the first call does anything.
    """
    global _status
    with _lock:
        if _status is not None:
            return _status
        _status = _apply()
        logger.debug("allocator: %s", _status)
        return _status


def allocator_status() -> str:
    """What :func:`keep_freed_memory` did in this process (``"default"`` if it was not called)."""
    return str(_status) if _status is not None else "default"
