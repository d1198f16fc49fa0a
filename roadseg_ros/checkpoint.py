"""One file per trained model: architecture, taxonomy, normalisation, weights, provenance.

A checkpoint must be enough on its own to rebuild and run the model (the node, the tools
and the exporter never need the training config), and loading one must never be able to
run code: files are written as plain Python containers and tensors only, and read with
``torch.load(..., weights_only=True)``, which refuses any pickle that would import or
call something. Every failure to load is a :class:`CheckpointError` whose message starts
with the file's path, then says what is wrong with it (missing, truncated, not a roadseg
checkpoint, unsafe, unknown architecture, weights that do not fit the architecture).

File layout (a dict): ``format`` = :data:`FORMAT`, ``version`` = :data:`VERSION`, ``half``
(weights stored as fp16), then the :class:`Checkpoint` fields by name.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from roadseg_ros.config import ConfigError, one_line, resolve_weights
from roadseg_ros.files import atomic_write
from roadseg_ros.models import build_model, list_models

#: Marker stored in every checkpoint file, so foreign torch files are recognised.
FORMAT = "roadseg_ros.checkpoint"
#: Layout version; bump (and keep reading older ones) when the layout changes.
VERSION = 1

_FIELDS = ("arch", "arch_kwargs", "class_names", "class_colors", "drivable_classes", "mean", "std",
           "input_size", "state_dict", "training")


class CheckpointError(Exception):
    """A checkpoint file cannot be used; the message is ``"<path>: <problem>"``."""


@dataclass
class Checkpoint:
    """Everything needed to rebuild, run and describe a trained model."""

    arch: str                                   # registry name (roadseg_ros.models)
    arch_kwargs: dict                           # extra build_model kwargs (num_classes = len(class_names))
    class_names: list[str]
    class_colors: list[tuple[int, int, int]]    # RGB
    drivable_classes: list[int]
    mean: tuple[float, float, float]            # RGB, images scaled to [0, 1] first
    std: tuple[float, float, float]
    input_size: tuple[int, int]                 # (width, height) the network was trained at
    state_dict: dict[str, torch.Tensor]
    training: dict = field(default_factory=dict)  # provenance: data, epochs, metrics, command, version, date

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _plain(value, where: str):
    """``value`` as only weights_only-loadable types (dict/list/tuple/str/int/float/bool/None/Tensor).

    numpy scalars/arrays and paths are converted; anything else is refused at save time
    (naming where it is), because it would make the file unloadable later.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}; only str/int keys can be saved")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":   # numpy scalar or array
        return _plain(value.tolist(), where)
    raise TypeError(f"{where}: a {type(value).__name__} cannot be stored in a checkpoint "
                    "(only dict/list/tuple/str/int/float/bool/None/tensors)")


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike, *, half: bool = False) -> Path:
    """Write ``ckpt`` to ``path`` (parents created); returns the path.

    ``half=True`` stores floating-point weights as fp16 (half the size, for the bundled
    file); :func:`load_checkpoint` converts them back to float32. The file is replaced whole
    (:func:`roadseg_ros.files.atomic_write`), so a crash never leaves a truncated checkpoint behind.
    """
    path = Path(path)
    state = {}
    for key, tensor in ckpt.state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(tensor).__name__}, not a tensor")
        t = tensor.detach().cpu()
        if half and t.is_floating_point():
            t = t.to(torch.float16)
        state[key] = t.clone().contiguous()
    payload = {"format": FORMAT, "version": VERSION, "half": bool(half)}
    for name in _FIELDS:
        if name != "state_dict":
            payload[name] = _plain(getattr(ckpt, name), name)
    payload["state_dict"] = state
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _read(path: Path) -> object:
    """``torch.load`` with weights_only, turning every failure into a :class:`CheckpointError`."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        found = re.search(r"GLOBAL (\S+)", msg)
        if found:
            raise CheckpointError(f"{path}: refused: loading it would import and run {found.group(1)!r} "
                                  "(a file that would run code when loaded is never a roadseg checkpoint)") \
                from exc
        detail = re.search(r"(Unsupported [^\n]*)", msg)
        why = detail.group(1).strip() if detail else (msg.splitlines()[0] if msg else "")
        raise CheckpointError(f"{path}: truncated or corrupt file, or not a torch file ({why})") from exc
    except (EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt file ({type(exc).__name__}: {exc})") from exc
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: truncated or corrupt file ({first})") from exc
    except Exception as exc:   # noqa: BLE001 - any other decoder failure means "cannot read this file"
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


def _check_state_dict(path: Path, arch: str, arch_kwargs: dict, num_classes: int,
                      state_dict: dict[str, torch.Tensor]) -> None:
    """Raise if ``state_dict`` does not fit ``arch`` exactly (keys and shapes).

    The model is built on the meta device, so this costs no memory and little time even
    for the big networks.
    """
    try:
        with torch.device("meta"):
            model = build_model(arch, num_classes, **arch_kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot build architecture {arch!r} with {arch_kwargs}: {exc}") \
            from exc
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} (file {tuple(state_dict[k].shape)}, model {tuple(v.shape)})"
              for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_few(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {_few(shapes)}")
    if problems:
        raise CheckpointError(f"{path}: weights do not match architecture {arch!r} "
                              f"({num_classes} classes, {arch_kwargs}): " + "; ".join(problems))


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint written by :func:`save_checkpoint` (weights as float32).

    Raises :class:`CheckpointError` ``"<path>: <problem>"`` for a missing, empty, truncated
    or corrupt file, a file that would run code, a foreign torch file (e.g. a bare
    state_dict), an unknown architecture (valid names listed), or weights that do not
    match the architecture (missing/unexpected keys, shape mismatches).
    """
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        what = type(data).__name__
        if isinstance(data, dict):
            keys = list(data)[:5]
            what = f"a dict with keys {keys}{' ...' if len(data) > 5 else ''}"
            if data and all(isinstance(v, torch.Tensor) for v in data.values()):
                what = f"a bare state_dict ({len(data)} tensors)"
        raise CheckpointError(f"{path}: not a roadseg checkpoint (found {what}; expected a file written "
                              "by roadseg_ros.checkpoint.save_checkpoint)")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than this "
                              f"roadseg_ros understands ({VERSION}); update roadseg_ros")
    missing = [name for name in _FIELDS if name not in data]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks fields {missing}")
    arch = data["arch"]
    if arch not in list_models():
        raise CheckpointError(f"{path}: unknown architecture {arch!r}; valid: {', '.join(list_models())}")
    state_dict = data["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: state_dict is not a dict of tensors")
    arch_kwargs = data["arch_kwargs"] or {}
    if not isinstance(arch_kwargs, dict) or not all(isinstance(k, str) for k in arch_kwargs):
        raise CheckpointError(f"{path}: arch_kwargs must be a dict of keyword arguments, got {arch_kwargs!r}")
    if not isinstance(data["class_names"], (list, tuple)):
        raise CheckpointError(f"{path}: class_names must be a list, got {type(data['class_names']).__name__}")
    class_names = list(data["class_names"])
    try:
        ckpt = Checkpoint(
            arch=arch,
            arch_kwargs=arch_kwargs,
            class_names=[str(n) for n in class_names],
            class_colors=[tuple(int(c) for c in rgb) for rgb in data["class_colors"]],
            drivable_classes=[int(c) for c in data["drivable_classes"]],
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            input_size=tuple(int(v) for v in data["input_size"]),
            state_dict={k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()},
            training=dict(data["training"] or {}),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint metadata ({exc})") from exc
    _validate_metadata(path, ckpt)
    _check_state_dict(path, arch, arch_kwargs, ckpt.num_classes, ckpt.state_dict)
    return ckpt


def _validate_metadata(path: Path, ckpt: Checkpoint) -> None:
    n = ckpt.num_classes
    problems = []
    if n < 1:
        problems.append("no class names")
    if len(ckpt.class_colors) != n or any(len(c) != 3 for c in ckpt.class_colors):
        problems.append(f"{len(ckpt.class_colors)} class colours for {n} classes (need one RGB triple each)")
    if any(not 0 <= c < n for c in ckpt.drivable_classes):
        problems.append(f"drivable class ids {ckpt.drivable_classes} out of range 0..{n - 1}")
    if len(ckpt.mean) != 3 or len(ckpt.std) != 3 or any(not (s > 0 and math.isfinite(s)) for s in ckpt.std):
        problems.append(f"normalisation mean={ckpt.mean} std={ckpt.std} is not 3 values with std > 0")
    if len(ckpt.input_size) != 2 or any(v < 1 for v in ckpt.input_size):
        problems.append(f"input_size {ckpt.input_size} is not (width, height) > 0")
    if problems:
        raise CheckpointError(f"{path}: malformed checkpoint metadata: " + "; ".join(problems))


def model_from_checkpoint(ckpt: Checkpoint | str | os.PathLike,
                          device: str | torch.device = "cpu") -> nn.Module:
    """Build the checkpoint's architecture, load its weights strictly, float32, eval mode, on ``device``.

    ``ckpt`` may also be a path (loaded with :func:`load_checkpoint`), an extension of the
    documented contract that keeps callers short.
    """
    if not isinstance(ckpt, Checkpoint):
        ckpt = load_checkpoint(ckpt)
    model = build_model(ckpt.arch, ckpt.num_classes, **ckpt.arch_kwargs)
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model.float().to(device).eval()


def load_weights(weights: str | os.PathLike | None, how: str = "--weights PATH") -> tuple[Path, Checkpoint]:
    """The checkpoint a tool or node was given, or the bundled one when none: ``(path, Checkpoint)``.

    Both ways to fail (no such file; a file that is no usable checkpoint) are configuration
    errors of the caller, so both raise :class:`~roadseg_ros.config.ConfigError` with one line
    naming the file (``how``: how this caller is given weights, for the hint).
    """
    path = resolve_weights(weights, how)
    try:
        return path, load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(one_line(exc)) from None
