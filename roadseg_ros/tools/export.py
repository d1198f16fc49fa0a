"""``roadseg-export``: TorchScript and ONNX exports of a checkpoint, with a parity check.

The exported graph takes the *normalised* float32 image ``[N,3,H,W]`` (RGB,
``(pixel / 255 - mean) / std``) and returns the logits ``[N,C,H,W]``; the
pre-processing constants, class names and colours go into a JSON sidecar next to the
model files so a C++/TensorRT consumer needs nothing from Python.

Each export is loaded back from disk and run on a seeded random input next to the eager
model. The check passes when ``max |exported - eager| <= atol + rtol * max |eager|``
(defaults ``atol=1e-3``, ``rtol=1e-4``: float32 re-ordering differences stay far
below that, a wrong graph does not); the share of pixels whose arg-max agrees is
reported too. A failed check exits with status 1.

ONNX (opset 17 by default) is exported with dynamic batch, height and width; if the
graph does not run correctly at a second size it is re-exported at the fixed
``--input-size`` and the sidecar says so. The TorchScript trace is tested the same way
and the sidecar records whether it accepts other sizes.

Example::

    roadseg-export --weights model.pt --output export/ --input-size 576x160
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from roadseg_ros.checkpoint import Checkpoint, load_weights, model_from_checkpoint
from roadseg_ros.config import ConfigError, default_weights_path, size_type
from roadseg_ros.models import main_output
from roadseg_ros.tools import CONFIG_ERROR, report

FORMATS = ("torchscript", "onnx")
DEFAULT_ATOL = 1e-3
DEFAULT_RTOL = 1e-4


class LogitsOnly(nn.Module):
    """Wraps a model so the exported graph always returns the main logits tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.model(x))


def compare(reference: torch.Tensor, candidate: np.ndarray | torch.Tensor, atol: float, rtol: float) -> dict:
    """Parity figures of ``candidate`` against the eager ``reference`` logits."""
    cand = torch.as_tensor(np.asarray(candidate)) if not isinstance(candidate, torch.Tensor) else candidate
    cand = cand.detach().float().cpu()
    ref = reference.detach().float().cpu()
    if cand.shape != ref.shape:
        return {"ok": False, "error": f"output shape {tuple(cand.shape)} != eager {tuple(ref.shape)}"}
    max_abs = float((cand - ref).abs().max())
    ref_max = float(ref.abs().max())
    tolerance = atol + rtol * ref_max
    agreement = float((cand.argmax(1) == ref.argmax(1)).float().mean())
    return {"ok": bool(max_abs <= tolerance), "max_abs_diff": max_abs, "tolerance": tolerance,
            "max_abs_logit": ref_max, "mask_agreement": agreement}


