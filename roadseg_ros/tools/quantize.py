"""``roadseg-quantize``: int8 calibration of a checkpoint for the OpenVINO backend, with its accuracy shown.

1. **Calibration images**: ``--images`` (default 300) training images, seeded and spread
   evenly over the datasets the checkpoint records it was trained on (or ``--data
   NAME=ROOT``), pre-processed exactly as the node does (:meth:`Segmenter.network_input`,
   at the checkpoint's input size).
2. **Calibration**: NNCF post-training quantisation of the float32 OpenVINO graph (symmetric
   8-bit, per-channel weights, fast bias correction); the ranges and corrected biases are
   read back per operator input (:mod:`roadseg_ros.quantization`), so they serve every
   network shape the node will meet.
3. **Accuracy**: the same validation images scored in float32 and int8 through the
   OpenVINO backend (``--val-images`` per dataset; the checkpoint's recorded validation
   splits, or ``--validate NAME=ROOT[:SPLIT]``); mean IoU and road IoU of both are stored
   in the file. ``auto`` picks int8 only where the loss stays within 0.5 points of mean
   IoU and 0.3 of road IoU (:func:`roadseg_ros.quantization.accuracy_ok`).

The file (``NAME.int8.npz`` beside the checkpoint by default) is bound to the weights'
digest: another checkpoint's is refused with one line. NNCF is needed only here.

    roadseg-quantize --weights roadseg_default    # writes roadseg_ros/weights/roadseg_default.int8.npz
    roadseg-quantize --weights my.pt --data camvid=../data/camvid --validate camvid=../data/camvid:val
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roadseg_ros.config import ConfigError, one_line
from roadseg_ros.tools import ToolError, run_tool

PROG = "roadseg-quantize"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, allow_abbrev=False, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None,
                   help="checkpoint file or bundled name (default: the bundled roadseg_default)")
    p.add_argument("--output", type=Path, default=None,
                   help="the ranges file (default: NAME.int8.npz beside the checkpoint)")
    p.add_argument("--data", action="append", default=[], metavar="NAME=ROOT",
                   help="calibration dataset (train split); repeatable (default: the checkpoint's own "
                        "training datasets that exist here)")
    p.add_argument("--images", type=int, default=300, help="calibration images in all (default: %(default)s)")
    p.add_argument("--validate", action="append", default=[], metavar="NAME=ROOT[:SPLIT]",
                   help="validation dataset for the int8-vs-fp32 check; repeatable (default: the "
                        "checkpoint's recorded validation splits that exist here)")
    p.add_argument("--val-images", type=int, default=100,
                   help="validation images per dataset (default: %(default)s; 0: all)")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the accuracy check (then auto never picks int8 from this file)")
    p.add_argument("--seed", type=int, default=0, help="which calibration images are drawn")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="keep the float biases (NNCF's fast bias correction is on by default)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: half the cores)")
    return p


def _specs(texts: Sequence[str], recorded: Sequence[str], default_split: str, what: str) -> list[Any]:
    """Dataset specs from ``NAME=ROOT[:SPLIT]`` options, else the checkpoint's recorded ones that exist."""
    from roadseg_ros.dataset_registry import DatasetSpec, spec_from_description

    specs = []
    for text in texts:
        name, sep, rest = text.partition("=")
        if not sep or not rest:
            raise ConfigError(f"--{what} must be NAME=ROOT[:SPLIT], got {text!r}")
        root, sep, split = rest.rpartition(":")
        if not sep or "/" in split or Path(rest).exists():
            root, split = rest, ""
        try:
            specs.append(DatasetSpec(name, root, split or default_split))
        except ValueError as exc:
            raise ConfigError(f"--{what} {text!r}: {exc}") from None
        if not Path(root).is_dir():
            raise ConfigError(f"--{what} {text!r}: no such folder {root}")
    if texts:
        return specs
    for description in recorded:
        try:
            spec = spec_from_description(description)
        except ValueError:
            continue
        if spec.root is None or Path(spec.root).is_dir():
            specs.append(spec)
        else:
            print(f"{PROG}: skipping {description} (not here)", file=sys.stderr)
    return specs


def _open(specs: Sequence[Any], taxonomy: str) -> list[tuple[Any, Any]]:
    from roadseg_ros.data import DatasetError, build_dataset

    opened = []
    for spec in specs:
        try:
            ds = build_dataset(spec.name, spec.root, spec.split, taxonomy=taxonomy, **spec.options)
        except (DatasetError, ValueError, OSError) as exc:
            raise ConfigError(f"cannot read {spec.describe()}: {one_line(exc)}") from None
        if len(ds) == 0:
            raise ConfigError(f"{spec.describe()} has no samples")
        opened.append((spec, ds))
    return opened


