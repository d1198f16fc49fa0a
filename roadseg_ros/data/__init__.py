"""Datasets, class-mapping configs, training transforms and synthetic road scenes.

``build_dataset(name, root, split, taxonomy="camvid11", mapping=None, **kw)`` is the one
entry point the training and evaluation tools need (``build_datasets`` for several
``DatasetSpec``s); which names exist and what each takes is ``roadseg_ros.dataset_registry``.
See docs/architecture.md ("Datasets").
"""

from roadseg_ros.data.datasets import (
    CARLA_LABELS,
    CamVidDataset,
    CarlaDataset,
    CityscapesDataset,
    CityscapesPix2PixDataset,
    ConcatSegmentationDataset,
    DatasetError,
    IddLiteDataset,
    KittiRoadDataset,
    SegmentationDataset,
    SyntheticScenes,
    build_dataset,
    build_datasets,
    seeded_split,
)
from roadseg_ros.data.mapping import LabelMapping, MappingError, list_mapping_configs, load_mapping

__all__ = [
    "CARLA_LABELS",
    "CamVidDataset",
    "CarlaDataset",
    "CityscapesDataset",
    "CityscapesPix2PixDataset",
    "ConcatSegmentationDataset",
    "DatasetError",
    "IddLiteDataset",
    "KittiRoadDataset",
    "LabelMapping",
    "MappingError",
    "SegmentationDataset",
    "SyntheticScenes",
    "build_dataset",
    "build_datasets",
    "list_mapping_configs",
    "load_mapping",
    "seeded_split",
]