def _second_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A different batch and size that a dynamic export must also handle."""
    n, c, h, w = shape
    return n + 1, c, h + max(8, h // 4) + 1, w + max(8, w // 4) + 3


def _random(shape: Sequence[int], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, atol: float, rtol: float,
                       seed: int) -> dict:
    """Trace, save, reload and check; returns the sidecar entry."""
    with warnings.catch_warnings():
        # TracerWarning (shape arithmetic) is what the other-size check below measures;
        # FutureWarning is torch's TorchScript deprecation notice (still the C++/LibTorch format).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.inference_mode():
        parity = compare(model(example), loaded(example), atol, rtol)
        other = _random(_second_shape(tuple(example.shape)), seed + 1)
        try:
            dyn = compare(model(other), loaded(other), atol, rtol)
        except Exception as exc:  # a trace with baked-in sizes may raise at another size
            dyn = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return {"file": path.name, "parity": parity, "dynamic_shapes": dyn["ok"], "other_size_check": dyn}


def _onnx_export(model: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic: bool) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer warnings
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"input": axes, "logits": axes} if dynamic else None)


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic: bool,
                atol: float, rtol: float, seed: int) -> dict:
    """Export (dynamic if allowed, else fixed size), check with onnx and onnxruntime."""
    import onnx
    import onnxruntime as ort

    def run(x: torch.Tensor) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["logits"], {"input": x.numpy()})[0]

    entry: dict = {"file": path.name, "opset": opset}
    with torch.inference_mode():
        reference = model(example)
    if dynamic:
        _onnx_export(model, example, path, opset, dynamic=True)
        other = _random(_second_shape(tuple(example.shape)), seed + 1)
        try:
            with torch.inference_mode():
                dyn = compare(model(other), run(other), atol, rtol)
        except Exception as exc:  # e.g. a reshape with a size baked in by the trace
            dyn = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        entry["other_size_check"] = dyn
        if not dyn["ok"]:
            dynamic = False
            entry["dynamic_fallback_reason"] = dyn.get("error", "parity failed at another size")
    if not dynamic:
        _onnx_export(model, example, path, opset, dynamic=False)
    onnx.checker.check_model(str(path))
    entry["dynamic_shapes"] = dynamic
    entry["parity"] = compare(reference, run(example), atol, rtol)
    return entry


def export_checkpoint(ckpt: Checkpoint, out_dir: Path, name: str, formats: Sequence[str] = FORMATS,
                      input_size: tuple[int, int] | None = None, batch_size: int = 1, opset: int = 17,
                      dynamic: bool = True, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                      seed: int = 0, source: str | None = None) -> dict:
    """Export ``ckpt`` in ``formats`` to ``out_dir``; returns (and writes) the sidecar dict.

    ``sidecar["ok"]`` is False when any parity check failed.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown export format(s) {bad}; valid formats: {', '.join(FORMATS)}")
    width, height = input_size or tuple(ckpt.input_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = LogitsOnly(model_from_checkpoint(ckpt, device="cpu")).eval()
    example = _random((batch_size, 3, height, width), seed)
    sidecar: dict = {
        "arch": ckpt.arch, "arch_kwargs": ckpt.arch_kwargs, "source_checkpoint": source,
        "class_names": list(ckpt.class_names), "class_colors": [list(c) for c in ckpt.class_colors],
        "drivable_classes": list(ckpt.drivable_classes),
        "input": {"name": "input", "layout": "NCHW", "dtype": "float32", "color_order": "rgb",
                  "normalisation": "(pixel / 255 - mean) / std",
                  "mean": list(ckpt.mean), "std": list(ckpt.std),
                  "size": [width, height], "size_order": "width, height"},
        "output": {"name": "logits", "layout": "NCHW", "dtype": "float32",
                   "meaning": "class logits at the input resolution; argmax over C gives class ids"},
        "parity_rule": f"max|exported - eager| <= {atol} + {rtol} * max|eager| on seeded randn input",
        "torch_version": torch.__version__, "exports": {},
    }
    if "torchscript" in formats:
        sidecar["exports"]["torchscript"] = export_torchscript(
            model, example, out_dir / f"{name}.torchscript.pt", atol, rtol, seed)
    if "onnx" in formats:
        sidecar["exports"]["onnx"] = export_onnx(
            model, example, out_dir / f"{name}.onnx", opset, dynamic, atol, rtol, seed)
    sidecar["ok"] = all(e["parity"]["ok"] for e in sidecar["exports"].values())
    (out_dir / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="roadseg-export", description="Export a checkpoint to TorchScript and ONNX with a parity check.")
    parser.add_argument("--weights", type=Path, default=None,
                        help="checkpoint file, or a bundled one's name such as fcn8s_lite0 "
                             f"(default: the bundled {default_weights_path()})")
    parser.add_argument("--output", "-o", type=Path, default=Path("export"),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--name", default=None, help="file name stem (default: the checkpoint's stem)")
    parser.add_argument("--format", nargs="+", choices=FORMATS, default=list(FORMATS), dest="formats",
                        help="formats to write (default: both)")
    parser.add_argument("--input-size", type=size_type(), default=None, metavar="WxH",
                        help="example / fixed input size (default: the checkpoint's training size)")
    parser.add_argument("--batch-size", type=int, default=1, help="example batch size (default: %(default)s)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--static", action="store_true",
                        help="ONNX with a fixed input size (no dynamic axes)")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                        help="parity absolute tolerance (default: %(default)s)")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                        help="parity tolerance relative to max |eager logit| (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parity input")
    return parser


def _describe(fmt: str, entry: dict) -> str:
    p = entry["parity"]
    if "error" in p:
        return f"{fmt:12s} {entry['file']}: FAILED {p['error']}"
    verdict = "ok" if p["ok"] else "FAILED"
    return (f"{fmt:12s} {entry['file']}: max|diff| {p['max_abs_diff']:.3g} (tolerance {p['tolerance']:.3g}), "
            f"mask agreement {100 * p['mask_agreement']:.3f}%, "
            f"dynamic shapes {entry['dynamic_shapes']}: {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when every parity check passes, 1 when one fails, 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        weights, ckpt = load_weights(args.weights)
    except ConfigError as exc:
        return report("roadseg-export", exc, CONFIG_ERROR)
    name = args.name or Path(weights).stem
    sidecar = export_checkpoint(ckpt, args.output, name, formats=args.formats, input_size=args.input_size,
                                batch_size=args.batch_size, opset=args.opset, dynamic=not args.static,
                                atol=args.atol, rtol=args.rtol, seed=args.seed, source=str(weights))
    for fmt, entry in sidecar["exports"].items():
        print(_describe(fmt, entry))
    print(f"sidecar: {args.output / f'{name}.json'}")
    return 0 if sidecar["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