def calibration_inputs(segmenter: Any, datasets: Sequence[tuple[Any, Any]], count: int, seed: int
                       ) -> list[np.ndarray]:
    """``count`` network inputs, an even share from each dataset, drawn without replacement."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    share = [count // len(datasets) + (1 if i < count % len(datasets) else 0) for i in range(len(datasets))]
    picks = [(ds, int(i)) for (_, ds), n in zip(datasets, share, strict=True)
             for i in rng.choice(len(ds), size=min(n, len(ds)), replace=False)]
    return [segmenter.network_input(ds[i][0]) for ds, i in tqdm(picks, desc="calibration images", unit="img")]


def _scores(report: dict) -> dict:
    return {"mean_iou": report["mean_iou"], "road_iou": report["road"]["iou"], "images": report["num_images"]}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join([PROG, *(argv if argv is not None else sys.argv[1:])])
    return run_tool(PROG, lambda: _run(args, command), failures=(OSError,))


def _run(args: argparse.Namespace, command: str) -> int:
    if args.images < 1:
        raise ConfigError(f"--images must be >= 1, got {args.images}")
    try:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    except ImportError as exc:
        raise ConfigError(f"roadseg-quantize needs nncf (pip install nncf): {one_line(exc)}") from None
    import openvino as ov
    import torch

    from roadseg_ros.backends import OpenVINONetwork, weights_digest
    from roadseg_ros.checkpoint import load_weights
    from roadseg_ros.classes import taxonomy_of
    from roadseg_ros.evaluation import evaluate_dataset
    from roadseg_ros.inference import Segmenter
    from roadseg_ros.quantization import Int8Ranges, accuracy_ok, extract_ranges, ranges_path_for, save_ranges
    from roadseg_ros.runtime import default_num_threads

    path, ckpt = load_weights(args.weights)
    threads = args.threads or default_num_threads()
    torch.set_num_threads(threads)
    taxonomy = taxonomy_of(ckpt.class_names)
    tax_name = taxonomy.name if taxonomy is not None else "camvid11"
    recorded = (ckpt.training or {}).get("datasets", {})
    calib_specs = _specs(args.data, recorded.get("train", []), "train", "data")
    if not calib_specs:
        raise ConfigError("no calibration data: the checkpoint's training datasets are not here; "
                          "give --data NAME=ROOT")
    digest = weights_digest(ckpt.state_dict, ckpt.arch, ckpt.arch_kwargs)
    prep = Segmenter(ckpt, device="cpu", backend="torch", precision="fp32", warmup=False)
    width, height = prep.input_size
    t0 = time.time()
    inputs = calibration_inputs(prep, _open(calib_specs, tax_name), args.images, args.seed)

    net = OpenVINONetwork(prep.model, "fp32", digest=digest, num_threads=threads, cache_dir=None)
    float_model = net.convert((1, 3, height, width))
    quantized = nncf.quantize(float_model, nncf.Dataset(inputs), subset_size=len(inputs),
                              preset=nncf.QuantizationPreset.PERFORMANCE,
                              advanced_parameters=AdvancedQuantizationParameters(
                                  disable_bias_correction=args.no_bias_correction))
    records, arrays = extract_ranges(quantized, float_model)
    info: dict[str, Any] = {
        "weights": str(path), "arch": ckpt.arch,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "calibration": {"datasets": [s.describe() for s in calib_specs], "images": len(inputs),
                        "seed": args.seed, "shape": [1, 3, height, width]},
        "versions": {"openvino": ov.__version__, "nncf": nncf.__version__},
        "quantised_inputs": sum(len(r["inputs"]) if r["kind"] == "activation" else 1 for r in records),
    }
    ranges = Int8Ranges(digest, records, arrays, info)
    print(f"{PROG}: calibrated {info['quantised_inputs']} operator inputs on {len(inputs)} images "
          f"in {time.time() - t0:.0f} s", file=sys.stderr)

    if not args.no_validate:
        val_specs = _specs(args.validate, recorded.get("val", []), "val", "validate")
        if not val_specs:
            raise ConfigError("no validation data for the accuracy check: give --validate NAME=ROOT[:SPLIT] "
                              "or --no-validate")
        accuracy: dict[str, Any] = {"datasets": {}, "view": "as roadseg-eval scores it (keep_aspect "
                                                        "but for squeezed datasets)"}
        segs = {precision: Segmenter(ckpt, device="cpu", backend="openvino", precision=precision,
                                     num_threads=threads, int8_ranges=ranges if precision == "int8" else None)
                for precision in ("fp32", "int8")}
        for precision, seg in segs.items():
            if seg.backend != "openvino" or seg.precision != precision:
                raise ToolError(f"the OpenVINO backend did not run {precision}: {seg.backend_reason}")
        from roadseg_ros.classes import get_taxonomy
        for spec, ds in _open(val_specs, tax_name):
            limit = args.val_images or None
            for seg in segs.values():
                seg.keep_aspect = not spec.info.squeezed
            entry = {p: _scores(evaluate_dataset(seg, ds, dataset_taxonomy=get_taxonomy(tax_name),
                                                 limit=limit))
                     for p, seg in segs.items()}
            accuracy["datasets"][spec.describe()] = entry
            print(f"{PROG}: {spec.describe()}: mean IoU fp32 {entry['fp32']['mean_iou']:.4f} "
                  f"int8 {entry['int8']['mean_iou']:.4f}; road IoU fp32 {entry['fp32']['road_iou']:.4f} "
                  f"int8 {entry['int8']['road_iou']:.4f}", file=sys.stderr)
        why = accuracy_ok(accuracy)
        accuracy["within_limits"] = why is None
        info["accuracy"] = accuracy
    output = args.output or ranges_path_for(path)
    save_ranges(ranges, output)
    verdict = ("not checked: auto will not pick int8" if args.no_validate else
               "within the limits: auto may pick int8" if info["accuracy"]["within_limits"] else
               f"auto will not pick int8 ({accuracy_ok(info['accuracy'])})")
    print(json.dumps({"output": str(output), "bytes": output.stat().st_size, "accuracy": verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
