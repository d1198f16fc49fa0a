"""What the network trains and validates on: the datasets of a run, augmented and normalised.

Determinism: sample ``i`` of epoch ``e`` is augmented with its own generator seeded by
``(seed, e, i)``, so the data an epoch sees depends neither on the worker count nor on
where a previous session stopped. Normalisation is the model's own when it declares one
(``input_mean``/``input_std``: a pretrained encoder must see inputs the way its weights
were trained), else the ImageNet mean/std; the checkpoint records it either way.
"""

from __future__ import annotations

import argparse
import bisect
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from roadseg_ros.classes import Taxonomy
from roadseg_ros.dataset_registry import DATASETS, DatasetSpec
from roadseg_ros.training.errors import TrainingConfigError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "model_normalization", "to_tensor", "Part", "dataset_specs",
           "run_datasets", "TrainSet", "EvalSet"]

#: One dataset of a run: what it is, and its reader.
Part = tuple[DatasetSpec, Dataset]

#: ImageNet RGB mean/std (images scaled to [0, 1] first): the normalisation of models that declare none.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input mean/std a model declares (``input_mean``/``input_std``), else ImageNet's."""
    m = model.module if hasattr(model, "module") else model   # DDP
    return (tuple(getattr(m, "input_mean", IMAGENET_MEAN)), tuple(getattr(m, "input_std", IMAGENET_STD)))


def to_tensor(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """RGB uint8 HxWx3 -> normalised float [3,H,W]."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def dataset_specs(args: argparse.Namespace) -> tuple[list[DatasetSpec], list[DatasetSpec]]:
    """The (train, val) datasets a run's options name: every --data entry at --train-split and
    --val-split (``none``: no validation), then the synthetic scenes (--synthetic, --synthetic-val)."""
    validate = args.val_split.lower() != "none"
    train: list[DatasetSpec] = []
    val: list[DatasetSpec] = []
    for name, root in args.data:
        takes_labels = "carla_labels" in DATASETS[name].options
        options = {"carla_labels": args.carla_labels} if takes_labels and args.carla_labels else {}
        mapping = args.mapping.get(name)
        train.append(DatasetSpec(name, root, args.train_split, mapping, options))
        if validate:
            val.append(DatasetSpec(name, root, args.val_split, mapping, options))

    def scenes(split: str, num_scenes: int) -> DatasetSpec:
        return DatasetSpec("synthetic", None, split,
                           options={"num_scenes": num_scenes, "size": args.eval_size, "seed": args.seed})

    if args.synthetic > 0:
        train.append(scenes("train", args.synthetic))
    if args.synthetic_val > 0 and validate:
        val.append(scenes("val", args.synthetic_val))   # a seed range disjoint from "train"'s
    return train, val


def run_datasets(args: argparse.Namespace, taxonomy: Taxonomy) -> tuple[list[Part], list[Part]]:
    """(train, val) parts of a run, each ``(spec, reader)``; a folder that cannot be read, a
    mapping that does not fit or an empty dataset is a :class:`TrainingConfigError` naming it."""
    from roadseg_ros.data import DatasetError, MappingError, build_datasets

    train, val = dataset_specs(args)
    try:
        datasets = build_datasets([*train, *val], taxonomy)
    except (DatasetError, MappingError) as exc:
        raise TrainingConfigError(str(exc)) from exc
    parts = list(zip([*train, *val], datasets))
    return parts[:len(train)], parts[len(train):]


class TrainSet(Dataset):
    """Training pairs: augmentation (or plain resize) then normalisation.

    Sample ``i`` of epoch ``e`` is augmented with ``np.random.default_rng([seed, e, i])``:
    reproducible whatever the worker count or resume point. Call ``set_epoch`` before
    each epoch (workers receive a fresh copy of the dataset when an epoch's iterator starts).
    """

    def __init__(self, datasets: Sequence[Dataset], crop_size: tuple[int, int], augment: bool, seed: int,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 crop_sizes: Sequence[tuple[int, int] | None] | None = None,
                 aspect_range: tuple[float, float] = (1.0, 1.0)) -> None:
        from roadseg_ros.data.transforms import TrainAugment, resize_pair

        self.data = ConcatDataset(list(datasets))
        self.crop_size = crop_size
        crops = list(crop_sizes) if crop_sizes is not None else [None] * len(self.data.datasets)
        if len(crops) != len(self.data.datasets):
            raise ValueError(f"{len(crops)} crop sizes for {len(self.data.datasets)} datasets")
        #: Crop size of each dataset (its own, else ``crop_size``); a sample is cropped by its dataset's.
        self.crop_sizes = [tuple(c) if c else tuple(crop_size) for c in crops]
        self.augments = [TrainAugment(crop_size=c, aspect_range=aspect_range) for c in self.crop_sizes] \
            if augment else None
        self._resize = resize_pair
        self.seed = seed
        self.epoch = 0
        self.mean, self.std = mean, std

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.data)

    def dataset_of(self, i: int) -> int:
        """Which of the datasets global index ``i`` falls in."""
        return bisect.bisect_right(self.data.cumulative_sizes, i)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.data[i]
        d = self.dataset_of(i) if len(self.crop_sizes) > 1 else 0
        if self.augments is not None:
            image, label = self.augments[d](image, label, np.random.default_rng([self.seed, self.epoch, i]))
        else:
            image, label = self._resize(image, label, self.crop_sizes[d])
        return to_tensor(image, self.mean, self.std), torch.from_numpy(np.ascontiguousarray(label)).long()


class EvalSet(Dataset):
    """Validation pairs resized to the fixed eval size; also returns the resized RGB image (overlays)."""

    def __init__(self, datasets: Sequence[Dataset], size: tuple[int, int],
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        from roadseg_ros.data.transforms import resize_pair

        self.data = ConcatDataset(list(datasets))
        self.size = size
        self._resize = resize_pair
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, label = self.data[i]
        image, label = self._resize(image, label, self.size)
        image = np.ascontiguousarray(image)
        return (to_tensor(image, self.mean, self.std), torch.from_numpy(np.ascontiguousarray(label)).long(),
                torch.from_numpy(image))
