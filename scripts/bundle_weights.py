"""Make a trained checkpoint the bundled default: choose its network size, record its data terms, fp16.

    ./dev.sh run python scripts/bundle_weights.py runs/psp_lite0_mix/best.pt --input-size 480x352
    ./dev.sh run python scripts/bundle_weights.py runs/X/ep4.last.pt runs/X/ep5.last.pt runs/X/ep6.last.pt

Why a script: the bundled file is what every user loads first, so what goes into it must be
repeatable and visible. Given one checkpoint it changes only metadata (weights copied unchanged, stored
in fp16): ``input_size`` (the network size ``Segmenter`` and the node run at when not told
otherwise; chosen by measurement, see the README), ``training["data_licenses"]`` (added from
``roadseg_ros.dataset_registry`` when a run predates that field) and
``training["bundled"]`` (when and from which file). The checkpoint is loaded and saved with the
engine's own functions (``weights_only``: no code from the file runs).

Given several checkpoints of one run (say its last epochs' ``last.pt``), the bundled weights
are their element-wise mean, as stochastic weight averaging does: when late epochs of a
fine-tune scatter around one flat optimum, their mean can validate better than any one of them,
at no cost at inference (measure it: docs/training.md has a case where it did not). They must
be the same model (architecture and its arguments, classes, normalisation); the metadata is
the last one's, and ``training["bundled"]["from"]`` lists the files. Integer buffers
(BatchNorm's step counters) are taken from the last file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from roadseg_ros.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from roadseg_ros.config import default_weights_path, size_type
from roadseg_ros.dataset_registry import dataset_licenses


def average(sources: list[Path]) -> Checkpoint:
    """The element-wise mean of several checkpoints of one model; metadata of the last."""
    ckpts = [load_checkpoint(s) for s in sources]
    last = ckpts[-1]
    # load_checkpoint already checked each file's tensors against its architecture (names and
    # shapes), so equal architecture, arguments and classes mean the tensors line up.
    for path, c in zip(sources, ckpts):
        for name in ("arch", "arch_kwargs", "class_names", "drivable_classes", "mean", "std"):
            if getattr(c, name) != getattr(last, name):
                raise SystemExit(f"{path}: its {name} {getattr(c, name)!r} differs from {sources[-1]}'s "
                                 f"{getattr(last, name)!r}; only checkpoints of one model can be averaged")
    state = {}
    for key, t in last.state_dict.items():
        if t.is_floating_point():   # load_checkpoint returns float32 weights
            state[key] = sum(c.state_dict[key] for c in ckpts) / len(ckpts)
        else:
            state[key] = t.clone()
    last.state_dict = state
    return last


def bundle(sources: list[Path], target: Path, input_size: tuple[int, int] | None) -> Checkpoint:
    ckpt = average(sources) if len(sources) > 1 else load_checkpoint(sources[0])
    training = dict(ckpt.training or {})
    if "data_licenses" not in training:
        sets = training.get("datasets", {})
        training["data_licenses"] = dataset_licenses([*sets.get("train", []), *sets.get("val", [])])
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    origin = str(sources[0]) if len(sources) == 1 else [str(s) for s in sources]
    training["bundled"] = {"from": origin, "date": now, "trained_input_size": list(ckpt.input_size)}
    ckpt.training = training
    if input_size is not None:
        ckpt.input_size = tuple(input_size)
    save_checkpoint(ckpt, target, half=True)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("sources", type=Path, nargs="+", metavar="SOURCE",
                   help="trained checkpoint (e.g. runs/NAME/best.pt); several: their weights' mean")
    p.add_argument("--input-size", type=size_type(8), default=None, metavar="WxH",
                   help="network size to record (default: keep the checkpoint's)")
    p.add_argument("--output", type=Path, default=None, help=f"default: {default_weights_path()}")
    args = p.parse_args(argv)
    target = args.output or default_weights_path()
    ckpt = bundle(args.sources, target, args.input_size)
    size = target.stat().st_size / 2**20
    print(f"{target}: {ckpt.arch}, input {ckpt.input_size[0]}x{ckpt.input_size[1]}, {size:.1f} MiB, "
          f"data: {', '.join(ckpt.training['data_licenses'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
