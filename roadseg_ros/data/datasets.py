"""Dataset readers: CamVid, KITTI Road, CARLA (Lyft layout, palette form), Cityscapes (two forms), IDD-Lite.

Every reader yields ``(image, label)`` with the image as RGB uint8 HxWx3 and the label as
uint8 HxW in the requested taxonomy's ids (``IGNORE_INDEX`` = 255 for pixels that are not
evaluated), so the training script and the evaluation tool never see a dataset's own label
encoding: that is the class-mapping config's job (``roadseg_ros.data.mapping``).

Datasets without official train/val folders (KITTI Road's ``training`` folder, CARLA
captures) are split deterministically: the sample names are sorted, shuffled with
``numpy.random.default_rng(seed)`` and the first ``round(n * val_fraction)`` form ``val``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from roadseg_ros.classes import CAMVID11, Taxonomy, get_taxonomy
from roadseg_ros.config import CARLA_LABEL_SCHEMES, DATASET_IMAGE_EXTENSIONS
from roadseg_ros.data.mapping import LabelMapping, MappingError, resolve_mapping
from roadseg_ros.data.synthetic import DEFAULT_OPTIONS, render_scene
from roadseg_ros.dataset_registry import DATASET_NAMES, DATASETS, DatasetSpec

#: Label encodings of CARLA semantic-segmentation output (see ``CarlaDataset``).
CARLA_LABELS = CARLA_LABEL_SCHEMES


class DatasetError(ValueError):
    """A dataset folder is missing, malformed or has no samples; the message names the path."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 HxWx3 (an alpha channel is dropped)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: cannot read image (missing or not an image file)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path, kind: str) -> np.ndarray:
    """Read a label file for a mapping of input ``kind``.

    ``ids``: HxW integer ids; a 3- or 4-channel PNG gives its red channel (CARLA's Lyft layout
    stores the id there). ``colors``: HxWx3 RGB (alpha dropped).
    """
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"{path}: cannot read label image (missing or not an image file)")
    if kind == "ids":
        if raw.ndim == 3:
            raw = raw[..., 2]  # OpenCV channel order is B, G, R(, A)
        return raw
    if raw.ndim != 3 or raw.shape[2] < 3:
        raise DatasetError(f"{path}: expected a colour label image (palette mapping), got shape {raw.shape}")
    return cv2.cvtColor(np.ascontiguousarray(raw[..., :3]), cv2.COLOR_BGR2RGB)


def seeded_split(names: Sequence[str], split: str, val_fraction: float, seed: int) -> list[str]:
    """Deterministic train/val subset of ``names`` (sorted order kept within the subset).

    At least one sample goes to each side when there are two or more samples and
    ``0 < val_fraction < 1``, so a tiny dataset still has a validation sample.
    """
    if split not in ("train", "val"):
        raise DatasetError(f"seeded split must be 'train' or 'val', got {split!r}")
    if not 0.0 <= val_fraction <= 1.0:
        raise DatasetError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    ordered = sorted(names)
    n = len(ordered)
    n_val = int(round(n * val_fraction))
    if n >= 2 and 0.0 < val_fraction < 1.0:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = set(perm[:n_val].tolist())
    keep = [i in val_idx for i in range(n)] if split == "val" else [i not in val_idx for i in range(n)]
    return [name for name, k in zip(ordered, keep) if k]


@dataclass(frozen=True)
class Sample:
    """One image/label file pair."""

    name: str
    image: Path
    label: Path


