"""int8 for the OpenVINO backend: calibrated quantisation ranges, bound to one checkpoint.

Why ranges and not a quantised graph: the network is converted per input shape (a trace
bakes in its sizes, see :mod:`roadseg_ros.backends`), and the node's network size follows
each camera's aspect. A quantised graph calibrated at one shape would serve only that
shape. What calibration really learns is a value range per quantised tensor (and per
output channel for weights), and those do not depend on the image size. So
``roadseg-quantize`` runs NNCF's post-training quantisation once, reads back every
``FakeQuantize`` it inserted — keyed by the operator input it feeds, whose name comes from
the torch module path and is the same at every shape — and stores the ranges in a small
``.npz`` (no pickles: nothing in it can execute). At load time :func:`insert_ranges` puts
the same ``FakeQuantize`` operators into the float32 graph of whatever shape is needed, and
OpenVINO's CPU plugin turns them into int8 kernels. NNCF is needed only to calibrate.

The file records the digest of the weights it was calibrated for
(:func:`roadseg_ros.backends.weights_digest`); another checkpoint's ranges are refused
with one line. It also records how it was made and the accuracy measured against float32
on validation images, which :func:`accuracy_ok` checks before ``auto`` may pick int8.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roadseg_ros.config import ConfigError, one_line

__all__ = ["RANGES_SUFFIX", "FORMAT", "Int8Ranges", "QuantizationError", "ranges_path_for", "load_ranges",
           "save_ranges", "extract_ranges", "insert_ranges", "accuracy_ok", "MAX_MIOU_LOSS",
           "MAX_ROAD_IOU_LOSS", "find_ranges"]

#: The calibrated ranges of ``name.pt`` live beside it as ``name.int8.npz``.
RANGES_SUFFIX = ".int8.npz"
FORMAT = "roadseg_ros.int8_ranges/1"
#: The most int8 may lose against float32 before ``auto`` refuses it (issue 21's limits):
#: 0.5 points of mean IoU, 0.3 points of any road IoU.
MAX_MIOU_LOSS = 0.005
MAX_ROAD_IOU_LOSS = 0.003


class QuantizationError(ConfigError):
    """A calibration file that cannot be used (unreadable, another checkpoint's, another graph's)."""


@dataclass
class Int8Ranges:
    """Quantisation of one checkpoint: ``records`` say where each range goes, ``arrays`` hold them.

    A ``{"kind": "constant", "input": [...], "arrays": [value]}`` record replaces a constant
    NNCF changed (a bias corrected for the rounding of its layer's weights).
    An activation record is ``{"kind": "activation", "levels": 256, "inputs": [[operator
    name, input index], ...], "arrays": [low_in, high_in, low_out, high_out]}`` (a
    FakeQuantize in front of those inputs); a weight record is ``{"kind": "weight",
    "input": [operator name, input index], "arrays": [scale]}`` (int8 weights
    ``clip(rint(w / scale), -128, 127)`` times ``scale``, per output channel), with a third
    array name ``int8`` only where that rounding would not reproduce NNCF's own integers.
    ``arrays`` maps those names to float32 (or int8) arrays. ``info`` holds the recipe
    (datasets, image count, shape, tool versions) and the measured accuracy.
    """

    digest: str
    records: list[dict]
    arrays: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)
    path: Path | None = None


def ranges_path_for(weights_path: str | os.PathLike) -> Path:
    """Where the calibrated ranges of a checkpoint file are looked for: beside it."""
    path = Path(weights_path)
    return path.with_name(path.name.removesuffix(".pt") + RANGES_SUFFIX)


def save_ranges(ranges: Int8Ranges, path: str | os.PathLike) -> Path:
    """Write ``ranges`` to one ``.npz`` (atomically: a reader never sees half a file)."""
    path = Path(path)
    meta = {"format": FORMAT, "digest": ranges.digest, "records": ranges.records, "info": ranges.info}
    arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for name, a in ranges.arrays.items():
        arrays[f"a_{name}"] = np.asarray(a)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_ranges(path: str | os.PathLike) -> Int8Ranges:
    """Read a ranges file (``allow_pickle=False``); :class:`QuantizationError` naming the problem."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            records = list(meta["records"])
            arrays = {key[2:]: np.array(data[key]) for key in data.files if key.startswith("a_")}
            missing = [n for rec in records for n in rec["arrays"] if n not in arrays]
            if missing:
                raise ValueError(f"array {missing[0]!r} is missing")
            return Int8Ranges(str(meta["digest"]), records, arrays, dict(meta.get("info", {})), path)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise QuantizationError(f"{path}: not a usable int8 calibration file ({one_line(exc)})") from None
    except Exception as exc:  # zipfile.BadZipFile and kin: still one line
        raise QuantizationError(f"{path}: not a usable int8 calibration file "
                                f"({type(exc).__name__}: {one_line(exc)})") from None


def find_ranges(path: str | os.PathLike | None, digest: str) -> tuple[Int8Ranges | None, str | None]:
    """The usable ranges at ``path`` for weights of ``digest``: ``(ranges, None)``, or
    ``(None, why not)`` in one line (missing, unreadable, another checkpoint's, not proven)."""
    if path is None:
        return None, "no calibrated int8 model for weights given in memory"
    path = Path(path)
    if not path.is_file():
        return None, f"no calibrated int8 model {path.name} beside the weights (roadseg-quantize makes one)"
    try:
        ranges = load_ranges(path)
    except QuantizationError as exc:
        return None, str(exc)
    if ranges.digest != digest:
        return None, (f"{path}: calibrated for other weights (digest {ranges.digest[:12]}, these are "
                      f"{digest[:12]}); run roadseg-quantize for this checkpoint")
    why = accuracy_ok(ranges.info.get("accuracy"))
    if why is not None:
        return None, f"{path}: {why}"
    return ranges, None


def accuracy_ok(accuracy: dict | None) -> str | None:
    """Why the recorded int8-vs-fp32 accuracy does not allow int8 (``None``: it does).

    Road IoU may drop by at most :data:`MAX_ROAD_IOU_LOSS` on every validation dataset, mean
    IoU by at most :data:`MAX_MIOU_LOSS` on every real one (generated scenes are judged on the
    road only: their other classes are the renderer's few shapes).

    ``accuracy``: ``{"datasets": {name: {"fp32": {"mean_iou", "road_iou"}, "int8": {...}}}}``
    as ``roadseg-quantize`` measures it.
    """
    if not accuracy or not accuracy.get("datasets"):
        return "int8 accuracy was not measured against fp32 (roadseg-quantize --validate)"
    for name, scores in accuracy["datasets"].items():
        fp32, int8 = scores["fp32"], scores["int8"]
        limits = (("mean_iou", MAX_MIOU_LOSS, "mean IoU"), ("road_iou", MAX_ROAD_IOU_LOSS, "road IoU"))
        if name.startswith("synthetic"):   # the project's own renders: road only, not a benchmark
            limits = limits[1:]
        for key, limit, what in limits:
            loss = fp32[key] - int8[key]
            if loss > limit:
                return (f"int8 loses {100 * loss:.2f} points of {what} on {name} against fp32 "
                        f"(at most {100 * limit:.1f} allowed)")
    return None


# ----------------------------------------------------------------------------- graphs
_RESHAPES = ("Reshape", "Unsqueeze", "Squeeze")


def _constant_value(output: Any) -> np.ndarray | None:
    """The value of a graph output that is a constant, or a pure reshape of one (``None`` otherwise)."""
    node = output.get_node()
    if node.get_type_name() == "Constant":
        return np.array(node.get_data())
    if node.get_type_name() in _RESHAPES and output.get_partial_shape().is_static:
        inner = _constant_value(node.input(0).get_source_output())
        if inner is not None:
            return inner.reshape(tuple(output.get_partial_shape().to_shape()))
    return None


def _int8_of(weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(weights / scale), -128, 127).astype(np.int8)


def extract_ranges(quantized: Any, float_model: Any) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every quantisation NNCF put into ``quantized`` (an ``ov.Model``), keyed by the operator
    input it feeds: activation ``FakeQuantize`` ranges, and the per-channel scales of the
    int8 weights (``Convert(int8) * scale``). ``float_model`` is the float32 graph it was
    made from; its weights tell whether plain rounding reproduces NNCF's integers."""
    float_ops = {op.get_friendly_name(): op for op in float_model.get_ops()}
    records: list[dict] = []
    arrays: dict[str, np.ndarray] = {}

    def add(name: str, value: np.ndarray) -> str:
        key = f"{len(arrays)}"
        arrays[key] = value
        return key

    for op in quantized.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            quad = []
            for i in range(1, 5):
                value = _constant_value(op.input(i).get_source_output())
                if value is None:
                    raise QuantizationError(f"{op.get_friendly_name()}: range input {i} is not a constant")
                quad.append(value.astype(np.float32))
            # A ShapeOf reads only the shape, and its (generated) name differs between conversions.
            targets = [t for t in op.output(0).get_target_inputs()
                       if t.get_node().get_type_name() != "ShapeOf"]
            inputs = sorted([t.get_node().get_friendly_name(), t.get_index()] for t in targets)
            if inputs:
                records.append({"kind": "activation", "levels": int(op.get_attributes()["levels"]),
                                "inputs": inputs, "arrays": [add("fq", a) for a in quad]})
            continue
        for port, inp in enumerate(op.inputs()):
            weight = _compressed_weight(inp.get_source_output())
            if weight is None:
                changed = _changed_constant(op, port, float_ops)
                if changed is not None:   # e.g. a bias NNCF corrected for the rounding of its weights
                    records.append({"kind": "constant", "input": [op.get_friendly_name(), port],
                                    "arrays": [add("constant", changed)]})
                continue
            integers, scale = weight
            name = op.get_friendly_name()
            record = {"kind": "weight", "input": [name, port], "arrays": [add("scale", scale)]}
            original = float_ops.get(name)
            reference = (_constant_value(original.input(port).get_source_output())
                         if original is not None else None)
            rounded = _int8_of(reference.astype(np.float32), scale) if reference is not None else None
            if rounded is None or not np.array_equal(rounded, integers):
                record["arrays"].append(add("int8", integers))
            records.append(record)
    return records, arrays


def _changed_constant(op: Any, port: int, float_ops: dict[str, Any]) -> np.ndarray | None:
    """The new value of a constant input of ``op`` that differs from the float graph's (same
    shape; ``None`` when unchanged, not a constant, or not in the float graph)."""
    source = op.input(port).get_source_output().get_node()
    original = float_ops.get(op.get_friendly_name())
    if source.get_type_name() != "Constant" or original is None or port >= original.get_input_size():
        return None
    before = original.input(port).get_source_output().get_node()
    if before.get_type_name() != "Constant":
        return None
    new, old = np.array(source.get_data()), np.array(before.get_data())
    if new.shape != old.shape or new.dtype != old.dtype or np.array_equal(new, old):
        return None
    return new


def _compressed_weight(output: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(int8 values, float32 scale)`` when ``output`` is NNCF's ``Multiply(Convert(int8 const), scale)``."""
    node = output.get_node()
    if node.get_type_name() != "Multiply":
        return None
    convert = node.input(0).get_source_output().get_node()
    if convert.get_type_name() != "Convert":
        return None
    integers = _constant_value(convert.input(0).get_source_output())
    scale = _constant_value(node.input(1).get_source_output())
    if integers is None or scale is None or integers.dtype != np.int8:
        return None
    return integers, scale.astype(np.float32)


def insert_ranges(model: Any, ranges: Int8Ranges) -> Any:
    """A copy of the float32 ``ov.Model`` with ``ranges``' quantisation in place.

    Every recorded operator input must exist in ``model`` (same checkpoint, same
    architecture): a missing one means the graph is not the one calibrated, and that is a
    :class:`QuantizationError` rather than a silently half-quantised network.
    """
    import openvino.opset13 as ops

    model = model.clone()
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    wanted = [name for rec in ranges.records
              for name, _ in (rec["inputs"] if rec["kind"] == "activation" else [rec["input"]])]
    # A constant NNCF changed must fit this graph's (a shape-dependent constant would not transfer).
    for rec in ranges.records:
        if rec["kind"] == "constant" and rec["input"][0] in by_name:
            name, port = rec["input"]
            here = _constant_value(by_name[name].input(port).get_source_output())
            if here is None or here.shape != ranges.arrays[rec["arrays"][0]].shape:
                raise QuantizationError(f"{name} input {port}: the corrected constant does not fit "
                                        "this graph")
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise QuantizationError(f"{len(missing)} quantised operator input(s) are not in this graph (e.g. "
                                f"{missing[0]!r}): the calibration is for another model")
    for rec in ranges.records:
        values = [ranges.arrays[k] for k in rec["arrays"]]
        if rec["kind"] == "activation":
            first_name, first_port = rec["inputs"][0]
            source = by_name[first_name].input(first_port).get_source_output()
            fq = ops.fake_quantize(source, *(ops.constant(v) for v in values), int(rec["levels"]))
            for name, port in rec["inputs"]:
                by_name[name].input(port).replace_source_output(fq.output(0))
            continue
        name, port = rec["input"]
        target = by_name[name].input(port)
        if rec["kind"] == "constant":
            target.replace_source_output(ops.constant(values[0]).output(0))
            continue
        scale = values[0]
        if len(values) > 1:
            integers = values[1]
        else:
            weights = _constant_value(target.get_source_output())
            if weights is None:
                raise QuantizationError(f"{name} input {port}: its weights are not a constant in this graph")
            integers = _int8_of(weights.astype(np.float32), scale)
        dequantised = ops.multiply(ops.convert(ops.constant(integers), "f32"), ops.constant(scale))
        target.replace_source_output(dequantised.output(0))
    model.validate_nodes_and_infer_types()
    return model
