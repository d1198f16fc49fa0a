"""roadseg-infer on a generated image folder and a generated MP4."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from roadseg_ros.checkpoint import Checkpoint, save_checkpoint
from roadseg_ros.classes import CAMVID11
from roadseg_ros.inference import Segmenter
from roadseg_ros.models import build_model
from roadseg_ros.tools.infer import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    model = build_model("tiny_segnet", CAMVID11.num_classes)
    ckpt = Checkpoint(arch="tiny_segnet", arch_kwargs={}, class_names=list(CAMVID11.class_names),
                      class_colors=list(CAMVID11.class_colors), drivable_classes=[3],
                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=(48, 32),
                      state_dict=model.state_dict(), training={})
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("w") / "tiny.pt")


def bgr_frame(seed: int, height: int = 36, width: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (width, height))
    return img


def test_image_folder(tmp_path, weights, capsys):
    src = tmp_path / "frames"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), bgr_frame(0))
    cv2.imwrite(str(src / "b.jpg"), bgr_frame(1, 41, 29))
    cv2.imwrite(str(src / "a.bmp"), bgr_frame(2))  # same stem as a.png: must not overwrite it
    (src / "broken.png").write_bytes(b"not a png at all")
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    rc = main([str(src), "--weights", str(weights), "--output", str(out), "--device", "cpu", "--no-progress"])
    assert rc == 1  # the broken file makes the run fail, after processing the rest
    err = capsys.readouterr().err
    assert "broken.png" in err and "cannot read" in err
    names = sorted(p.name for p in out.iterdir())
    # files are taken in sorted order: a.bmp gets the plain stem, a.png the suffixed one
    assert names == ["a_mask.png", "a_overlay.png", "a_png_mask.png", "a_png_overlay.png",
                     "b_mask.png", "b_overlay.png"]
    # as roadseg-infer by default
    seg = Segmenter(weights, device="cpu", keep_aspect=True, backend="auto", precision="auto")
    for stem, src_name in [("a_png", "a.png"), ("b", "b.jpg"), ("a", "a.bmp")]:
        image = cv2.imread(str(src / src_name))
        mask = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, seg.predict(image, color_order="bgr").mask)
        overlay = cv2.imread(str(out / f"{stem}_overlay.png"))
        assert overlay.shape == image.shape
        assert not np.array_equal(overlay, image)


def test_single_image_ok(tmp_path, weights):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), bgr_frame(3))
    rc = main([str(path), "--weights", str(weights), "-o", str(tmp_path / "o"), "--device", "cpu",
               "--input-size", "32x24", "--drivable-only", "--threads", "1", "--no-progress"])
    assert rc == 0
    assert (tmp_path / "o" / "one_mask.png").is_file() and (tmp_path / "o" / "one_overlay.png").is_file()


def test_video(tmp_path, weights):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (50, 36))
    assert writer.isOpened()
    for i in range(5):
        writer.write(bgr_frame(i))
    writer.release()
    out = tmp_path / "out"
    rc = main([str(video), "--weights", str(weights), "-o", str(out), "--device", "cpu", "--no-progress"])
    assert rc == 0
    masks = sorted((out / "clip_masks").iterdir())
    assert [m.name for m in masks] == [f"clip_{i:06d}_mask.png" for i in range(5)]
    assert cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED).shape == (36, 50)
    cap = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (36, 50, 3)
        frames += 1
    cap.release()
    assert frames == 5


def test_unreadable_video_is_reported(tmp_path, weights, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert main([str(bad), "--weights", str(weights), "-o", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "bad.mp4" in capsys.readouterr().err


def test_missing_input_and_bad_weights(tmp_path, weights, capsys):
    assert main([str(tmp_path / "nope.png"), "--weights", str(weights), "-o", str(tmp_path / "o")]) == 2
    assert "nope.png" in capsys.readouterr().err
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), bgr_frame(0))
    assert main([str(img), "--weights", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(img), "--weights", str(weights), "--input-size", "big"])
    assert main([str(img), "--weights", str(weights), "-o", str(tmp_path / "o"), "--device", "cpu",
                 "--backend", "torch", "--precision", "fp16"]) == 2
    assert "'fp16' is not supported on the CPU" in capsys.readouterr().err


def test_missing_default_weights_says_how_to_get_them(tmp_path, capsys, monkeypatch):
    # Point the default at a path that does not exist (the real bundled file may).
    import roadseg_ros.config

    absent = tmp_path / "weights" / "roadseg_default.pt"
    monkeypatch.setattr(roadseg_ros.config, "default_weights_path", lambda: absent)
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), bgr_frame(0))
    assert main([str(img), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(absent) in err and "roadseg-train" in err and "--weights" in err


def test_an_abbreviated_option_is_an_error_not_another_option(tmp_path, weights, capsys):
    # argparse's prefix matching used to read --input as --input-size ("bad size 'DIR'").
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--input", str(tmp_path), "--weights", str(weights)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --input" in err and "size" not in err.split("error:")[-1]


def test_recorded_drive_and_its_problems(tmp_path, weights, write_bag, capsys):
    frames = [bgr_frame(10 + i) for i in range(3)]
    bag = write_bag(tmp_path / "drive", frames, encodings=["bgr8", "bgr8", "bogus"],
                    other_image_topic="/rear/image_raw")
    rc = main([str(bag), "--weights", str(weights), "-o", str(tmp_path / "o"), "--device", "cpu",
               "--no-progress"])
    assert rc == 2 and "several image topics" in capsys.readouterr().err
    rc = main([str(bag), "--topic", "/cam/image_raw", "--weights", str(weights), "-o", str(tmp_path / "o"),
               "--device", "cpu", "--no-progress"])
    assert rc == 1                       # frame 2's encoding is unknown: reported, frames 0 and 1 kept
    err = capsys.readouterr().err
    assert "frame 2" in err and "bogus" in err
    masks = sorted((tmp_path / "o" / "drive_masks").iterdir())
    assert [p.name for p in masks] == ["drive_000000_mask.png", "drive_000001_mask.png"]
    seg = Segmenter(weights, device="cpu", keep_aspect=True, backend="auto", precision="auto")
    np.testing.assert_array_equal(cv2.imread(str(masks[1]), cv2.IMREAD_UNCHANGED),
                                  seg.predict(frames[1], color_order="bgr").mask)
    assert (tmp_path / "o" / "drive_overlay.mp4").is_file()
    assert main([str(tmp_path), "--topic", "/x", "--weights", str(weights)]) == 2
    assert "is for recordings" in capsys.readouterr().err
