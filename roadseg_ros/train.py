"""``roadseg-train``: train a segmentation model and save it in the engine's checkpoint format.

The script is a recipe of small functions (datasets -> loaders -> model/loss/optimiser ->
``train_one_epoch`` / ``evaluate`` -> checkpoints) so that each step can be read, tested
and reused on its own. Design choices and why:

* Determinism and exact resume. Each sample's augmentation draws from its own generator
  seeded by ``(seed, epoch, index)`` and the sample order comes from a sampler seeded by
  ``(seed, epoch)``, so the data an epoch sees does not depend on worker count, on
  where a previous session stopped, or on the RNG consumed by anything else. The
  global torch/numpy/python RNG states (dropout) are stored with the optimiser,
  scheduler and AMP scaler in ``OUTPUT/resume.pt`` at the end of each epoch, so
  ``--resume`` continues with exactly the next epoch an uninterrupted run would have run.
* Normalisation is the model's own when it declares one (``input_mean``/``input_std``:
  a pretrained encoder must see inputs the way its weights were trained, e.g.
  EfficientNet-Lite's (x - 127) / 128), else the ImageNet mean/std constants. Either way
  it is stored in the checkpoint, so inference never has to know.
* Pretrained encoders: models that take ``pretrained=`` start from their ImageNet weights
  (``--no-pretrained`` to start from scratch) and their ``encoder`` parameters learn at
  ``--encoder-lr-mult`` x the learning rate of the new heads. The checkpoint does not
  record ``pretrained``: rebuilding a trained model takes every weight from the file.
* Mixing datasets: ``--weight NAME=W`` (samples per epoch = W x the dataset's size) and
  ``--crop NAME=WxH`` (its own crop size, at its own aspect) switch to batches drawn from
  one dataset each (``roadseg_ros.data.sampling.MixedBatchSampler``).
* Validation resizes every image to a fixed ``--eval-size`` (bilinear image, nearest
  label) so that the per-epoch metric is comparable across epochs and with the size the
  checkpoint records as its ``input_size`` (what ``Segmenter`` runs at).
* Distributed: launched by ``torchrun`` (``env://``), each process trains on its shard
  of every epoch (``DistributedSampler``), validation shards are summed with
  ``all_reduce``; only rank 0 writes logs, metrics and checkpoints.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler

from roadseg_ros.classes import IGNORE_INDEX, TAXONOMIES, Taxonomy, get_taxonomy
from roadseg_ros.metrics import ConfusionMatrix, segmentation_report

#: ImageNet RGB mean/std (images scaled to [0, 1] first); stored in every checkpoint.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Dataset names accepted by ``--data NAME=ROOT`` (readers in roadseg_ros.data).
DATASET_NAMES = ("camvid", "kitti", "carla", "cityscapes", "cityscapes_pix2pix", "idd_lite")
LOSSES = ("ce", "focal", "dice", "ce+dice")
SCHEDULES = ("poly", "cosine")
RESUME_FILE = "resume.pt"


# ----------------------------------------------------------------------------- arguments
def parse_size(text: str) -> tuple[int, int]:
    """``"480x360"`` -> ``(480, 360)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like WIDTHxHEIGHT (e.g. 480x360), got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size {text!r} too small: width and height must be >= 8")
    return w, h


def parse_data_spec(text: str) -> tuple[str, str]:
    """``"camvid=/data/camvid"`` -> ``("camvid", "/data/camvid")``."""
    name, sep, root = text.partition("=")
    if not sep or not root:
        raise argparse.ArgumentTypeError(
            f"--data must be NAME=ROOT (NAME one of {', '.join(DATASET_NAMES)}), got {text!r}")
    if name not in DATASET_NAMES:
        raise argparse.ArgumentTypeError(f"unknown dataset {name!r} in --data {text!r}; "
                                         f"valid names: {', '.join(DATASET_NAMES)}")
    return name, root


