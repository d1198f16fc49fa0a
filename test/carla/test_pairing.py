"""roadseg_ros.carla.pairing: two stamped streams matched by stamp, with bounded waiting."""

from __future__ import annotations

import pytest

from roadseg_ros.carla.pairing import StampPairer


def test_pairs_by_equal_stamps_whichever_comes_first():
    p: StampPairer[str, str] = StampPairer(buffer_size=5)
    assert p.add_a(10, "mask10") is None
    assert p.add_b(10, "truth10") == ("mask10", "truth10")
    assert p.add_b(20, "truth20") is None
    assert p.add_a(20, "mask20") == ("mask20", "truth20")
    assert p.dropped == 0 and not p.waiting_a and not p.waiting_b


def test_older_unpaired_items_are_dropped_once_a_newer_pair_forms():
    p: StampPairer[str, str] = StampPairer(buffer_size=5)
    p.add_a(10, "lost mask")          # its truth never comes
    p.add_b(15, "lost truth")         # its mask never comes
    assert p.add_a(20, "m") is None
    assert p.add_b(20, "t") == ("m", "t")
    assert p.dropped == 2 and not p.waiting_a and not p.waiting_b


def test_buffers_are_bounded():
    p: StampPairer[int, int] = StampPairer(buffer_size=3)
    for stamp in range(10):
        p.add_a(stamp, stamp)
    assert list(p.waiting_a) == [7, 8, 9] and p.dropped == 7


def test_tolerance_matches_the_nearest_stamp():
    p: StampPairer[str, str] = StampPairer(buffer_size=5, tolerance_ns=5)
    p.add_a(100, "a")
    p.add_a(110, "b")
    assert p.add_b(108, "t") == ("b", "t")       # nearest within 5 ns
    assert p.add_b(200, "far") is None
    with pytest.raises(ValueError, match="buffer_size"):
        StampPairer(buffer_size=0)