class SegmentationDataset(Dataset):
    """Base of every reader: ``ds[i] -> (image RGB uint8 HxWx3, label uint8 HxW)``.

    Subclasses set ``names`` (sample ids) and ``taxonomy`` and implement ``load(i)``.
    """

    names: list[str]
    taxonomy: Taxonomy

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} samples")
        return self.load(index % n)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_weights(self) -> np.ndarray | None:
        """Relative training sampling weight of each sample, or None when all are drawn alike."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples, taxonomy={self.taxonomy.name!r})"


class FileSegmentationDataset(SegmentationDataset):
    """Image/label file pairs whose raw labels go through a ``LabelMapping``."""

    def __init__(self, samples: Sequence[Sample], mapping: LabelMapping, description: str) -> None:
        if not samples:
            raise DatasetError(f"{description}: no samples found")
        self.samples = list(samples)
        self.names = [s.name for s in self.samples]
        self.mapping = mapping
        self.taxonomy = mapping.taxonomy
        self.description = description

    def raw_label(self, index: int) -> np.ndarray:
        """Sample ``index``'s label as stored (before the mapping)."""
        return read_label(self.samples[index].label, self.mapping.input)

    def sample_weights(self) -> np.ndarray | None:
        """Per-sample factors from the mapping's ``oversample`` section (None without one).

        Reads every raw label once, which is why it is only called when a training run builds
        its sampler (about 30 s for the 1,265 JPEG labels of the pix2pix Cityscapes training
        split on 2 cores; a progress bar shows it).
        """
        if self.mapping.oversample_keys is None:
            return None
        from tqdm import tqdm

        return np.array([self.mapping.oversample_weight(self.raw_label(i))
                         for i in tqdm(range(len(self)), desc=f"oversample scan {self.description}",
                                       unit="label", leave=False, mininterval=2.0)])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples[index]
        image = read_rgb(s.image)
        label = self.mapping.apply(read_label(s.label, self.mapping.input))
        if image.shape[:2] != label.shape[:2]:
            raise DatasetError(f"{s.label}: label size {label.shape[1]}x{label.shape[0]} differs from "
                               f"image {s.image} size {image.shape[1]}x{image.shape[0]}")
        return image, label

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.description}, {len(self)} samples, "
                f"taxonomy={self.taxonomy.name!r})")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in DATASET_IMAGE_EXTENSIONS and path.is_file()


def _images_in(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if _is_image(p)}


def _pair_folders(image_dir: Path, label_dir: Path, label_name=None) -> list[Sample]:
    """Pair images with labels of the same stem (or ``label_name(stem)``); a missing label is an error."""
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: folder not found")
    labels = _images_in(label_dir)
    samples = []
    for stem, img in _images_in(image_dir).items():
        key = label_name(stem) if label_name else stem
        if key not in labels:
            raise DatasetError(f"{img}: no label {key}.* in {label_dir}")
        samples.append(Sample(stem, img, labels[key]))
    return samples


def _subset(samples: list[Sample], split: str, val_fraction: float, seed: int) -> list[Sample]:
    keep = set(seeded_split([s.name for s in samples], split, val_fraction, seed))
    return [s for s in samples if s.name in keep]


# ----------------------------------------------------------------------------- CamVid
class CamVidDataset(FileSegmentationDataset):
    """CamVid in the SegNet layout: ``ROOT/<split>/*.png`` with ``ROOT/<split>annot/*.png``.

    Any split folder works (``train``, ``val``, ``test``...); labels are one class id per
    pixel, 0..10, with 11 = unlabelled (ignored by the bundled mapping).
    """

    def __init__(self, root: str | Path, split: str = "train", taxonomy: str = "camvid11",
                 mapping: Any = None) -> None:
        root = Path(root)
        image_dir, label_dir = root / split, root / f"{split}annot"
        if not image_dir.is_dir() or not label_dir.is_dir():
            have = sorted(p.name for p in root.iterdir()
                          if p.is_dir() and (root / f"{p.name}annot").is_dir()) if root.is_dir() else []
            raise DatasetError(f"{root}: CamVid split {split!r} needs folders {split}/ and {split}annot/; "
                               f"splits found: {', '.join(have) or '(none)'}")
        m = resolve_mapping(mapping, f"camvid_to_{_tax_name(taxonomy)}", taxonomy)
        super().__init__(_pair_folders(image_dir, label_dir), m, f"camvid {root} split {split}")


