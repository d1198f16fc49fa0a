"""Pair two streams of stamped items (e.g. predicted masks and ground-truth images) by stamp.

CARLA renders the RGB and the semantic camera of one simulation step with the same stamp,
and the segmentation node passes the RGB stamp on to its mask, so a mask and its ground
truth can be matched by stamp alone. Either may arrive first, and either may be lost; the
pairer keeps the unmatched ones in bounded buffers (the oldest is dropped and counted), so
a lost message never makes memory grow. No ROS here: the evaluator node feeds it stamps in
nanoseconds.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["StampPairer"]

A = TypeVar("A")
B = TypeVar("B")


class StampPairer(Generic[A, B]):
    """Matches items of stream ``a`` with items of stream ``b`` that carry the same stamp.

    ``tolerance_ns`` > 0 also matches the nearest stamp within that distance. Stamps are
    assumed to grow on each stream, so once a pair is found everything older than it on
    either side can never be paired and is dropped (counted in :attr:`dropped`).
    """

    def __init__(self, buffer_size: int, tolerance_ns: int = 0) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        self.buffer_size = int(buffer_size)
        self.tolerance_ns = int(tolerance_ns)
        self.waiting_a: OrderedDict[int, A] = OrderedDict()
        self.waiting_b: OrderedDict[int, B] = OrderedDict()
        self.dropped = 0

    def add_a(self, stamp: int, item: A) -> tuple[A, B] | None:
        """Offer an item of stream ``a``; returns ``(a, b)`` when it completes a pair."""
        match = self._receive(stamp, item, self.waiting_a, self.waiting_b)
        return None if match is None else (item, match)

    def add_b(self, stamp: int, item: B) -> tuple[A, B] | None:
        """Offer an item of stream ``b``; returns ``(a, b)`` when it completes a pair."""
        match = self._receive(stamp, item, self.waiting_b, self.waiting_a)
        return None if match is None else (match, item)

    def _receive(self, stamp: int, item, own: OrderedDict, other: OrderedDict):
        key = self._find(other, stamp)
        if key is None:
            own[stamp] = item
            while len(own) > self.buffer_size:
                own.popitem(last=False)
                self.dropped += 1
            return None
        partner = other.pop(key)
        oldest_kept = min(key, stamp)
        for buffer in (own, other):
            for old in [k for k in buffer if k < oldest_kept]:
                del buffer[old]
                self.dropped += 1
        return partner

    def _find(self, buffer: OrderedDict, stamp: int) -> int | None:
        if stamp in buffer:
            return stamp
        if self.tolerance_ns <= 0 or not buffer:
            return None
        best = min(buffer, key=lambda k: abs(k - stamp))
        return best if abs(best - stamp) <= self.tolerance_ns else None
