"""``roadseg-train``'s command line: the options, their checks, and what they mean together.

Everything a run is configured with is an ``argparse.Namespace`` made here; the other
training modules read it. Errors in the options are argparse errors (usage line, exit
status 2) raised before any data or model is touched.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from roadseg_ros.classes import IGNORE_INDEX, TAXONOMIES, get_taxonomy
from roadseg_ros.config import CARLA_LABEL_SCHEMES, size_type
from roadseg_ros.dataset_registry import DATASET_NAMES, FOLDER_DATASETS
from roadseg_ros.training.losses import LOSSES
from roadseg_ros.training.schedule import SCHEDULES

__all__ = ["build_parser", "parse_args", "parse_data_spec", "parse_named"]

#: Training and validation sizes: at least 8 pixels a side (the models' output stride).
_size = size_type(8)


def parse_data_spec(text: str) -> tuple[str, str]:
    """``"camvid=/data/camvid"`` -> ``("camvid", "/data/camvid")``."""
    name, sep, root = text.partition("=")
    if not sep or not root:
        raise argparse.ArgumentTypeError(
            f"--data must be NAME=ROOT (NAME one of {', '.join(FOLDER_DATASETS)}), got {text!r}")
    if name not in FOLDER_DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {name!r} in --data {text!r}; "
                                         f"valid names: {', '.join(FOLDER_DATASETS)}")
    return name, root


def parse_named(text: str, option: str, value_type: Callable[[str], Any]) -> tuple[str, Any]:
    """``"NAME=VALUE"`` of the per-dataset options (``--weight``, ``--crop``); NAME any dataset."""
    name, sep, value = text.partition("=")
    names = DATASET_NAMES
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
        allow_abbrev=False,
        prog="roadseg-train",
        description="Train a road-segmentation model; writes OUTPUT/best.pt, last.pt (checkpoint format of "
                    "roadseg_ros.checkpoint), resume.pt, metrics.jsonl and TensorBoard logs in OUTPUT/tb. "
                    "Distributed: torchrun --nproc_per_node N -m roadseg_ros.tools.train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", action="append", type=parse_data_spec, default=[], metavar="NAME=ROOT",
                   help=f"a dataset to train on (repeatable, mixed in one run); "
                        f"NAME in {', '.join(FOLDER_DATASETS)}")
    d.add_argument("--mapping", action="append", default=[], metavar="NAME=YAML",
                   help="class-mapping config for dataset NAME "
                        "(default: the dataset's own under config/datasets/)")
    d.add_argument("--carla-labels", default=None, choices=CARLA_LABEL_SCHEMES,
                   help="CARLA label numbering (passed to the CARLA reader)")
    d.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N synthetic scenes to training")
    d.add_argument("--synthetic-val", type=int, default=None, metavar="M",
                   help="synthetic validation scenes (default: N//5 when no --data is given, else 0)")
    d.add_argument("--train-split", default="train")
    d.add_argument("--val-split", default="val", help="'none' disables validation (best.pt = last.pt)")
    d.add_argument("--taxonomy", default="camvid11", choices=sorted(TAXONOMIES))
    d.add_argument("--input-size", type=_size, default=(480, 360), metavar="WxH",
                   help="training crop size")
    d.add_argument("--eval-size", type=_size, default=None, metavar="WxH",
                   help="validation resize, stored as the checkpoint's input_size (default: --input-size)")
    d.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                   type=lambda t: parse_named(t, "--weight", _positive_float),
                   help="sampling weight of dataset NAME (or synthetic): W x its size samples per epoch "
                        "(repeatable; default 1; batches then come from one dataset each)")
    d.add_argument("--crop", action="append", default=[], metavar="NAME=WxH",
                   type=lambda t: parse_named(t, "--crop", _size),
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
        if not sep or name not in FOLDER_DATASETS:
            parser.error(f"--mapping must be NAME=YAML with NAME in {', '.join(FOLDER_DATASETS)}, "
                         f"got {spec!r}")
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