# ----------------------------------------------------------------------------- KITTI
class KittiRoadDataset(FileSegmentationDataset):
    """KITTI Road: ``ROOT/training/image_2/<cat>_<id>.png`` with ``gt_image_2/<cat>_road_<id>.png``.

    Ground truth colours: road magenta, non-road red, black = not evaluated. Splits:
    ``training`` (or ``all``) = every labelled pair; ``train``/``val`` = a seeded subset of
    it (``val_fraction``, ``seed``); any other name = the folder ``ROOT/<split>`` if it has
    ``image_2`` and ``gt_image_2``. Sample names keep KITTI's ids (``um_000000``), which carry
    the category (um, umm, uu: the registry's ``Categories`` rule).
    """

    def __init__(self, root: str | Path, split: str = "training", taxonomy: str = "road_binary",
                 mapping: Any = None, val_fraction: float = 0.2, seed: int = 0) -> None:
        root = Path(root)
        folder = root / ("training" if split in ("training", "all", "train", "val") else split)
        if not (folder / "image_2").is_dir() and (root / "image_2").is_dir():
            folder = root  # ROOT is the training folder itself
        if not (folder / "gt_image_2").is_dir():
            raise DatasetError(f"{folder}: KITTI Road split {split!r} needs image_2/ and gt_image_2/ "
                               f"(the testing split has no labels)")

        def road_name(stem: str) -> str:
            cat, _, idx = stem.partition("_")
            return f"{cat}_road_{idx}"

        samples = _pair_folders(folder / "image_2", folder / "gt_image_2", road_name)
        if split in ("train", "val"):
            samples = _subset(samples, split, val_fraction, seed)
        m = resolve_mapping(mapping, f"kitti_to_{_tax_name(taxonomy)}", taxonomy)
        super().__init__(samples, m, f"kitti {folder} split {split}")

    @property
    def categories(self) -> list[str]:
        """KITTI category (um, umm, uu) of each sample."""
        rule = DATASETS["kitti"].categories
        assert rule is not None
        return [rule.of(n) for n in self.names]


# ----------------------------------------------------------------------------- CARLA
_CARLA_DIR_PAIRS = (("CameraRGB", "CameraSeg"), ("RGB", "Segmentation_Images"), ("rgb", "seg"),
                    ("images", "labels"))


def _carla_samples(folder: Path, carla_labels: str, image_dir: str | None, label_dir: str | None
                   ) -> list[Sample] | None:
    """Samples of one CARLA capture folder, or None when the folder has no known layout."""
    if image_dir or label_dir:
        if not (image_dir and label_dir):
            raise DatasetError("carla: give both image_dir and label_dir, or neither")
        if (folder / image_dir).is_dir():
            return _pair_folders(folder / image_dir, folder / label_dir)
        return None
    for img, lab in _CARLA_DIR_PAIRS:
        if (folder / img).is_dir() and (folder / lab).is_dir():
            return _pair_folders(folder / img, folder / lab)
    # CarlaScapes style: NAME_img.png with NAME_labelIds.png (ids) or NAME_color.png (palette).
    imgs = sorted(folder.glob("*_img.png")) if folder.is_dir() else []
    if imgs:
        suffix = "_color" if carla_labels == "palette" else "_labelIds"
        samples = []
        for p in imgs:
            stem = p.stem[: -len("_img")]
            lab = folder / f"{stem}{suffix}.png"
            if not lab.is_file():
                raise DatasetError(f"{p}: no label {lab.name} in {folder}")
            samples.append(Sample(stem, p, lab))
        return samples
    return None


