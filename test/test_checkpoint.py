"""Checkpoint files: round trips, and every way a file can be wrong gives "<path>: <problem>"."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from roadseg_ros.checkpoint import (
    FORMAT,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from roadseg_ros.models import build_model, list_models

CLASSES = ["background", "road", "car"]


def _checkpoint(arch: str = "tiny_segnet", seed: int = 0, **arch_kwargs) -> Checkpoint:
    torch.manual_seed(seed)
    model = build_model(arch, len(CLASSES), **arch_kwargs)
    # non-trivial BatchNorm statistics, so they are part of what the round trip must keep
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 24, 32))
    return Checkpoint(
        arch=arch,
        arch_kwargs=dict(arch_kwargs),
        class_names=list(CLASSES),
        class_colors=[(0, 0, 0), (128, 64, 128), (64, 0, 128)],
        drivable_classes=[1],
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        input_size=(96, 64),
        state_dict=model.state_dict(),
        training={"datasets": ["synthetic"], "epochs": 3, "metrics": {"miou": np.float32(0.5)},
                  "command": "roadseg-train ...", "output": Path("/tmp/x"), "lr": [0.1, 0.01]},
    )


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(1)
    with torch.inference_mode():
        return model(torch.randn(2, 3, 37, 45))


def _assert_error(path: Path, *words: str):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: "), msg
    for word in words:
        assert word in msg, msg
    return msg


def test_round_trip_fp32_identical(tmp_path):
    ckpt = _checkpoint(width=6)
    path = save_checkpoint(ckpt, tmp_path / "sub" / "model.pt")
    assert path == tmp_path / "sub" / "model.pt" and path.is_file()
    loaded = load_checkpoint(path)
    for name in ("arch", "arch_kwargs", "class_names", "drivable_classes", "mean", "std", "input_size"):
        assert getattr(loaded, name) == getattr(ckpt, name), name
    assert loaded.class_colors == [(0, 0, 0), (128, 64, 128), (64, 0, 128)]
    assert loaded.training["metrics"]["miou"] == pytest.approx(0.5)
    assert loaded.training["output"] == "/tmp/x"
    assert set(loaded.state_dict) == set(ckpt.state_dict)
    for key, value in ckpt.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value), key

    original = build_model("tiny_segnet", 3, width=6)
    original.load_state_dict(ckpt.state_dict)
    restored = model_from_checkpoint(loaded)
    assert not restored.training
    assert all(p.dtype == torch.float32 for p in restored.parameters())
    assert torch.equal(_outputs(original.eval()), _outputs(restored))


def test_file_is_plain_data_loadable_with_weights_only(tmp_path):
    path = save_checkpoint(_checkpoint(), tmp_path / "m.pt")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == FORMAT and isinstance(raw["version"], int)
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))   # no temp file left


def test_half_round_trip_close_and_smaller(tmp_path):
    ckpt = _checkpoint("roadnet_small", widths=(8, 8, 16, 16, 32), decoder=16)
    full = save_checkpoint(ckpt, tmp_path / "full.pt")
    half = save_checkpoint(ckpt, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    raw = torch.load(half, map_location="cpu", weights_only=True)
    assert raw["state_dict"]["stem.0.0.weight"].dtype == torch.float16
    loaded = load_checkpoint(half)
    assert all(v.dtype == torch.float32 for v in loaded.state_dict.values() if v.is_floating_point())
    assert loaded.state_dict["stage1.0.conv1.1.num_batches_tracked"].dtype == torch.int64
    ref = _outputs(model_from_checkpoint(ckpt))
    out = _outputs(model_from_checkpoint(loaded))
    assert not torch.equal(ref, out)   # it really was rounded
    torch.testing.assert_close(out, ref, atol=2e-2 * ref.abs().max().item(), rtol=0)


def test_model_from_checkpoint_accepts_path_and_device(tmp_path):
    path = save_checkpoint(_checkpoint(), tmp_path / "m.pt")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    outs = []
    for device in devices:
        model = model_from_checkpoint(path, device=device)
        assert next(model.parameters()).device.type == device
        outs.append(_outputs(model.cpu()))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-4, rtol=1e-4)


def test_unsaveable_provenance_is_refused_at_save(tmp_path):
    ckpt = _checkpoint()
    ckpt.training = {"metrics": {"when": object()}}
    with pytest.raises(TypeError, match=r"training\['metrics'\]\['when'\]"):
        save_checkpoint(ckpt, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


class _Evil:
    """Unpickling this creates a file: the observable side effect a safe loader must prevent."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch_save", "raw_pickle"])
def test_code_executing_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT, "version": 1, "arch": "tiny_segnet", "hook": _Evil(marker)}
    if writer == "torch_save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    msg = _assert_error(path, "refused")
    assert "run code" in msg
    assert not marker.exists()

    # control: the file really does run code when loaded unsafely (so the test above can fail)
    if writer == "torch_save":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_missing_file(tmp_path):
    _assert_error(tmp_path / "nope.pt", "no such file")


