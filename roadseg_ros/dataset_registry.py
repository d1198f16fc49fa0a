"""Every dataset the project reads, described once: reader, options, default split, licence, quirks.

Why one table: the facts about a dataset (which reader opens it, which keywords that reader
takes, which split ``roadseg-eval`` scores by default, its licence terms, whether its images
are squeezed, whether its labels are only road / not road, how its sample names carry a
category) used to be spread over the configuration module, the evaluator, the training
options and an if-chain in the dataset factory, and a new dataset had to be added in all of
them. Here it is one :class:`DatasetInfo` entry, and every one of those reads it.

The module imports neither torch nor ROS (the readers are named, and imported only when
:meth:`DatasetInfo.load_reader` is called), so option parsers can list and check dataset
names before paying for the torch import.

A run's datasets are :class:`DatasetSpec` values (name, root, split, mapping, reader
options); :meth:`DatasetSpec.describe` gives the ``camvid:ROOT:train`` form that checkpoints
record in ``training["datasets"]``, and :func:`dataset_licenses` reads either form back.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Categories", "DatasetInfo", "DatasetSpec", "DATASETS", "DATASET_NAMES", "FOLDER_DATASETS",
           "UNKNOWN_LICENSE", "dataset_licenses", "description_name", "spec_from_description"]


@dataclass(frozen=True)
class Categories:
    """How a dataset's sample names say which category a sample belongs to, and the report order.

    KITTI Road names its samples ``um_000000``, ``umm_000012``, ``uu_000093``: the category
    (urban marked, urban multiple marked, urban unmarked) is the prefix before ``_``, and its
    benchmark reports each category on its own.
    """

    known: tuple[str, ...]
    separator: str = "_"

    def of(self, sample_name: str) -> str:
        """The category of the sample called ``sample_name``."""
        return sample_name.split(self.separator)[0]

    def order(self, found: Iterable[str]) -> list[str]:
        """``found`` categories in report order: the known ones first, as listed, then any other sorted."""
        rank = {name: i for i, name in enumerate(self.known)}
        return sorted(found, key=lambda c: (rank.get(c, len(rank)), c))


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: what opens it and what the tools must know about it.

    ``reader`` is ``"module:callable"``; the callable takes ``(root, split, taxonomy=...,
    mapping=..., **options)`` with ``options`` among :attr:`options`, and returns a
    ``roadseg_ros.data.SegmentationDataset``.
    """

    name: str
    reader: str
    #: The split ``roadseg-eval`` scores when given no ``--split``.
    default_split: str
    #: Terms recorded in every checkpoint trained on it (weights inherit the data's terms).
    license: str
    #: Keywords the reader takes besides root, split, taxonomy and mapping.
    options: tuple[str, ...] = ()
    #: False for generated data (no folder to read).
    needs_root: bool = True
    #: Images do not have the scene's proportions, so fitting the network to the image's shape
    #: would keep the squeeze (pix2pix's Cityscapes: 2:1 views resized to 256x256).
    squeezed: bool = False
    #: Scored in the drivable-vs-not view by default: labels that only say road / not road
    #: (KITTI) or are too coarse for the model's classes (IDD-Lite's level-1 ids).
    binary_by_default: bool = False
    #: How sample names carry a category that is reported on its own (None: no categories).
    categories: Categories | None = None

    def load_reader(self) -> Callable[..., Any]:
        """The reader callable (imports its module, and with it torch)."""
        module, _, attr = self.reader.partition(":")
        return getattr(importlib.import_module(module), attr)


_READERS = "roadseg_ros.data.datasets"
_SPLIT = ("val_fraction", "seed")