class CarlaDataset(FileSegmentationDataset):
    """CARLA renders: Lyft challenge layout (``CameraRGB/`` + ``CameraSeg/``), palette form, CarlaScapes.

    ``carla_labels`` chooses the label encoding, and with it the bundled mapping
    ``carla_<carla_labels>_to_<taxonomy>.yaml``:
      - ``pre_0914``: id in the red channel, CARLA < 0.9.14 numbering (7 road, 6 road line);
      - ``post_0914``: id (red channel or grey), CARLA >= 0.9.14 numbering (1 road, 24 road line);
      - ``palette``: CityScapes-palette colours as the CARLA ROS bridge publishes (road (128,64,128)).
    Folder layouts: ``CameraRGB``/``CameraSeg``, ``RGB``/``Segmentation_Images``, or files
    ``NAME_img.png`` with ``NAME_labelIds.png`` / ``NAME_color.png``; ``image_dir``/``label_dir``
    override the folder names. Splits: ``all`` = ROOT's own pairs; ``train``/``val`` use
    ``ROOT/<split>/`` when it exists, else ``train`` = ROOT's pairs when a ``ROOT/val/`` capture
    exists (the Lyft data), else a seeded subset of ROOT's pairs; other names = ``ROOT/<split>/``.
    """

    def __init__(self, root: str | Path, split: str = "all", taxonomy: str = "camvid11",
                 mapping: Any = None, carla_labels: str = "pre_0914", val_fraction: float = 0.2,
                 seed: int = 0, image_dir: str | None = None, label_dir: str | None = None) -> None:
        if carla_labels not in CARLA_LABELS:
            raise DatasetError(f"carla_labels {carla_labels!r} is not one of {', '.join(CARLA_LABELS)}")
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: CARLA dataset folder not found")

        def at(folder: Path) -> list[Sample] | None:
            return _carla_samples(folder, carla_labels, image_dir, label_dir)

        samples: list[Sample] | None
        if split == "all":
            samples = at(root)
        elif at(root / split) is not None:
            samples = at(root / split)
        elif split in ("train", "val"):
            own = at(root)
            if own is None:
                samples = None
            elif split == "train" and at(root / "val") is not None:
                samples = own
            else:
                samples = _subset(own, split, val_fraction, seed)
        else:
            samples = None
        if samples is None:
            layouts = ", ".join(f"{a}/+{b}/" for a, b in _CARLA_DIR_PAIRS)
            raise DatasetError(f"{root}: no CARLA capture for split {split!r}; expected {layouts} or "
                               f"NAME_img.png files in ROOT or ROOT/{split}/")
        m = resolve_mapping(mapping, f"carla_{carla_labels}_to_{_tax_name(taxonomy)}", taxonomy)
        super().__init__(samples, m, f"carla[{carla_labels}] {root} split {split}")


# ----------------------------------------------------------------------------- Cityscapes
class CityscapesDataset(FileSegmentationDataset):
    """Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with labels in
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``."""

    def __init__(self, root: str | Path, split: str = "train", taxonomy: str = "camvid11",
                 mapping: Any = None) -> None:
        root = Path(root)
        img_root, gt_root = root / "leftImg8bit" / split, root / "gtFine" / split
        if not img_root.is_dir() or not gt_root.is_dir():
            have = sorted(p.name for p in (root / "leftImg8bit").iterdir() if p.is_dir()) \
                if (root / "leftImg8bit").is_dir() else []
            raise DatasetError(f"{root}: Cityscapes split {split!r} needs leftImg8bit/{split}/ and "
                               f"gtFine/{split}/; "
                               f"splits found: {', '.join(have) or '(none)'}")
        samples = []
        for img in sorted(img_root.glob("*/*_leftImg8bit.png")):
            stem = img.name[: -len("_leftImg8bit.png")]
            lab = gt_root / img.parent.name / f"{stem}_gtFine_labelIds.png"
            if not lab.is_file():
                raise DatasetError(f"{img}: no label {lab}")
            samples.append(Sample(stem, img, lab))
        m = resolve_mapping(mapping, f"cityscapes_to_{_tax_name(taxonomy)}", taxonomy)
        super().__init__(samples, m, f"cityscapes {root} split {split}")