def test_directory_and_empty_file(tmp_path):
    _assert_error(tmp_path, "not a regular file")
    (tmp_path / "empty.pt").write_bytes(b"")
    _assert_error(tmp_path / "empty.pt", "empty")


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_file(tmp_path, fraction):
    data = save_checkpoint(_checkpoint(), tmp_path / "m.pt").read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: int(len(data) * fraction)])
    _assert_error(bad, "truncated or corrupt")


def test_garbage_file(tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(bytes(range(256)) * 8)
    _assert_error(bad, "corrupt")


def test_foreign_state_dict(tmp_path):
    path = tmp_path / "raw.pt"
    torch.save(build_model("tiny_segnet", 3).state_dict(), path)
    _assert_error(path, "not a roadseg checkpoint", "bare state_dict")


@pytest.mark.parametrize("obj", [[1, 2, 3], {"model": 1, "epoch": 3}, torch.zeros(3)])
def test_foreign_objects(tmp_path, obj):
    path = tmp_path / "foreign.pt"
    torch.save(obj, path)
    _assert_error(path, "not a roadseg checkpoint")


def test_newer_version(tmp_path):
    path = save_checkpoint(_checkpoint(), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw["version"] = 99
    torch.save(raw, path)
    _assert_error(path, "version 99")


def test_unknown_architecture_lists_valid(tmp_path):
    ckpt = _checkpoint()
    ckpt.arch = "resnet_9000"
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    msg = _assert_error(path, "unknown architecture 'resnet_9000'")
    for name in list_models():
        assert name in msg


def test_missing_and_unexpected_keys_are_named(tmp_path):
    ckpt = _checkpoint()
    del ckpt.state_dict["classifier.weight"]
    ckpt.state_dict["extra.layer"] = torch.zeros(2)
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    _assert_error(path, "do not match architecture 'tiny_segnet'", "missing keys: classifier.weight",
                  "unexpected keys: extra.layer")


def test_shape_mismatch_is_named(tmp_path):
    ckpt = _checkpoint()
    ckpt.class_names = ["a", "b"]            # 2 classes, weights for 3
    ckpt.class_colors = [(0, 0, 0), (1, 1, 1)]
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    _assert_error(path, "shape mismatch", "classifier.weight (file (3, 8, 1, 1), model (2, 8, 1, 1))")


def test_wrong_arch_kwargs_is_a_mismatch(tmp_path):
    ckpt = _checkpoint(width=8)
    ckpt.arch_kwargs = {"width": 4}
    _assert_error(save_checkpoint(ckpt, tmp_path / "m.pt"), "shape mismatch")
    ckpt.arch_kwargs = {"no_such_option": 4}
    _assert_error(save_checkpoint(ckpt, tmp_path / "n.pt"), "cannot build architecture 'tiny_segnet'")


def test_bad_metadata(tmp_path):
    ckpt = _checkpoint()
    ckpt.drivable_classes = [5]
    ckpt.class_colors = ckpt.class_colors[:2]
    _assert_error(save_checkpoint(ckpt, tmp_path / "m.pt"), "drivable class ids [5]", "2 class colours")


def test_big_architecture_checked_without_building_it_for_real(tmp_path):
    """Validation builds on the meta device: a mismatched PSPNet-50 file fails fast and names the key."""
    with torch.device("meta"):
        sd = build_model("pspnet_resnet50", 3).state_dict()
    sd = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in list(sd.items())[:3]}
    ckpt = _checkpoint()
    ckpt.arch, ckpt.state_dict = "pspnet_resnet50", sd
    _assert_error(save_checkpoint(ckpt, tmp_path / "m.pt"), "missing keys: ")


@pytest.mark.parametrize("arch", [a for a in list_models() if a != "pspnet_resnet50"])  # 50: same code as 18
def test_every_architecture_round_trips(tmp_path, arch):
    """Validation builds each architecture on the meta device; the loaded model matches exactly."""
    kwargs = {"fc_channels": 16} if arch == "fcn8s_vgg16" else {}
    ckpt = _checkpoint(arch, **kwargs)
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / f"{arch}.pt"))
    original = build_model(arch, len(CLASSES), **kwargs)
    original.load_state_dict(ckpt.state_dict)
    assert torch.equal(_outputs(original.eval()), _outputs(model_from_checkpoint(loaded)))


@pytest.mark.parametrize("field, value, words", [
    ("arch_kwargs", [1, 2], "arch_kwargs must be a dict"),
    ("class_names", "road", "class_names must be a list"),
    ("class_colors", [None, None, None], "malformed checkpoint metadata"),
    ("input_size", ["wide", "tall"], "malformed checkpoint metadata"),
])
def test_malformed_fields_written_by_hand(tmp_path, field, value, words):
    path = save_checkpoint(_checkpoint(), tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    raw[field] = value
    torch.save(raw, path)
    _assert_error(path, words)
