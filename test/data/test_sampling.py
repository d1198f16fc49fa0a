"""MixedBatchSampler: per-dataset weights, one dataset per batch, deterministic, sharded."""

from __future__ import annotations

import numpy as np
import pytest

from roadseg_ros.data.sampling import MixedBatchSampler


def _dataset_of(index: int, sizes: list[int]) -> int:
    return int(np.searchsorted(np.cumsum(sizes), index, side="right"))


def test_batches_come_from_one_dataset_each_in_weighted_numbers() -> None:
    sizes, weights = [10, 40, 7], [2.0, 0.5, 1.0]
    s = MixedBatchSampler(sizes, weights, batch_size=4, seed=3)
    assert s.samples_per_epoch() == [20, 20, 7]
    batches = list(s)
    counts = [0, 0, 0]
    for b in batches:
        owners = {_dataset_of(i, sizes) for i in b}
        assert len(owners) == 1
        counts[owners.pop()] += len(b)
    # partial batches of fewer than max(2, 4 // 2) samples are dropped: 7 -> 4 + 3
    assert counts == [20, 20, 7]
    assert len(s) == len(batches)
    # weight 2 shows each of the 10 images exactly twice
    first = [i for b in batches for i in b if i < 10]
    assert sorted(first) == sorted(list(range(10)) * 2)


def test_deterministic_per_epoch_and_different_across_epochs() -> None:
    a = MixedBatchSampler([30, 20], [1, 1], 4, seed=1)
    b = MixedBatchSampler([30, 20], [1, 1], 4, seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_ranks_split_the_same_batches() -> None:
    full = list(MixedBatchSampler([30, 21], [1, 1], 4, seed=0))
    parts = [list(MixedBatchSampler([30, 21], [1, 1], 4, seed=0, rank=r, world_size=2)) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1])
    assert all(b in full for p in parts for b in p)
    assert not set(map(tuple, parts[0])) & set(map(tuple, parts[1]))


@pytest.mark.parametrize("kwargs, words", [
    ({"sizes": [3], "weights": [1, 2]}, "one weight per dataset"),
    ({"sizes": [0], "weights": [1]}, "at least one sample"),
    ({"sizes": [3], "weights": [0]}, "> 0"),
    ({"sizes": [3], "weights": [1], "batch_size": 0}, "batch_size"),
])
def test_bad_arguments(kwargs, words) -> None:
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=words):
        MixedBatchSampler(**kwargs)


def test_sample_weights_draw_heavier_samples_more_often_in_the_same_numbers() -> None:
    w = np.ones(20)
    w[[3, 7]] = 6.0                                   # two rare scenes, drawn 6x as often
    s = MixedBatchSampler([20, 10], [2.0, 1.0], batch_size=4, seed=0, sample_weights=[w, None])
    assert s.samples_per_epoch() == [40, 10]          # the dataset's share per epoch is unchanged
    counts = np.zeros(30, int)
    for epoch in range(200):
        s.set_epoch(epoch)
        for b in s:
            np.add.at(counts, b, 1)
    per_epoch = counts / 200
    # expected draws: 40 * 6/30 = 8 for a heavy sample, 40 * 1/30 = 1.33 for the others
    assert abs(per_epoch[[3, 7]].mean() - 8.0) < 0.4
    assert abs(np.delete(per_epoch[:20], [3, 7]).mean() - 40 / 30) < 0.1
    # the unweighted dataset is still shown exactly once per epoch
    assert np.all(counts[20:] == 200)
    # uniform weights are the plain shuffle, batch for batch
    plain = MixedBatchSampler([20, 10], [2.0, 1.0], 4, seed=0)
    same = MixedBatchSampler([20, 10], [2.0, 1.0], 4, seed=0, sample_weights=[np.full(20, 2.0), None])
    assert list(plain) == list(same)


@pytest.mark.parametrize("sample_weights, words", [
    ([None], "1 entries for 2 datasets"),
    ([np.ones(3), None], "need 4 finite weights > 0"),
    ([np.array([1, 0, 1, 1.0]), None], "need 4 finite weights > 0"),
])
def test_bad_sample_weights(sample_weights, words) -> None:
    with pytest.raises(ValueError, match=words):
        MixedBatchSampler([4, 2], [1, 1], 2, sample_weights=sample_weights)
