"""Mixing several datasets in one training run: per-dataset sampling weights, one dataset per batch.

Why batches come from one dataset each: every dataset has its own crop size at its own
aspect (CamVid 4:3, Cityscapes 2:1, IDD-Lite ~1.4:1), and a batch must be one tensor. And
why weights: the sets differ in size and in how much each should count (367 CamVid images
next to 1,265 Cityscapes ones would otherwise be drowned), so each dataset contributes
``round(weight * len(dataset))`` samples per epoch: a weight of 2 shows every image twice,
0.5 a fresh random half each epoch.

Within a dataset, samples may carry their own weights (``sample_weights``, from a mapping's
``oversample`` section): a rare but telling kind of scene is then drawn more often, while the
dataset still contributes ``round(weight * len(dataset))`` samples per epoch. Such a dataset
is drawn with replacement in proportion to those weights; the others are shuffled as above.

Deterministic: an epoch's batches depend only on ``(seed, epoch)``, not on worker count or
on where a previous session stopped, which keeps ``roadseg-train --resume`` exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class MixedBatchSampler:
    """Batches of indices into a concatenation of datasets, each batch from a single dataset.

    ``sizes``: samples per dataset, in concatenation order. ``weights``: sampling weight per
    dataset (> 0). A dataset's last partial batch is kept when it holds at least
    ``max(2, batch_size // 2)`` samples (BatchNorm needs two; a tiny batch is a noisy step)
    and dropped otherwise. Under ``torchrun`` each of ``world_size``
    processes takes every ``world_size``-th batch of the same shuffled list, cut to equal
    length. ``sample_weights``: per dataset, None or one weight (> 0) per sample. Call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1,
                 sample_weights: Sequence[np.ndarray | None] | None = None) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError(f"need one weight per dataset: {len(sizes)} datasets, {len(weights)} weights")
        if any(int(n) < 1 for n in sizes):
            raise ValueError(f"every dataset needs at least one sample, sizes {list(sizes)}")
        if any(not w > 0 for w in weights):
            raise ValueError(f"sampling weights must be > 0, got {list(weights)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        per_sample = list(sample_weights) if sample_weights is not None else [None] * len(sizes)
        if len(per_sample) != len(sizes):
            raise ValueError(f"sample_weights: {len(per_sample)} entries for {len(sizes)} datasets")
        self.sample_p: list[np.ndarray | None] = []
        for d, (n, w) in enumerate(zip(sizes, per_sample)):
            if w is None:
                self.sample_p.append(None)
                continue
            w = np.asarray(w, dtype=np.float64)
            if w.shape != (int(n),) or not np.all(np.isfinite(w)) or not np.all(w > 0):
                raise ValueError(f"sample_weights of dataset {d}: need {int(n)} finite weights > 0, "
                                 f"got shape {w.shape}")
            self.sample_p.append(None if np.all(w == w[0]) else w / w.sum())
        self.sizes = [int(n) for n in sizes]
        self.weights = [float(w) for w in weights]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.batch_size = int(batch_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def samples_per_epoch(self) -> list[int]:
        """How many samples each dataset contributes per epoch."""
        return [max(1, int(round(w * n))) for n, w in zip(self.sizes, self.weights)]

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        batches: list[list[int]] = []
        for d, (n, want) in enumerate(zip(self.sizes, self.samples_per_epoch())):
            if self.sample_p[d] is None:
                reps = -(-want // n)
                order = np.concatenate([rng.permutation(n) for _ in range(reps)])[:want] + self.offsets[d]
            else:
                order = rng.choice(n, size=want, replace=True, p=self.sample_p[d]) + self.offsets[d]
            for start in range(0, want, self.batch_size):
                chunk = order[start:start + self.batch_size]
                if len(chunk) == self.batch_size or len(chunk) >= max(2, self.batch_size // 2):
                    batches.append(chunk.tolist())
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
        per_rank = len(batches) // self.world_size
        return batches[self.rank::self.world_size][:per_rank]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