def parse_named(text: str, option: str, value_type: Callable[[str], Any]) -> tuple[str, Any]:
    """``"NAME=VALUE"`` of the per-dataset options (``--weight``, ``--crop``); NAME a dataset or synthetic."""
    name, sep, value = text.partition("=")
    names = (*DATASET_NAMES, "synthetic")
    if not sep or name not in names:
        raise argparse.ArgumentTypeError(f"{option} must be NAME=VALUE with NAME in {', '.join(names)}, "
                                         f"got {text!r}")
    try:
        return name, value_type(value)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise argparse.ArgumentTypeError(f"{option} {text!r}: {exc}") from None


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"weight must be a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="roadseg-train",
        description="Train a road-segmentation model; writes OUTPUT/best.pt, last.pt (checkpoint format of "
                    "roadseg_ros.checkpoint), resume.pt, metrics.jsonl and TensorBoard logs in OUTPUT/tb. "
                    "Distributed: torchrun --nproc_per_node N -m roadseg_ros.train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", action="append", type=parse_data_spec, default=[], metavar="NAME=ROOT",
                   help=f"a dataset to train on (repeatable, mixed in one run); "
                        f"NAME in {', '.join(DATASET_NAMES)}")
    d.add_argument("--mapping", action="append", default=[], metavar="NAME=YAML",
                   help="class-mapping config for dataset NAME "
                        "(default: the dataset's own under config/datasets/)")
    d.add_argument("--carla-labels", default=None, choices=("pre_0914", "post_0914", "palette"),
                   help="CARLA label numbering (passed to the CARLA reader)")
    d.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N synthetic scenes to training")
    d.add_argument("--synthetic-val", type=int, default=None, metavar="M",
                   help="synthetic validation scenes (default: N//5 when no --data is given, else 0)")
    d.add_argument("--train-split", default="train")
    d.add_argument("--val-split", default="val", help="'none' disables validation (best.pt = last.pt)")
    d.add_argument("--taxonomy", default="camvid11", choices=sorted(TAXONOMIES))
    d.add_argument("--input-size", type=parse_size, default=(480, 360), metavar="WxH",
                   help="training crop size")
    d.add_argument("--eval-size", type=parse_size, default=None, metavar="WxH",
                   help="validation resize, stored as the checkpoint's input_size (default: --input-size)")
    d.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                   type=lambda t: parse_named(t, "--weight", _positive_float),
                   help="sampling weight of dataset NAME (or synthetic): W x its size samples per epoch "
                        "(repeatable; default 1; batches then come from one dataset each)")
    d.add_argument("--crop", action="append", default=[], metavar="NAME=WxH",
                   type=lambda t: parse_named(t, "--crop", parse_size),
                   help="training crop size of dataset NAME, at its own aspect (repeatable; default "
                        "--input-size; batches then come from one dataset each)")
    d.add_argument("--aspect-jitter", type=float, default=1.0, metavar="A",
                   help="stretch each training crop's proportions by a factor in [1/A, A] (log-uniform): "
                        "the node resizes any camera to one network size; 1 = off")
    d.add_argument("--no-augment", action="store_true",
                   help="no flip/jitter/scale/shadow: images are only resized to --input-size")
    d.add_argument("--workers", type=int, default=2)
    m = p.add_argument_group("model and optimisation")
    m.add_argument("--model", default=None, help="registry name (default: roadseg_ros.models.DEFAULT_MODEL)")
    m.add_argument("--dropout", type=float, default=None, help="dropout rate, for models that take one")
    m.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra build_model keyword (repeatable; VALUE parsed as YAML, e.g. batch_norm=true); "
                        "stored in the checkpoint's arch_kwargs")
    m.add_argument("--no-pretrained", action="store_true",
                   help="models with an ImageNet encoder (e.g. psp_lite0): start from random weights")
    m.add_argument("--encoder-lr-mult", type=float, default=0.1,
                   help="learning-rate factor of a pretrained model's encoder relative to its new heads")
    m.add_argument("--epochs", type=int, default=100)
    m.add_argument("--batch-size", type=int, default=8, help="per process")
    m.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"))
    m.add_argument("--lr", type=float, default=1e-3)
    m.add_argument("--weight-decay", type=float, default=1e-4)
    m.add_argument("--schedule", default="poly", choices=SCHEDULES)
    m.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up steps")
    m.add_argument("--loss", default="ce", choices=LOSSES, help=f"ignore index {IGNORE_INDEX}")
    m.add_argument("--focal-gamma", type=float, default=2.0)
    m.add_argument("--class-weights", default="none", choices=("none", "median-freq"),
                   help="median-frequency balancing (CamVid is imbalanced); computed on the training labels")
    m.add_argument("--aux-weight", type=float, default=0.4, help="weight of an auxiliary head's loss")
    m.add_argument("--amp", action="store_true",
                   help="mixed precision (fp16 + GradScaler on CUDA, bf16 on CPU)")
    r = p.add_argument_group("run")
    r.add_argument("--output", type=Path, default=Path("runs/train"))
    r.add_argument("--resume", type=Path, default=None,
                   help="OUTPUT dir, its resume.pt, or last.pt next to a resume.pt: "
                        "continue where it stopped")
    r.add_argument("--init", type=Path, default=None, metavar="CKPT",
                   help="fine-tune: start from this checkpoint's weights (e.g. the bundled "
                        "roadseg_ros/weights/roadseg_default.pt) with a fresh optimizer and schedule; "
                        "its architecture is used when --model is not given; its classes must be the "
                        "--taxonomy's")
    r.add_argument("--patience", type=int, default=0,
                   help="stop after this many evaluations without a better val mean IoU (0: never)")
    r.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (and after the last)")
    r.add_argument("--max-steps-per-epoch", type=int, default=None,
                   help="cap on steps per epoch (quick runs)")
    r.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="end this session after N epochs (continue later with --resume; the schedule "
                        "still spans --epochs)")
    r.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="end this session after the first epoch that finishes past this many minutes")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--half", action="store_true",
                   help="store best.pt/last.pt weights in fp16 (smaller files)")
    r.add_argument("--overlays", type=int, default=4, help="validation overlays logged to TensorBoard")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.data and args.synthetic <= 0:
        parser.error("nothing to train on: give --data NAME=ROOT and/or --synthetic N")
    for name, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    if args.eval_size is None:
        args.eval_size = args.input_size
    if not args.aspect_jitter >= 1.0:
        parser.error(f"--aspect-jitter must be >= 1, got {args.aspect_jitter}")
    if not args.encoder_lr_mult >= 0:
        parser.error(f"--encoder-lr-mult must be >= 0, got {args.encoder_lr_mult}")
    args.weight, args.crop = dict(args.weight), dict(args.crop)
    given = {name for name, _ in args.data} | ({"synthetic"} if args.synthetic > 0 else set())
    for option, table in (("--weight", args.weight), ("--crop", args.crop)):
        unused = sorted(set(table) - given)
        if unused:
            parser.error(f"{option} names {', '.join(unused)}, which this run does not train on")
    if args.synthetic_val is None:
        args.synthetic_val = max(1, args.synthetic // 5) if not args.data else 0
    mappings = {}
    for spec in args.mapping:
        name, sep, path = spec.partition("=")
        if not sep or name not in DATASET_NAMES:
            parser.error(f"--mapping must be NAME=YAML with NAME in {', '.join(DATASET_NAMES)}, got {spec!r}")
        mappings[name] = path
    args.mapping = mappings
    model_kwargs = {}
    for spec in args.model_arg:
        key, sep, value = spec.partition("=")
        if not sep or not key.isidentifier():
            parser.error(f"--model-arg must be KEY=VALUE with KEY a keyword name, got {spec!r}")
        try:
            model_kwargs[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            parser.error(f"--model-arg {spec!r}: value is not valid YAML ({exc})")
    args.model_kwargs = model_kwargs
    if args.init is not None:
        from roadseg_ros.checkpoint import CheckpointError, load_checkpoint
        try:
            init = load_checkpoint(args.init)
        except CheckpointError as exc:
            parser.error(f"--init: {exc}")
        if args.model is None:
            args.model = init.arch
            args.model_kwargs = {**init.arch_kwargs, **model_kwargs}
        elif args.model != init.arch:
            parser.error(f"--init {args.init} holds a {init.arch} but --model is {args.model}; "
                         f"drop --model to fine-tune the checkpoint's architecture")
        if list(init.class_names) != list(get_taxonomy(args.taxonomy).class_names):
            parser.error(f"--init {args.init} was trained on classes {', '.join(init.class_names)}, "
                         f"not on --taxonomy {args.taxonomy}'s; fine-tuning keeps the class set")
    if args.model is None:
        from roadseg_ros.models import DEFAULT_MODEL
        args.model = DEFAULT_MODEL
    return args


# ----------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when present; under torchrun ``cuda`` means this process's local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"roadseg-train: --device {name}: CUDA is not available on this machine (use cpu)")
    return device


def setup_distributed(device_arg: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_arg, info.local_rank)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, init_method="env://")
    return info, device


# ----------------------------------------------------------------------------- data
def to_tensor(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """RGB uint8 HxWx3 -> normalised float [3,H,W]."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def build_datasets(args: argparse.Namespace, taxonomy: Taxonomy) -> tuple[list[tuple[str, Dataset]],
                                                                         list[tuple[str, Dataset]]]:
    """(train, val) lists of ``(description, dataset)`` for every --data entry and the synthetic scenes."""
    from roadseg_ros.data import build_dataset

    train: list[tuple[str, Dataset]] = []
    val: list[tuple[str, Dataset]] = []
    for name, root in args.data:
        kw: dict[str, Any] = {}
        if name == "carla" and args.carla_labels:
            kw["carla_labels"] = args.carla_labels
        mapping = args.mapping.get(name)
        splits = [(train, args.train_split)]
        if args.val_split.lower() != "none":
            splits.append((val, args.val_split))
        for target, split in splits:
            target.append((f"{name}:{root}:{split}",
                           build_dataset(name, root, split, taxonomy=taxonomy.name, mapping=mapping, **kw)))
    if args.synthetic > 0:
        train.append((f"synthetic:{args.synthetic}:seed{args.seed}",
                      build_dataset("synthetic", None, "train", taxonomy=taxonomy.name,
                                    num_scenes=args.synthetic, size=args.eval_size, seed=args.seed)))
    if args.synthetic_val > 0 and args.val_split.lower() != "none":
        # the generator's "val" split draws from a seed range disjoint from "train"
        val.append((f"synthetic-val:{args.synthetic_val}:seed{args.seed}",
                    build_dataset("synthetic", None, "val", taxonomy=taxonomy.name,
                                  num_scenes=args.synthetic_val, size=args.eval_size, seed=args.seed)))
    for desc, ds in train + val:
        if len(ds) == 0:
            raise SystemExit(f"roadseg-train: dataset {desc} is empty")
    return train, val


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
        self.augment = self.augments[0] if self.augments else None
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
        import bisect

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


def median_frequency_weights(datasets: Sequence[Dataset], num_classes: int) -> torch.Tensor:
    """SegNet's median-frequency balancing: w_c = median(f) / f_c.

    f_c = pixels of class c / total pixels of the images in which c occurs.

    Classes absent from the training labels get weight 1 (they cannot contribute anyway).
    """
    from tqdm import tqdm

    pixels = np.zeros(num_classes, dtype=np.float64)
    image_pixels = np.zeros(num_classes, dtype=np.float64)
    for ds in datasets:
        for i in tqdm(range(len(ds)), desc="class frequencies", leave=False):
            label = np.asarray(ds[i][1])
            counts = np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=num_classes)[:num_classes]
            pixels += counts
            image_pixels[counts > 0] += label.size
    present = image_pixels > 0
    freq = np.where(present, pixels / np.maximum(image_pixels, 1), 0.0)
    weights = np.ones(num_classes)
    if present.any():
        weights[present] = np.median(freq[present]) / freq[present]
    return torch.tensor(weights, dtype=torch.float32)


# ----------------------------------------------------------------------------- model, loss, schedule
def build_model_for(args: argparse.Namespace, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``args.model`` with the --model-arg keywords; ``--dropout`` is passed only when given.

    Returns the model and the keywords, which the checkpoint records to rebuild it.
    """
    from roadseg_ros.models import accepts_pretrained, build_model

    kwargs: dict[str, Any] = dict(getattr(args, "model_kwargs", {}))
    kwargs.pop("pretrained", None)   # a build-time choice, never recorded (see the module docstring)
    if args.dropout is not None:
        kwargs["dropout"] = args.dropout
    build_kw = dict(kwargs)
    if accepts_pretrained(args.model):
        # ImageNet weights only for a fresh start: --init and --resume bring every weight themselves.
        build_kw["pretrained"] = not (getattr(args, "no_pretrained", False) or getattr(args, "init", None)
                                      or getattr(args, "resume", None))
    try:
        return build_model(args.model, num_classes, **build_kw), kwargs
    except RuntimeError as exc:   # e.g. the ImageNet weights package is missing
        raise SystemExit(f"roadseg-train: {exc}") from exc
    except TypeError as exc:
        if "dropout" in kwargs and "dropout" in str(exc):
            raise SystemExit(f"roadseg-train: model {args.model!r} takes no dropout argument; "
                             f"drop --dropout ({exc})") from exc
        raise SystemExit(f"roadseg-train: {exc}") from exc


def init_weights(model: nn.Module | None, path: Path) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model`` (strictly) for fine-tuning (``None``: only read it).

    Loaded without executing code (``weights_only``), like every checkpoint here. Returns
    what the new checkpoint records about its parent: path, architecture, date, command
    and headline metrics, so a fine-tuned model says what it was made from.
    """
    from roadseg_ros.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if model is not None:
        try:
            model.load_state_dict(ckpt.state_dict, strict=True)
        except RuntimeError as exc:
            raise SystemExit(f"roadseg-train: --init {path}: its weights do not fit {ckpt.arch} as built "
                             f"here ({' '.join(str(exc).split())[:300]})") from exc
    parent = ckpt.training or {}
    return {"path": str(path), "arch": ckpt.arch, "arch_kwargs": dict(ckpt.arch_kwargs),
            "date": parent.get("date"), "command": parent.get("command"),
            "git_commit": parent.get("git_commit"), "metrics": parent.get("metrics")}


class FocalLoss(nn.Module):
    """Focal loss (Lin et al.): cross-entropy scaled by (1 - p_t)^gamma, averaged over valid pixels."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none")
        valid = target != self.ignore_index
        pt = torch.exp(-ce)
        loss = (1 - pt).pow(self.gamma) * ce
        if self.weight is not None:
            loss = loss * self.weight[target.clamp(0, logits.shape[1] - 1)]
        return loss[valid].sum() / valid.sum().clamp(min=1)


class DiceLoss(nn.Module):
    """Soft Dice loss over the classes present in the batch's valid pixels (1 - mean Dice)."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = logits.shape[1]
        valid = (target != self.ignore_index).unsqueeze(1).float()
        probs = logits.float().softmax(1) * valid
        onehot = F.one_hot(target.clamp(0, n - 1), n).permute(0, 3, 1, 2).float() * valid
        inter = (probs * onehot).sum((0, 2, 3))
        denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        dice = (2 * inter + self.smooth) / (denom + self.smooth)
        present = onehot.sum((0, 2, 3)) > 0
        return 1 - (dice[present].mean() if present.any() else dice.mean())


def build_loss(name: str, class_weights: torch.Tensor | None = None,
               focal_gamma: float = 2.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-output loss: ``ce``, ``focal``, ``dice`` or ``ce+dice`` (all ignore label 255)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    ce = nn.CrossEntropyLoss(weight=class_weights, ignore_index=IGNORE_INDEX)
    if name == "ce":
        return ce
    if name == "focal":
        return FocalLoss(focal_gamma, class_weights)
    dice = DiceLoss()
    if name == "dice":
        return dice
    return lambda logits, target: ce(logits, target) + dice(logits, target)


def compute_loss(out: torch.Tensor | dict[str, torch.Tensor], target: torch.Tensor,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 aux_weight: float) -> torch.Tensor:
    """Loss of the main logits plus ``aux_weight`` x the auxiliary head's (models returning a dict)."""
    if isinstance(out, dict):
        loss = loss_fn(out["out"].float(), target)
        if "aux" in out and aux_weight > 0:
            loss = loss + aux_weight * loss_fn(out["aux"].float(), target)
        return loss
    return loss_fn(out.float(), target)


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then poly(0.9) or cosine decay."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "poly":
        return (1.0 - progress) ** 0.9
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW (default: robust from scratch) or SGD with Nesterov momentum; no decay on norms and biases.

    A model with a pretrained ``encoder`` gets it in its own groups at ``--encoder-lr-mult`` x
    the learning rate: the ImageNet features need nudging, the new heads need learning.
    """
    encoder = getattr(model, "encoder", None)
    enc_ids = {id(p) for p in encoder.parameters()} if isinstance(encoder, nn.Module) else set()
    mult = getattr(args, "encoder_lr_mult", 1.0) if enc_ids else 1.0
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            buckets.setdefault((id(p) in enc_ids, p.ndim <= 1), []).append(p)
    groups = [{"params": params, "weight_decay": 0.0 if flat else args.weight_decay,
               "lr": args.lr * (mult if in_enc else 1.0)}
              for (in_enc, flat), params in sorted(buckets.items())]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=args.lr)


# ----------------------------------------------------------------------------- train / evaluate
def _autocast(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    loss_fn: Callable, device: torch.device, *, epoch: int, amp: bool, aux_weight: float,
                    max_steps: int | None = None, writer: Any = None, global_step: int = 0,
                    show_progress: bool = True) -> dict[str, float]:
    """One pass over ``loader`` (at most ``max_steps`` batches); returns mean loss, steps, last lr."""
    from tqdm import tqdm

    model.train()
    total_steps = len(loader) if max_steps is None else min(len(loader), max_steps)
    losses: list[float] = []
    bar = tqdm(total=total_steps, desc=f"epoch {epoch + 1}", disable=not show_progress, leave=False,
               dynamic_ncols=True)
    for step, (images, labels) in enumerate(loader):
        if step >= total_steps:
            break
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with _autocast(device, amp):
            out = model(images)
        loss = compute_loss(out, labels, loss_fn, aux_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch + 1} step {step}: loss is {loss.item()} "
                                     f"(try a lower --lr or no --amp)")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(loss.item())
        if writer is not None:
            writer.add_scalar("train/loss", losses[-1], global_step + step + 1)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], global_step + step + 1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        bar.update(1)
    bar.close()
    return {"loss": float(np.mean(losses)) if losses else math.nan, "steps": len(losses),
            "first_loss": losses[0] if losses else math.nan, "lr": optimizer.param_groups[0]["lr"]}


@torch.no_grad()
def evaluate(model: nn.Module, dataset: EvalSet, device: torch.device, num_classes: int, *,
             batch_size: int = 4, amp: bool = False, dist_info: DistInfo | None = None,
             num_overlays: int = 0, show_progress: bool = True,
             workers: int = 0) -> tuple[ConfusionMatrix, list[tuple]]:
    """Confusion matrix of ``model`` on ``dataset`` (summed over all processes when distributed).

    Each process evaluates every ``world_size``-th sample (no padding, so no sample
    counts twice). Also returns up to ``num_overlays`` ``(image, prediction)`` pairs (rank 0).
    """
    from tqdm import tqdm

    from roadseg_ros.models import main_output

    info = dist_info or DistInfo()
    model.eval()
    indices = list(range(info.rank, len(dataset), info.world_size))
    loader = DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                        num_workers=workers)
    cm = ConfusionMatrix(num_classes)
    samples: list[tuple] = []
    for images, labels, raw in tqdm(loader, desc="validate", disable=not show_progress, leave=False):
        images = images.to(device)
        with _autocast(device, amp):
            logits = main_output(model(images))
        pred = logits.argmax(1)
        cm.update(labels.to(device), pred)
        for k in range(min(len(raw), num_overlays - len(samples))):
            samples.append((raw[k].numpy(), pred[k].to(torch.uint8).cpu().numpy()))
    if info.enabled:
        t = torch.from_numpy(cm.matrix).to(device if device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        cm.matrix = t.cpu().numpy().astype(np.int64)
    return cm, samples


def blend_overlay(image: np.ndarray, mask: np.ndarray, colors: Sequence[Sequence[int]],
                  alpha: float = 0.5) -> np.ndarray:
    """RGB image with the class colours of ``mask`` blended in (for TensorBoard)."""
    palette = np.zeros((256, 3), dtype=np.float32)
    palette[: len(colors)] = np.asarray(colors, dtype=np.float32)
    return (image.astype(np.float32) * (1 - alpha) + palette[mask] * alpha).clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- saving / resuming
def git_commit() -> str | None:
    """The source tree's git commit (with ``+dirty`` when it has changes), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (checkpoint metadata must load with weights_only=True)."""
    return json.loads(json.dumps(value, default=str))


def make_checkpoint(model: nn.Module, args: argparse.Namespace, taxonomy: Taxonomy, arch_kwargs: dict,
                    training: dict) -> Any:
    """A ``roadseg_ros.checkpoint.Checkpoint`` of the model's current weights."""
    from roadseg_ros.checkpoint import Checkpoint

    state = {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
    mean, std = model_normalization(model)
    return Checkpoint(arch=args.model, arch_kwargs=dict(arch_kwargs), class_names=list(taxonomy.class_names),
                      class_colors=[tuple(c) for c in taxonomy.class_colors],
                      drivable_classes=list(taxonomy.drivable_classes), mean=mean,
                      std=std, input_size=tuple(args.eval_size), state_dict=state,
                      training=_jsonable(training))


def model_normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input mean/std a model declares (``input_mean``/``input_std``), else ImageNet's."""
    m = _unwrap(model)
    return (tuple(getattr(m, "input_mean", IMAGENET_MEAN)), tuple(getattr(m, "input_std", IMAGENET_STD)))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU/CUDA, numpy legacy, python), as weights_only-loadable types."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                      int(np_state[3]), float(np_state[4])],
            "python": _jsonable(random.getstate())}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def resolve_resume_path(path: Path) -> Path:
    """Accept OUTPUT dir, its resume.pt, or last.pt/best.pt next to a resume.pt."""
    path = Path(path)
    candidate = path / RESUME_FILE if path.is_dir() else path
    if candidate.name != RESUME_FILE and candidate.suffix == ".pt":
        candidate = candidate.with_name(RESUME_FILE)
    if not candidate.is_file():
        raise SystemExit(f"roadseg-train: --resume {path}: no resume state at {candidate} "
                         f"(training writes OUTPUT/{RESUME_FILE} after each epoch)")
    return candidate


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``roadseg-train`` / ``python -m roadseg_ros.train``; returns the exit status."""
    args = parse_args(argv)
    info, device = setup_distributed(args.device)
    try:
        return _run(args, info, device, list(sys.argv if argv is None else ["roadseg-train", *argv]))
    finally:
        if info.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _run(args: argparse.Namespace, info: DistInfo, device: torch.device, command: list[str]) -> int:
    seed_everything(args.seed + info.rank)
    if device.type == "cpu":   # reuse freed activation buffers instead of page-faulting them in again
        from roadseg_ros.allocator import keep_freed_memory
        keep_freed_memory()
    taxonomy = get_taxonomy(args.taxonomy)
    nc = taxonomy.num_classes
    out_dir: Path = args.output
    say = print if info.is_main else (lambda *a, **k: None)

    model, arch_kwargs = build_model_for(args, nc)
    mean, std = model_normalization(model)
    train_parts, val_parts = build_datasets(args, taxonomy)
    part_names = [desc.split(":")[0] for desc, _ in train_parts]
    jitter = float(getattr(args, "aspect_jitter", 1.0))
    crops, weights = getattr(args, "crop", {}), getattr(args, "weight", {})
    train_set = TrainSet([ds for _, ds in train_parts], args.input_size, not args.no_augment, args.seed,
                         mean=mean, std=std, crop_sizes=[crops.get(n) for n in part_names],
                         aspect_range=(1.0 / jitter, jitter))
    val_set = EvalSet([ds for _, ds in val_parts], args.eval_size, mean=mean, std=std) if val_parts else None
    # each validation set is also scored on its own: one mixed mIoU hides a dataset going wrong
    val_sets = [(desc, EvalSet([ds], args.eval_size, mean=mean, std=std)) for desc, ds in val_parts]
    if crops or weights:   # one dataset per batch, each at its own crop size and sampling weight
        from roadseg_ros.data.sampling import MixedBatchSampler

        sampler = MixedBatchSampler([len(ds) for _, ds in train_parts],
                                    [weights.get(n, 1.0) for n in part_names], args.batch_size,
                                    seed=args.seed, rank=info.rank, world_size=info.world_size)
        loader = DataLoader(train_set, batch_sampler=sampler, num_workers=args.workers,
                            pin_memory=device.type == "cuda", persistent_workers=False)
        say("mixing: " + ", ".join(f"{n} {k} samples/epoch at {c[0]}x{c[1]}" for n, k, c in
                                   zip(part_names, sampler.samples_per_epoch(), train_set.crop_sizes)))
    else:
        sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=args.seed, drop_last=False)
        loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                            pin_memory=device.type == "cuda", drop_last=len(sampler) > args.batch_size,
                            persistent_workers=False)
    steps_per_epoch = len(loader) if args.max_steps_per_epoch is None else min(len(loader),
                                                                                 args.max_steps_per_epoch)
    total_steps = steps_per_epoch * args.epochs

    init_info = None
    if args.init is not None:   # a resumed run has its weights from resume.pt already
        init_info = init_weights(model if args.resume is None else None, args.init)
        say(f"fine-tuning from {args.init} ({init_info['arch']}, trained {init_info.get('date') or '?'})")
    model.to(device)
    weights = None
    if args.class_weights == "median-freq":
        weights = median_frequency_weights([ds for _, ds in train_parts], nc).to(device)
        say("class weights (median frequency): " + ", ".join(f"{n}={w:.2f}" for n, w in
                                                           zip(taxonomy.class_names, weights.tolist())))
    loss_fn = build_loss(args.loss, weights, args.focal_gamma)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
    optimizer = build_optimizer(args, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, args.schedule, args.warmup_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")

    start_epoch, global_step, best_miou, best_epoch, bad_evals = 0, 0, -math.inf, -1, 0
    history: list[dict] = []
    if args.resume is not None:
        path = resolve_resume_path(args.resume)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["arch"] != args.model or state["num_classes"] != nc:
            raise SystemExit(f"roadseg-train: --resume {path}: saved run is {state['arch']} with "
                             f"{state['num_classes']} classes, this run is {args.model} with {nc}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, global_step = state["epoch"], state["global_step"]
        best_miou, best_epoch, bad_evals = state["best_miou"], state["best_epoch"], state["bad_evals"]
        history = list(state.get("history", []))
        set_rng_state(state["rng"])
        if state.get("planned_epochs", args.epochs) != args.epochs:
            say(f"warning: the resumed run planned {state['planned_epochs']} epochs, this one {args.epochs}: "
                f"the learning-rate schedule changes")
        say(f"resumed from {path}: {start_epoch} epochs done, best val mIoU {best_miou:.4f}")

    if info.enabled:
        ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)

    writer = None
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out_dir / "tb"), purge_step=global_step if global_step else None)
        _rewrite_metrics(out_dir / "metrics.jsonl", history)
    say(f"training {args.model} ({sum(p.numel() for p in model.parameters()):,} parameters) on {device} "
        f"x{info.world_size}: {len(train_set)} training / {len(val_set) if val_set else 0} validation "
        f"samples, "
        f"{steps_per_epoch} steps per epoch")

    base_info = {
        "datasets": {"train": [d for d, _ in train_parts], "val": [d for d, _ in val_parts]},
        "command": " ".join(command), "git_commit": git_commit(), "seed": args.seed,
        "hyperparameters": _jsonable(vars(args)),
        "normalization": {"mean": list(mean), "std": list(std)}, "world_size": info.world_size,
        "device": str(device),
    }
    if init_info is not None:
        base_info["init"] = init_info
    stop = False
    session_start = time.time()
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        stats = train_one_epoch(model, loader, optimizer, scheduler, scaler, loss_fn, device, epoch=epoch,
                                amp=args.amp, aux_weight=args.aux_weight, max_steps=args.max_steps_per_epoch,
                                writer=writer, global_step=global_step, show_progress=info.is_main)
        global_step += stats["steps"]
        record: dict[str, Any] = {"epoch": epoch + 1, "step": global_step, "train_loss": stats["loss"],
                                  "first_step_loss": stats["first_loss"], "lr": stats["lr"]}
        last_epoch = epoch + 1 == args.epochs
        improved = False
        if val_set is not None and ((epoch + 1) % max(1, args.eval_every) == 0 or last_epoch):
            cm, samples = ConfusionMatrix(nc), []
            record["val_parts"] = {}
            for desc, part in val_sets:
                want = (args.overlays - len(samples)) if info.is_main else 0
                part_cm, part_samples = evaluate(_unwrap(model), part, device, nc, batch_size=args.batch_size,
                                                 amp=args.amp, dist_info=info, num_overlays=want,
                                                 show_progress=info.is_main, workers=args.workers)
                cm.matrix += part_cm.matrix
                samples += part_samples
                rep = segmentation_report(part_cm.matrix, taxonomy.class_names, taxonomy.drivable_classes)
                record["val_parts"][desc] = {"mean_iou": rep["mean_iou"], "road_iou": rep["road"]["iou"]}
            report = segmentation_report(cm.matrix, taxonomy.class_names, taxonomy.drivable_classes)
            record["val"] = report
            miou = report["mean_iou"] if report["mean_iou"] is not None else -math.inf
            if miou > best_miou:
                best_miou, best_epoch, bad_evals, improved = miou, epoch + 1, 0, True
            else:
                bad_evals += 1
            if writer is not None:
                writer.add_scalar("val/mean_iou", miou, global_step)
                writer.add_scalar("val/pixel_accuracy", report["pixel_accuracy"] or 0.0, global_step)
                for name, v in report["per_class_iou"].items():
                    if v is not None:
                        writer.add_scalar(f"val_iou/{name}", v, global_step)
                if report["road"]["f1"] is not None:
                    writer.add_scalar("val/road_f1", report["road"]["f1"], global_step)
                if samples:
                    grid = np.stack([blend_overlay(img, m, taxonomy.class_colors) for img, m in samples])
                    writer.add_images("val/overlay", grid, global_step, dataformats="NHWC")
            if args.patience > 0 and bad_evals >= args.patience:
                stop = True
        elif val_set is None:
            improved = True  # no validation: the latest weights are the best we know
            best_epoch = epoch + 1
        record["best_val_mean_iou"] = best_miou if best_miou > -math.inf else None
        record["time_s"] = round(time.time() - t0, 3)
        history.append(_jsonable(record))
        if writer is not None:
            writer.add_scalar("train/epoch_loss", stats["loss"], global_step)
        if info.is_main:
            training = dict(base_info, epochs=epoch + 1, planned_epochs=args.epochs, global_step=global_step,
                            best_epoch=best_epoch, metrics=record, history=history,
                            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
            _save_all(out_dir, model, args, taxonomy, arch_kwargs, training, improved, optimizer, scheduler,
                      scaler, epoch + 1, global_step, best_miou, best_epoch, bad_evals, history, nc)
            val_txt = (f", val mIoU {record['val']['mean_iou']:.4f} (best {best_miou:.4f} @ {best_epoch})"
                       if "val" in record and record["val"]["mean_iou"] is not None else "")
            for desc, part in record.get("val_parts", {}).items():
                if part["mean_iou"] is not None:
                    val_txt += (f"\n  {desc}: mIoU {part['mean_iou']:.4f}, "
                                f"road IoU {part['road_iou'] or 0:.4f}")
            say(f"epoch {epoch + 1}/{args.epochs}: loss {stats['loss']:.4f} (first step "
                f"{stats['first_loss']:.4f}), lr {stats['lr']:.2e}{val_txt}, {record['time_s']:.1f}s",
                flush=True)
        more = not stop and epoch + 1 < args.epochs
        if more and _session_over(args, epoch + 1 - start_epoch, time.time() - session_start, info, device):
            say(f"session ends after epoch {epoch + 1} (--stop-after/--time-limit); continue with "
                f"--resume {out_dir}")
            break
        if stop:
            say(f"early stop: no better val mIoU for {args.patience} evaluations (best {best_miou:.4f} "
                f"at epoch {best_epoch})")
            break
    if writer is not None:
        writer.close()
    if info.enabled:
        dist.barrier()
    return 0


def _session_over(args: argparse.Namespace, epochs_done: int, elapsed_s: float, info: DistInfo,
                  device: torch.device) -> bool:
    """Whether this session should end now (rank 0 decides on time so that all processes agree)."""
    if args.stop_after is not None and epochs_done >= args.stop_after:
        return True
    if args.time_limit is None:
        return False
    over = torch.tensor([1 if elapsed_s > args.time_limit * 60 else 0],
                        device=device if device.type == "cuda" else "cpu")
    if info.enabled:
        dist.broadcast(over, src=0)
    return bool(over.item())


def _rewrite_metrics(path: Path, history: list[dict]) -> None:
    """metrics.jsonl = one JSON line per finished epoch (rewritten on resume: drops lines past that point)."""
    with open(path, "w") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")


def _save_all(out_dir: Path, model: nn.Module, args: argparse.Namespace, taxonomy: Taxonomy,
              arch_kwargs: dict, training: dict, improved: bool, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler, epoch: int,
              global_step: int, best_miou: float, best_epoch: int, bad_evals: int, history: list[dict],
              num_classes: int) -> None:
    """last.pt (+ best.pt when improved), resume.pt and a metrics.jsonl line; files replaced atomically."""
    from roadseg_ros.checkpoint import save_checkpoint

    ckpt = make_checkpoint(model, args, taxonomy, arch_kwargs, training)
    save_checkpoint(ckpt, out_dir / "last.pt", half=args.half)  # written atomically by save_checkpoint
    if improved:
        save_checkpoint(ckpt, out_dir / "best.pt", half=args.half)
    state = {"arch": args.model, "num_classes": num_classes, "model": _unwrap(model).state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict(), "epoch": epoch, "global_step": global_step,
             "best_miou": best_miou, "best_epoch": best_epoch, "bad_evals": bad_evals,
             "history": history, "rng": rng_state(), "planned_epochs": args.epochs}
    _atomic(out_dir / RESUME_FILE, lambda p: torch.save(state, p))
    with open(out_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(history[-1]) + "\n")


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write to a temporary sibling then rename, so an interrupted save never leaves a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