#: The datasets, in the order help texts and error messages list them.
DATASETS: Mapping[str, DatasetInfo] = MappingProxyType({info.name: info for info in (
    DatasetInfo("camvid", f"{_READERS}:CamVidDataset", "val",
                "CamVid (Brostow et al., Cambridge): research use; cite the ECCV 2008 / PRL 2009 papers"),
    DatasetInfo("kitti", f"{_READERS}:KittiRoadDataset", "training",
                "KITTI Road: CC BY-NC-SA 3.0 (non-commercial)", options=_SPLIT, binary_by_default=True,
                categories=Categories(("um", "umm", "uu"))),
    DatasetInfo("carla", f"{_READERS}:CarlaDataset", "val",
                "CARLA renders: CARLA is MIT-licensed; its assets are CC BY; your own captures are yours",
                options=("carla_labels", *_SPLIT, "image_dir", "label_dir")),
    DatasetInfo("cityscapes", f"{_READERS}:CityscapesDataset", "val",
                "Cityscapes: non-commercial research and teaching use only (cityscapes-dataset.com terms)"),
    DatasetInfo("cityscapes_pix2pix", f"{_READERS}:CityscapesPix2PixDataset", "val",
                "Cityscapes (pix2pix packing): non-commercial research and teaching use only "
                "(cityscapes-dataset.com terms)", options=(*_SPLIT, "restore_size"), squeezed=True),
    DatasetInfo("idd_lite", f"{_READERS}:IddLiteDataset", "val",
                "IDD (IIIT Hyderabad / Intel): research use only (idd.insaan.iiit.ac.in terms)",
                options=_SPLIT, binary_by_default=True),
    DatasetInfo("synthetic", f"{_READERS}:synthetic_scenes", "val",
                "synthetic scenes generated by this project (Apache-2.0)",
                options=("num_scenes", "size", "seed", "options"), needs_root=False),
)})
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)
#: Datasets read from a folder (``roadseg-train --data NAME=ROOT``): all but the generated ones.
FOLDER_DATASETS: tuple[str, ...] = tuple(name for name, info in DATASETS.items() if info.needs_root)
UNKNOWN_LICENSE = "unknown: check the data's own terms"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a run or an evaluation: reader name, folder, split, mapping and reader options.

    ``root`` is None for generated data; ``mapping`` a class-mapping YAML (None: the dataset's
    bundled one); ``options`` the reader keywords (:attr:`DatasetInfo.options`), kept read-only.
    """

    name: str
    root: str | None
    split: str
    mapping: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise ValueError(f"unknown dataset {self.name!r}; valid names: {', '.join(DATASET_NAMES)}")
        unknown = sorted(set(self.options) - set(DATASETS[self.name].options))
        if unknown:
            raise ValueError(f"dataset {self.name!r} takes no option(s) {unknown}; "
                             f"valid: {', '.join(DATASETS[self.name].options) or '(none)'}")
        object.__setattr__(self, "options", dict(self.options))

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.name]

    def describe(self) -> str:
        """The form checkpoints record in ``training["datasets"]`` and metrics name validation parts by.

        ``camvid:/data/camvid:train``; generated scenes ``synthetic:N:seedS`` and, for another
        split, ``synthetic-val:N:seedS`` (their size is the run's eval size, recorded elsewhere).
        """
        if self.info.needs_root:
            return f"{self.name}:{self.root}:{self.split}"
        suffix = "" if self.split == "train" else f"-{self.split}"
        return f"{self.name}{suffix}:{self.options.get('num_scenes')}:seed{self.options.get('seed', 0)}"


def description_name(description: str) -> str:
    """The dataset name in a recorded description (:meth:`DatasetSpec.describe`'s form, any age)."""
    return description.split(":")[0].partition("-")[0]


def dataset_licenses(datasets: Iterable[DatasetSpec | str]) -> dict[str, str]:
    """Licence terms of the datasets used, by name (sorted): specs, or descriptions such as
    ``camvid:ROOT:train`` or ``synthetic-val:40:seed0`` as a checkpoint's ``training["datasets"]`` lists."""
    used = sorted({d.name if isinstance(d, DatasetSpec) else description_name(d) for d in datasets})
    return {name: DATASETS[name].license if name in DATASETS else UNKNOWN_LICENSE for name in used}


def spec_from_description(description: str) -> DatasetSpec:
    """The :class:`DatasetSpec` a recorded description names (the inverse of :meth:`DatasetSpec.describe`).

    ``camvid:ROOT:train`` -> folder, split; ``synthetic:300:seed0`` / ``synthetic-val:40:seed0``
    -> generated scenes (their size is not recorded: the reader's default applies). ``ValueError``
    naming the description when it has neither form.
    """
    head, _, rest = description.partition(":")
    name, _, split = head.partition("-")
    info = DATASETS.get(name)
    if info is None or not rest:
        raise ValueError(f"{description!r} is no dataset description (NAME:ROOT:SPLIT or synthetic:N:seedS)")
    if info.needs_root:
        root, sep, split = rest.rpartition(":")
        if not sep or not root:
            raise ValueError(f"{description!r}: expected {name}:ROOT:SPLIT")
        return DatasetSpec(name, root, split)
    count, _, seed = rest.partition(":")
    try:
        return DatasetSpec(name, None, split or "train",
                           options={"num_scenes": int(count), "seed": int(seed.removeprefix("seed") or 0)})
    except ValueError:
        raise ValueError(f"{description!r}: expected {name}:N:seedS") from None

