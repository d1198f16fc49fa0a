"""Make a trained checkpoint the bundled default: choose its network size, record its data terms, fp16.

    ./dev.sh run python scripts/bundle_weights.py runs/psp_lite0_mix/best.pt --input-size 480x352

Why a script: the bundled file is what every user loads first, so what goes into it must be
repeatable and visible. It changes only metadata (the weights are copied unchanged, stored
in fp16): ``input_size`` (the network size ``Segmenter`` and the node run at when not told
otherwise; chosen by measurement, see the README), ``training["data_licenses"]`` (added from
``roadseg_ros.config.DATASET_LICENSES`` when a run predates that field) and
``training["bundled"]`` (when and from which file). The checkpoint is loaded and saved with the
engine's own functions (``weights_only``: no code from the file runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from roadseg_ros.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from roadseg_ros.config import dataset_licenses, default_weights_path, size_type


def bundle(source: Path, target: Path, input_size: tuple[int, int] | None) -> Checkpoint:
    ckpt = load_checkpoint(source)
    training = dict(ckpt.training or {})
    if "data_licenses" not in training:
        sets = training.get("datasets", {})
        training["data_licenses"] = dataset_licenses([*sets.get("train", []), *sets.get("val", [])])
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    training["bundled"] = {"from": str(source), "date": now, "trained_input_size": list(ckpt.input_size)}
    ckpt.training = training
    if input_size is not None:
        ckpt.input_size = tuple(input_size)
    save_checkpoint(ckpt, target, half=True)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("source", type=Path, help="trained checkpoint (e.g. runs/NAME/best.pt)")
    p.add_argument("--input-size", type=size_type(8), default=None, metavar="WxH",
                   help="network size to record (default: keep the checkpoint's)")
    p.add_argument("--output", type=Path, default=None, help=f"default: {default_weights_path()}")
    args = p.parse_args(argv)
    target = args.output or default_weights_path()
    ckpt = bundle(args.source, target, args.input_size)
    size = target.stat().st_size / 2**20
    print(f"{target}: {ckpt.arch}, input {ckpt.input_size[0]}x{ckpt.input_size[1]}, {size:.1f} MiB, "
          f"data: {', '.join(ckpt.training['data_licenses'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