# ----------------------------------------------------------------------------- Cityscapes (pix2pix form)
class CityscapesPix2PixDataset(FileSegmentationDataset):
    """Cityscapes as the pix2pix/BicycleGAN papers packed it: ``N.jpg`` = photo (left) | colour label (right).

    Both 256x256 halves were squashed from 2048x1024; ``load`` decodes the label at 256x256
    (nearest palette colour within the mapping's ``color_tolerance``, since the label went
    through JPEG) and then stretches photo and label back to 2:1 (``restore_size``, default
    512x256), so the network sees streets at their real proportions.

    Folders: ``ROOT/<split>/*.jpg`` (``ROOT/train``, ``ROOT/val``), or ROOT holding the jpgs.
    Splits: ``train``/``val`` use ``ROOT/train`` and ``ROOT/val`` when both exist; when only the
    training folder exists (this project's shared copy), ``train``/``val`` are a seeded
    ``val_fraction`` split of it. ``all`` = every pair of the training folder (or ROOT).
    """

    def __init__(self, root: str | Path, split: str = "train", taxonomy: str = "camvid11",
                 mapping: Any = None, val_fraction: float = 0.15, seed: int = 0,
                 restore_size: tuple[int, int] | None = (512, 256)) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: Cityscapes (pix2pix form) folder not found")
        own = sorted(p for p in root.iterdir() if _is_image(p))
        if split in ("train", "val", "all") and (root / "train").is_dir():
            folder = root / ("val" if split == "val" and (root / "val").is_dir() else "train")
            carve = split != "all" and not (root / "val").is_dir()
        elif split in ("train", "val", "all") and own:
            folder, carve = root, split != "all"
        elif (root / split).is_dir():
            folder, carve = root / split, False
        else:
            have = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DatasetError(f"{root}: no Cityscapes pix2pix split {split!r}: expected ROOT/{split}/*.jpg "
                               f"or ROOT/train/*.jpg; folders found: {', '.join(have) or '(none)'}")
        files = sorted(p for p in folder.iterdir() if _is_image(p))
        samples = [Sample(p.stem, p, p) for p in files]
        if carve:
            samples = _subset(samples, split, val_fraction, seed)
        self.restore_size = tuple(restore_size) if restore_size else None
        m = resolve_mapping(mapping, f"cityscapes_pix2pix_to_{_tax_name(taxonomy)}", taxonomy)
        if m.input != "colors":
            raise DatasetError(f"{m.source}: the pix2pix form holds colour labels; the mapping must have "
                               f"input: colors")
        super().__init__(samples, m, f"cityscapes_pix2pix {folder} split {split}")

    def _halves(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(photo, raw colour label) of sample ``index``, each 256x256 as stored."""
        s = self.samples[index]
        pair = read_rgb(s.image)
        h, w = pair.shape[:2]
        if w < 2 or w % 2:
            raise DatasetError(f"{s.image}: expected photo and label side by side (even width), got {w}x{h}")
        return pair[:, : w // 2], np.ascontiguousarray(pair[:, w // 2:])

    def raw_label(self, index: int) -> np.ndarray:
        return self._halves(index)[1]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, raw = self._halves(index)
        label = self.mapping.apply(raw)
        if self.restore_size is not None:
            from roadseg_ros.data.transforms import resize_pair

            image, label = resize_pair(np.ascontiguousarray(image), label, self.restore_size)
        return np.ascontiguousarray(image), label


# ----------------------------------------------------------------------------- IDD-Lite
class IddLiteDataset(FileSegmentationDataset):
    """IDD-Lite: ``leftImg8bit/<split>/<seq>/<id>_image.jpg`` with ``gtFine/<split>/<seq>/<id>_label.png``.

    Labels are IDD's level-1 ids (0 drivable ... 6 sky, 255 unlabelled), mapped by
    ``config/datasets/idd_lite_to_<taxonomy>.yaml``. Splits: ``train``/``val`` use the
    folders of those names when ``leftImg8bit/val`` exists; otherwise (this project's
    shared copy has only ``train``) a seeded ``val_fraction`` split of ``train``. ``all`` =
    the whole ``train`` folder; other names = ``leftImg8bit/<split>``. Sample names are
    ``<seq>/<id>``.
    """

    def __init__(self, root: str | Path, split: str = "train", taxonomy: str = "camvid11",
                 mapping: Any = None, val_fraction: float = 0.15, seed: int = 0) -> None:
        root = Path(root)
        images = root / "leftImg8bit"
        has_val = (images / "val").is_dir()
        folder = split if split not in ("train", "val", "all") else \
            ("val" if split == "val" and has_val else "train")
        carve = split in ("train", "val") and not has_val
        img_root, gt_root = images / folder, root / "gtFine" / folder
        if not img_root.is_dir() or not gt_root.is_dir():
            have = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
            raise DatasetError(f"{root}: IDD-Lite split {split!r} needs leftImg8bit/{folder}/ and "
                               f"gtFine/{folder}/; splits found: {', '.join(have) or '(none)'}")
        samples = []
        for img in sorted(img_root.glob("*/*_image.*")):
            if img.suffix.lower() not in DATASET_IMAGE_EXTENSIONS:
                continue
            ident = img.name[: -len("_image" + img.suffix)]
            lab = gt_root / img.parent.name / f"{ident}_label.png"
            if not lab.is_file():
                raise DatasetError(f"{img}: no label {lab}")
            samples.append(Sample(f"{img.parent.name}/{ident}", img, lab))
        if carve:
            samples = _subset(samples, split, val_fraction, seed)
        m = resolve_mapping(mapping, f"idd_lite_to_{_tax_name(taxonomy)}", taxonomy)
        super().__init__(samples, m, f"idd_lite {root} split {split}")


# ----------------------------------------------------------------------------- factory
class SyntheticScenes(SegmentationDataset):
    """``num_scenes`` synthetic scenes as a dataset: ``ds[i] == render_scene(seed_i, width, height)``.

    Splits draw from disjoint seed ranges (``train`` from ``seed``, ``val`` from
    ``seed + 1_000_000``, ``test`` from ``seed + 2_000_000``), so a validation set never
    repeats a training scene. Labels are CAMVID11; another ``taxonomy`` maps them with the
    bundled ``synthetic_to_<taxonomy>.yaml`` (or ``mapping``).
    """

    SPLIT_OFFSETS = {"train": 0, "val": 1_000_000, "test": 2_000_000}

    def __init__(self, num_scenes: int, width: int = 640, height: int = 360, seed: int = 0,
                 split: str = "train", taxonomy: str | Taxonomy = "camvid11", mapping: Any = None,
                 options: dict[str, Any] | None = None) -> None:
        if num_scenes < 1:
            raise ValueError(f"SyntheticScenes: num_scenes must be >= 1, got {num_scenes}")
        if split not in self.SPLIT_OFFSETS:
            raise ValueError(f"SyntheticScenes: split {split!r} not one of {', '.join(self.SPLIT_OFFSETS)}")
        self.width, self.height = int(width), int(height)
        self.base_seed = int(seed) + self.SPLIT_OFFSETS[split]
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - set(DEFAULT_OPTIONS))
        if unknown:
            raise ValueError(f"SyntheticScenes: unknown option(s) {unknown}; "
                             f"valid: {', '.join(DEFAULT_OPTIONS)}")
        tax = taxonomy if isinstance(taxonomy, Taxonomy) else get_taxonomy(taxonomy)
        self.taxonomy = tax
        self.mapping = None
        if tax.name != CAMVID11.name or mapping is not None:
            self.mapping = resolve_mapping(mapping, f"synthetic_to_{tax.name}", tax)
        self.names = [f"synthetic_{self.base_seed + i:07d}" for i in range(int(num_scenes))]

    def seed_of(self, index: int) -> int:
        """Scene seed of sample ``index``."""
        return self.base_seed + index

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = render_scene(self.seed_of(index), self.width, self.height, **self.options)
        if self.mapping is not None:
            label = self.mapping.apply(label)
        return image, label


def _tax_name(taxonomy: str | Taxonomy) -> str:
    return taxonomy.name if isinstance(taxonomy, Taxonomy) else get_taxonomy(taxonomy).name


def synthetic_scenes(root: None, split: str, taxonomy: str | Taxonomy = "camvid11", mapping: Any = None,
                     num_scenes: int = 100, size: Sequence[int] = (640, 360), seed: int = 0,
                     options: dict[str, Any] | None = None) -> SyntheticScenes:
    """The synthetic dataset's reader in the registry's form (``root`` is ignored: scenes are rendered)."""
    return SyntheticScenes(num_scenes, int(size[0]), int(size[1]), seed=seed, split=split, taxonomy=taxonomy,
                           mapping=mapping, options=options)


def build_dataset(name: str, root: str | Path | None, split: str, taxonomy: str = "camvid11",
                  mapping: Any = None, **kw: Any) -> SegmentationDataset:
    """Build a reader by dataset name (``roadseg_ros.dataset_registry.DATASETS``).

    ``mapping``: a YAML path, a config dict, a ``LabelMapping`` or None for the bundled
    ``config/datasets/<dataset>_to_<taxonomy>.yaml``. Extra keywords are the registry entry's
    ``options``: kitti, cityscapes_pix2pix (also ``restore_size``), idd_lite: ``val_fraction``,
    ``seed``; carla: ``carla_labels`` (pre_0914 | post_0914 | palette), ``val_fraction``, ``seed``,
    ``image_dir``, ``label_dir``; synthetic (``root`` ignored): ``num_scenes``, ``size=(w, h)``,
    ``seed``, ``options`` (``render_scene`` options).
    """
    _tax_name(taxonomy)  # fail early on an unknown taxonomy
    info = DATASETS.get(name)
    if info is None:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if info.needs_root and root is None:
        raise DatasetError(f"dataset {name!r} needs a root folder")
    bad = sorted(set(kw) - set(info.options))
    if bad:
        raise TypeError(f"build_dataset({name!r}): unexpected keyword(s) {bad}; "
                        f"valid: {', '.join(sorted(info.options)) or '(none)'}")
    reader = info.load_reader()
    return reader(root if info.needs_root else None, split, taxonomy=taxonomy, mapping=mapping, **kw)


def build_datasets(specs: Iterable[DatasetSpec], taxonomy: str | Taxonomy = "camvid11"
                   ) -> list[SegmentationDataset]:
    """One reader per spec, all in ``taxonomy``, in the order given (mix them with
    :class:`ConcatSegmentationDataset`, or keep them apart to score each on its own).

    An empty dataset is an error naming the spec: a run or a score over nothing would
    mean nothing.
    """
    datasets = []
    for spec in specs:
        ds = build_dataset(spec.name, spec.root, spec.split, taxonomy=_tax_name(taxonomy),
                           mapping=spec.mapping, **spec.options)
        if len(ds) == 0:
            raise DatasetError(f"dataset {spec.describe()} is empty")
        datasets.append(ds)
    return datasets


class ConcatSegmentationDataset(ConcatDataset):
    """Several readers in one taxonomy, indexed end to end; ``names`` are prefixed ``dataset:``."""

    def __init__(self, datasets: Iterable[SegmentationDataset], labels: Iterable[str] | None = None) -> None:
        datasets = list(datasets)
        if not datasets:
            raise DatasetError("no datasets to combine")
        taxes = {d.taxonomy.name for d in datasets}
        if len(taxes) != 1:
            raise MappingError(f"datasets to combine use different taxonomies {sorted(taxes)}; "
                               f"map them all onto one (taxonomy=...)")
        super().__init__(datasets)
        self.taxonomy = datasets[0].taxonomy
        labels = list(labels) if labels is not None else [type(d).__name__ for d in datasets]
        self.names = [f"{lab}:{n}" for lab, d in zip(labels, datasets) for n in d.names]
