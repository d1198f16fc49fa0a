"""Dataset readers on small fixtures written here in each dataset's own directory layout.

Each fixture's raw labels are known pixel by pixel, so every test checks the exact
taxonomy ids the reader yields (camvid11 and road_binary), not just shapes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from roadseg_ros.classes import IGNORE_INDEX
from roadseg_ros.data import (
    CamVidDataset,
    CarlaDataset,
    CityscapesDataset,
    ConcatSegmentationDataset,
    DatasetError,
    KittiRoadDataset,
    MappingError,
    build_dataset,
    build_datasets,
    seeded_split,
)
from roadseg_ros.data.mapping import default_mapping_path
from roadseg_ros.dataset_registry import DATASETS, DatasetSpec

W, H = 24, 16
SHARED_CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB (or RGBA) array as PNG; cv2 wants BGR(A)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = rgb[..., [2, 1, 0, 3]] if rgb.shape[2] == 4 else rgb[..., ::-1]
    assert cv2.imwrite(str(path), np.ascontiguousarray(bgr))


def write_gray(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), ids.astype(np.uint8))


def random_image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def stripes(values: list) -> np.ndarray:
    """Index image (H x W) whose column blocks take indices 0..len(values)-1 in turn."""
    idx = (np.arange(W) * len(values)) // W
    return np.broadcast_to(idx, (H, W)).copy()


# ----------------------------------------------------------------------------- CamVid
def make_camvid(
    root: Path, split: str, names: list[str], seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        img = random_image(rng)
        lab = rng.integers(0, 12, (H, W), dtype=np.uint8)  # 0..10 classes, 11 unlabelled
        write_rgb(root / split / f"{name}.png", img)
        write_gray(root / f"{split}annot" / f"{name}.png", lab)
        out[name] = (img, lab)
    return out


def test_camvid_camvid11_ids_and_ignore(tmp_path: Path) -> None:
    truth = make_camvid(tmp_path, "train", ["0001TP_006690", "0001TP_006720", "Seq05VD_f00000"])
    ds = build_dataset("camvid", tmp_path, "train", taxonomy="camvid11")
    assert isinstance(ds, CamVidDataset)
    assert len(ds) == 3
    assert ds.names == sorted(truth)
    assert ds.taxonomy.name == "camvid11"
    for i, name in enumerate(ds.names):
        image, label = ds[i]
        raw_img, raw_lab = truth[name]
        assert image.dtype == np.uint8 and image.shape == (H, W, 3)
        assert label.dtype == np.uint8 and label.shape == (H, W)
        np.testing.assert_array_equal(image, raw_img)  # RGB order preserved
        expected = np.where(raw_lab == 11, IGNORE_INDEX, raw_lab)
        np.testing.assert_array_equal(label, expected)
    assert set(np.unique(np.concatenate([ds[i][1].ravel() for i in range(3)]))) <= set(range(11)) | {255}


def test_camvid_road_binary(tmp_path: Path) -> None:
    truth = make_camvid(tmp_path, "val", ["a", "b"])
    ds = build_dataset("camvid", tmp_path, "val", taxonomy="road_binary")
    assert ds.taxonomy.name == "road_binary"
    for i, name in enumerate(ds.names):
        raw = truth[name][1]
        expected = np.where(raw == 11, 255, np.where(raw == 3, 1, 0))
        np.testing.assert_array_equal(ds[i][1], expected)


def test_camvid_missing_split_and_missing_label(tmp_path: Path) -> None:
    make_camvid(tmp_path, "train", ["a", "b"])
    with pytest.raises(DatasetError, match=r"split 'test'.*splits found: train"):
        CamVidDataset(tmp_path, "test")
    with pytest.raises(DatasetError, match="splits found: \\(none\\)"):
        CamVidDataset(tmp_path / "nowhere", "train")
    write_rgb(tmp_path / "train" / "c.png", random_image(np.random.default_rng(1)))
    with pytest.raises(DatasetError, match=r"c\.png: no label c\.\*"):
        CamVidDataset(tmp_path, "train")


def test_index_out_of_range_and_negative(tmp_path: Path) -> None:
    make_camvid(tmp_path, "train", ["a", "b"])
    ds = CamVidDataset(tmp_path, "train")
    np.testing.assert_array_equal(ds[-1][1], ds[1][1])
    with pytest.raises(IndexError, match="index 2 out of range for 2"):
        ds[2]


def test_label_size_mismatch_is_reported(tmp_path: Path) -> None:
    write_rgb(tmp_path / "train" / "a.png", np.zeros((H, W, 3), np.uint8))
    write_gray(tmp_path / "trainannot" / "a.png", np.zeros((H + 2, W), np.uint8))
    ds = CamVidDataset(tmp_path, "train")
    with pytest.raises(DatasetError, match="label size .* differs from image"):
        ds[0]


# ----------------------------------------------------------------------------- KITTI
KITTI_RGB = {"road": (255, 0, 255), "background": (255, 0, 0), "void": (0, 0, 0)}


def make_kitti(root: Path, names: list[str]) -> np.ndarray:
    """KITTI Road training folder; every GT has road / non-road / not-evaluated column blocks."""
    rng = np.random.default_rng(3)
    idx = stripes([0, 1, 2])
    colors = np.array([KITTI_RGB["road"], KITTI_RGB["background"], KITTI_RGB["void"]], np.uint8)
    for name in names:
        cat, _, num = name.partition("_")
        write_rgb(root / "training" / "image_2" / f"{name}.png", random_image(rng))
        write_rgb(root / "training" / "gt_image_2" / f"{cat}_road_{num}.png", colors[idx])
        # KITTI also ships lane GT for um; the reader must not pair it with the image.
        if cat == "um":
            write_rgb(root / "training" / "gt_image_2" / f"{cat}_lane_{num}.png", colors[np.zeros_like(idx)])
    return np.array([1, 0, IGNORE_INDEX], np.uint8)[idx]


KITTI_NAMES = ["um_000000", "um_000001", "umm_000000", "umm_000003", "uu_000000", "uu_000007"]


def test_kitti_colours_to_road_binary(tmp_path: Path) -> None:
    expected = make_kitti(tmp_path, KITTI_NAMES)
    for root in (tmp_path, tmp_path / "training"):  # dataset root or its training folder
        ds = build_dataset("kitti", root, "training", taxonomy="road_binary")
        assert isinstance(ds, KittiRoadDataset)
        assert ds.names == KITTI_NAMES
        assert ds.categories == ["um", "um", "umm", "umm", "uu", "uu"]
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.shape == (H, W, 3)
            np.testing.assert_array_equal(label, expected)
    assert {0, 1, 255} == set(np.unique(expected))


def test_kitti_seeded_split_is_deterministic(tmp_path: Path) -> None:
    make_kitti(tmp_path, KITTI_NAMES)
    tr = KittiRoadDataset(tmp_path, "train", val_fraction=0.34, seed=5)
    va = KittiRoadDataset(tmp_path, "val", val_fraction=0.34, seed=5)
    assert len(va) == 2 and len(tr) == 4
    assert set(tr.names).isdisjoint(va.names)
    assert sorted(tr.names + va.names) == KITTI_NAMES
    assert KittiRoadDataset(tmp_path, "val", val_fraction=0.34, seed=5).names == va.names
    vals = {tuple(KittiRoadDataset(tmp_path, "val", val_fraction=0.34, seed=s).names) for s in range(8)}
    assert len(vals) > 1, "the seed must change the split"


def test_kitti_errors(tmp_path: Path) -> None:
    make_kitti(tmp_path, ["um_000000"])
    (tmp_path / "testing" / "image_2").mkdir(parents=True)
    with pytest.raises(DatasetError, match="gt_image_2"):
        KittiRoadDataset(tmp_path, "testing")
    with pytest.raises(MappingError, match="kitti_to_camvid11"):
        KittiRoadDataset(tmp_path, "training", taxonomy="camvid11")
    write_rgb(tmp_path / "training" / "image_2" / "uu_000009.png", random_image(np.random.default_rng(0)))
    with pytest.raises(DatasetError, match="uu_000009.png: no label uu_road_000009"):
        KittiRoadDataset(tmp_path, "training")


# ----------------------------------------------------------------------------- CARLA
# Raw ids per column block and the expected camvid11 / road_binary targets.
PRE_0914 = {
    "raw": [7, 6, 8, 10, 0, 13],
    "camvid11": [3, 3, 4, 8, 255, 0],
    "road_binary": [1, 1, 0, 0, 255, 0],
}
POST_0914 = {
    "raw": [1, 24, 2, 14, 0, 11],
    "camvid11": [3, 3, 4, 8, 255, 0],
    "road_binary": [1, 1, 0, 0, 255, 0],
}


def make_lyft(folder: Path, names: list[str], raw_ids: list[int], seed: int = 0) -> None:
    """Lyft challenge layout: CameraRGB/ + CameraSeg/, id in the red channel, noise in G and B."""
    rng = np.random.default_rng(seed)
    red = np.array(raw_ids, np.uint8)[stripes(raw_ids)]
    for name in names:
        seg = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        seg[..., 0] = red
        write_rgb(folder / "CameraRGB" / f"{name}.png", random_image(rng))
        write_rgb(folder / "CameraSeg" / f"{name}.png", seg)


@pytest.mark.parametrize("version, table", [("pre_0914", PRE_0914), ("post_0914", POST_0914)])
@pytest.mark.parametrize("taxonomy", ["camvid11", "road_binary"])
def test_carla_lyft_ids_in_red_channel(tmp_path: Path, version: str, table: dict, taxonomy: str) -> None:
    make_lyft(tmp_path, ["0", "1", "2"], table["raw"])
    ds = build_dataset("carla", tmp_path, "all", taxonomy=taxonomy, carla_labels=version)
    assert isinstance(ds, CarlaDataset)
    assert ds.names == ["0", "1", "2"] and ds.taxonomy.name == taxonomy
    expected = np.array(table[taxonomy], np.uint8)[stripes(table["raw"])]
    for i in range(len(ds)):
        np.testing.assert_array_equal(ds[i][1], expected)


def test_carla_versions_differ(tmp_path: Path) -> None:
    """The same file read with the other CARLA numbering gives other labels (7 is road only before 0.9.14)."""
    make_lyft(tmp_path, ["0"], PRE_0914["raw"])
    pre = CarlaDataset(tmp_path, "all", taxonomy="road_binary", carla_labels="pre_0914")[0][1]
    post = CarlaDataset(tmp_path, "all", taxonomy="road_binary", carla_labels="post_0914")[0][1]
    assert (pre == 1).sum() > 0 and not np.array_equal(pre, post)


def test_carla_lyft_train_val_folders(tmp_path: Path) -> None:
    make_lyft(tmp_path, ["0", "1", "2", "3"], PRE_0914["raw"])
    make_lyft(tmp_path / "val", ["9"], PRE_0914["raw"], seed=1)
    assert CarlaDataset(tmp_path, "train").names == ["0", "1", "2", "3"]
    assert CarlaDataset(tmp_path, "val").names == ["9"]


def test_carla_seeded_split_without_val_folder(tmp_path: Path) -> None:
    names = [f"{i:03d}" for i in range(10)]
    make_lyft(tmp_path, names, PRE_0914["raw"])
    tr = build_dataset("carla", tmp_path, "train", val_fraction=0.3, seed=2)
    va = build_dataset("carla", tmp_path, "val", val_fraction=0.3, seed=2)
    assert len(va) == 3 and len(tr) == 7
    assert sorted(tr.names + va.names) == names
    assert build_dataset("carla", tmp_path, "val", val_fraction=0.3, seed=2).names == va.names


# Palette colours (RGB) per column block, with the expected ids.
PALETTE = {
    "raw": [
        (128, 64, 128),
        (157, 234, 50),
        (244, 35, 232),
        (0, 0, 142),
        (0, 0, 0),
        (70, 130, 180),
        (1, 2, 3),
    ],
    "camvid11": [3, 3, 4, 8, 255, 0, 255],  # unknown colour -> ignore (unmapped: ignore)
    "road_binary": [1, 1, 0, 0, 255, 0, 0],  # unknown colour -> background (unmapped: background)
}


@pytest.mark.parametrize("taxonomy", ["camvid11", "road_binary"])
@pytest.mark.parametrize("alpha", [False, True])
def test_carla_palette_rgb_and_rgba(tmp_path: Path, taxonomy: str, alpha: bool) -> None:
    """Palette form in the ROS-bridge capture layout (RGB/ + Segmentation_Images/), incl. a 4-channel PNG."""
    rng = np.random.default_rng(4)
    seg = np.array(PALETTE["raw"], np.uint8)[stripes(PALETTE["raw"])]
    if alpha:
        seg = np.dstack([seg, np.full((H, W), 255, np.uint8)])
    img = random_image(rng)
    if alpha:
        img = np.dstack([img, np.full((H, W), 255, np.uint8)])
    write_rgb(tmp_path / "RGB" / "00183310.png", img)
    write_rgb(tmp_path / "Segmentation_Images" / "00183310.png", seg)
    assert cv2.imread(str(tmp_path / "Segmentation_Images" / "00183310.png"), cv2.IMREAD_UNCHANGED).shape[
        2
    ] == (4 if alpha else 3)
    ds = build_dataset("carla", tmp_path, "all", taxonomy=taxonomy, carla_labels="palette")
    image, label = ds[0]
    assert image.shape == (H, W, 3)
    np.testing.assert_array_equal(image, img[..., :3])
    np.testing.assert_array_equal(label, np.array(PALETTE[taxonomy], np.uint8)[stripes(PALETTE["raw"])])


def test_carlascapes_files(tmp_path: Path) -> None:
    """NAME_img.png with NAME_labelIds.png (post_0914 ids) or NAME_color.png (palette)."""
    rng = np.random.default_rng(6)
    ids = np.array(POST_0914["raw"], np.uint8)[stripes(POST_0914["raw"])]
    colors = np.array(PALETTE["raw"][:4] + [(0, 0, 0)] * 2, np.uint8)
    for name in ("Town10HD_000033", "Town10HD_000063"):
        write_rgb(tmp_path / f"{name}_img.png", random_image(rng))
        write_gray(tmp_path / f"{name}_labelIds.png", ids)
        write_rgb(tmp_path / f"{name}_color.png", colors[stripes(POST_0914["raw"])])
    a = CarlaDataset(tmp_path, "all", taxonomy="road_binary", carla_labels="post_0914")
    b = CarlaDataset(tmp_path, "all", taxonomy="road_binary", carla_labels="palette")
    assert a.names == b.names == ["Town10HD_000033", "Town10HD_000063"]
    np.testing.assert_array_equal(
        a[0][1], np.array(POST_0914["road_binary"], np.uint8)[stripes(POST_0914["raw"])]
    )
    np.testing.assert_array_equal(
        b[0][1], np.array([1, 1, 0, 0, 255, 255], np.uint8)[stripes(POST_0914["raw"])]
    )


def test_carla_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="carla_labels 'v9' is not one of pre_0914, post_0914, palette"):
        CarlaDataset(tmp_path, carla_labels="v9")
    with pytest.raises(DatasetError, match="CARLA dataset folder not found"):
        CarlaDataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no CARLA capture for split 'all'.*CameraRGB/\\+CameraSeg/"):
        CarlaDataset(tmp_path)
    make_lyft(tmp_path, ["0"], PRE_0914["raw"])
    write_rgb(tmp_path / "CameraRGB" / "5.png", random_image(np.random.default_rng(0)))
    with pytest.raises(DatasetError, match=r"5\.png: no label 5\.\* in .*CameraSeg"):
        CarlaDataset(tmp_path)
    with pytest.raises(DatasetError, match="give both image_dir and label_dir"):
        CarlaDataset(tmp_path, image_dir="CameraRGB")


# ----------------------------------------------------------------------------- Cityscapes
CITY = {"raw": [7, 8, 26, 23, 0, 9], "camvid11": [3, 4, 8, 0, 255, 255], "road_binary": [1, 0, 0, 0, 255, 0]}


def make_cityscapes(root: Path, split: str, frames: list[tuple[str, str]]) -> None:
    rng = np.random.default_rng(8)
    ids = np.array(CITY["raw"], np.uint8)[stripes(CITY["raw"])]
    for city, frame in frames:
        write_rgb(root / "leftImg8bit" / split / city / f"{city}_{frame}_leftImg8bit.png", random_image(rng))
        write_gray(root / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelIds.png", ids)
        # Other gtFine files sit beside labelIds; only labelIds may be read.
        write_gray(root / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelTrainIds.png", ids * 0 + 19)


@pytest.mark.parametrize("taxonomy", ["camvid11", "road_binary"])
def test_cityscapes_label_ids(tmp_path: Path, taxonomy: str) -> None:
    make_cityscapes(tmp_path, "val", [("frankfurt", "000000_000294"), ("lindau", "000001_000019")])
    ds = build_dataset("cityscapes", tmp_path, "val", taxonomy=taxonomy)
    assert isinstance(ds, CityscapesDataset)
    assert ds.names == ["frankfurt_000000_000294", "lindau_000001_000019"]
    expected = np.array(CITY[taxonomy], np.uint8)[stripes(CITY["raw"])]
    for i in range(len(ds)):
        np.testing.assert_array_equal(ds[i][1], expected)


def test_cityscapes_errors(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, "val", [("frankfurt", "000000_000294")])
    with pytest.raises(DatasetError, match="split 'train' needs leftImg8bit/train/.*splits found: val"):
        CityscapesDataset(tmp_path, "train")
    write_rgb(
        tmp_path / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000576_leftImg8bit.png",
        random_image(np.random.default_rng(0)),
    )
    with pytest.raises(DatasetError, match="frankfurt_000000_000576_leftImg8bit.png: no label"):
        CityscapesDataset(tmp_path, "val")


def test_empty_folder_has_no_samples(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    with pytest.raises(DatasetError, match="no samples found"):
        CamVidDataset(tmp_path, "train")


# ----------------------------------------------------------------------------- factory and mixing
def test_build_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'mapillary'; valid names: camvid, kitti"):
        build_dataset("mapillary", tmp_path, "train")
    with pytest.raises(ValueError, match="unknown taxonomy 'ade20k'"):
        build_dataset("camvid", tmp_path, "train", taxonomy="ade20k")
    with pytest.raises(TypeError, match="unexpected keyword.*carla_labels"):
        build_dataset("camvid", tmp_path, "train", carla_labels="pre_0914")
    with pytest.raises(DatasetError, match="needs a root folder"):
        build_dataset("kitti", None, "train")


def test_mix_datasets_in_one_taxonomy(tmp_path: Path) -> None:
    make_camvid(tmp_path / "camvid", "train", ["a", "b"])
    make_lyft(tmp_path / "carla", ["0", "1", "2"], PRE_0914["raw"])
    camvid_spec = DatasetSpec("camvid", str(tmp_path / "camvid"), "train")
    parts = build_datasets(
        [camvid_spec,
         DatasetSpec("carla", str(tmp_path / "carla"), "all", options={"carla_labels": "pre_0914"})],
        taxonomy="road_binary",
    )
    assert [type(p) for p in parts] == [CamVidDataset, CarlaDataset]
    assert [p.taxonomy.name for p in parts] == ["road_binary", "road_binary"]
    # a small set oversampled by listing it twice
    mixed = ConcatSegmentationDataset([parts[0], parts[0], parts[1]], ["camvid", "camvid", "carla"])
    assert len(mixed) == 2 * 2 + 3
    assert mixed.names[:2] == ["camvid:a", "camvid:b"] and mixed.names[-1] == "carla:2"
    assert mixed.taxonomy.name == "road_binary"
    np.testing.assert_array_equal(
        mixed[6][1], np.array(PRE_0914["road_binary"], np.uint8)[stripes(PRE_0914["raw"])]
    )
    camvid = CamVidDataset(tmp_path / "camvid", "train", taxonomy="road_binary")
    with pytest.raises(MappingError, match="different taxonomies"):
        ConcatSegmentationDataset([camvid, CamVidDataset(tmp_path / "camvid", "train")])
    with pytest.raises(DatasetError, match="split 'val' needs folders val/ and valannot/"):
        build_datasets([camvid_spec, DatasetSpec("camvid", str(tmp_path / "camvid"), "val")])


def test_every_registry_entry_opens_with_its_own_options(tmp_path: Path) -> None:
    """build_dataset is the registry: each entry's reader exists and takes exactly the options listed."""
    for name, info in DATASETS.items():
        reader = info.load_reader()
        assert callable(reader), name
        with pytest.raises(TypeError, match=f"build_dataset\\({name!r}\\): unexpected keyword"):
            build_dataset(name, tmp_path, info.default_split, no_such_option=1)
    make_kitti(tmp_path / "kitti", KITTI_NAMES)
    kitti = build_dataset("kitti", tmp_path / "kitti", DATASETS["kitti"].default_split,
                          taxonomy="road_binary", val_fraction=0.5, seed=1)
    assert isinstance(kitti, KittiRoadDataset) and len(kitti) == len(KITTI_NAMES)
    scenes = build_datasets([DatasetSpec("synthetic", None, "val",
                                         options={"num_scenes": 3, "size": (32, 24)})])
    assert len(scenes[0]) == 3 and scenes[0][0][0].shape == (24, 32, 3)
    assert scenes[0].names[0] == "synthetic_1000000"             # the val split's seed range


# ----------------------------------------------------------------------------- seeded_split
def test_seeded_split_properties() -> None:
    names = [f"n{i:02d}" for i in range(20)]
    va = seeded_split(names, "val", 0.25, seed=11)
    tr = seeded_split(names, "train", 0.25, seed=11)
    assert len(va) == 5 and len(tr) == 15 and set(va).isdisjoint(tr) and sorted(va + tr) == names
    assert va == sorted(va), "sorted order kept within the subset"
    assert seeded_split(list(reversed(names)), "val", 0.25, seed=11) == va, "input order must not matter"
    assert seeded_split(names, "val", 0.25, seed=12) != va
    assert len(seeded_split(["a", "b"], "val", 0.01, seed=0)) == 1, "tiny sets still get a val sample"
    with pytest.raises(DatasetError, match="val_fraction must lie in"):
        seeded_split(names, "val", 1.5, seed=0)
    with pytest.raises(DatasetError, match="'train' or 'val'"):
        seeded_split(names, "test", 0.2, seed=0)


# ----------------------------------------------------------------------------- real data (optional)
@pytest.mark.skipif(not SHARED_CAMVID.is_dir(), reason=f"shared CamVid data not present at {SHARED_CAMVID}")
def test_shared_camvid_counts() -> None:
    train = CamVidDataset(SHARED_CAMVID, "train")
    val = CamVidDataset(SHARED_CAMVID, "val")
    assert (len(train), len(val)) == (367, 101)
    image, label = val[0]
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)
    assert set(np.unique(label)) <= set(range(11)) | {IGNORE_INDEX}


# ----------------------------------------------------------------------------- Cityscapes, pix2pix form
CS_ROAD, CS_SKY, CS_CAR, CS_VOID = (128, 64, 128), (70, 130, 180), (0, 0, 142), (0, 0, 0)


def make_pix2pix(folder: Path, n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` JPEG pairs: photo | colour label with sky (top), car (middle band), road (bottom), a void row.

    The label half goes through JPEG like the real files, so its colours are blended at the edges.
    Returns the exact label (camvid11 ids) the 1:1 halves were drawn from.
    """
    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size, 3), np.uint8)
    lab[: size // 2] = CS_SKY
    lab[size // 2: 3 * size // 4] = CS_CAR
    lab[3 * size // 4:] = CS_ROAD
    lab[-2:] = CS_VOID
    ids = np.full((size, size), 3, np.uint8)
    ids[: size // 2], ids[size // 2: 3 * size // 4], ids[-2:] = 0, 8, IGNORE_INDEX
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        pair = np.concatenate([photo, lab], axis=1)
        path = str(folder / f"{i + 1}.jpg")
        assert cv2.imwrite(path, pair[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return ids


def test_pix2pix_decodes_jpeg_colours_and_restores_the_aspect(tmp_path: Path) -> None:
    ids = make_pix2pix(tmp_path / "cs" / "train", 5)
    ds = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "all", restore_size=(64, 32))
    image, label = ds[0]
    assert image.shape == (32, 64, 3) and label.shape == (32, 64)
    expect = cv2.resize(ids, (64, 32), interpolation=cv2.INTER_NEAREST_EXACT)
    # away from the colour edges and the photo/label seam (JPEG blends within a few pixels)
    # every class is exact
    for rows in (slice(2, 12), slice(18, 21), slice(26, 28)):
        assert np.array_equal(label[rows, 4:-4], expect[rows, 4:-4])
    # blended edge pixels are either a neighbour's class or unlabelled, never an invented one
    assert set(np.unique(label[:, 4:-4])) <= {0, 3, 8, IGNORE_INDEX}
    binary = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "all", taxonomy="road_binary",
                           restore_size=None)
    _, lab2 = binary[0]
    assert lab2.shape == (32, 32) and lab2[27, 5] == 1 and lab2[3, 5] == 0 and lab2[-1, 5] == IGNORE_INDEX


def test_pix2pix_splits(tmp_path: Path) -> None:
    make_pix2pix(tmp_path / "cs" / "train", 20)
    train = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "train", val_fraction=0.25, seed=1)
    val = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "val", val_fraction=0.25, seed=1)
    assert len(train) == 15 and len(val) == 5 and not set(train.names) & set(val.names)
    again = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "val", val_fraction=0.25, seed=1)
    assert again.names == val.names
    # with a real val folder, train and val are the folders themselves
    make_pix2pix(tmp_path / "cs" / "val", 3, seed=1)
    assert len(build_dataset("cityscapes_pix2pix", tmp_path / "cs", "train")) == 20
    assert len(build_dataset("cityscapes_pix2pix", tmp_path / "cs", "val")) == 3
    with pytest.raises(DatasetError, match="no Cityscapes pix2pix split 'test'"):
        build_dataset("cityscapes_pix2pix", tmp_path / "cs", "test")
    with pytest.raises(DatasetError, match="not found"):
        build_dataset("cityscapes_pix2pix", tmp_path / "missing", "train")


def test_pix2pix_sample_weights_follow_the_mapping_oversample_section(tmp_path: Path) -> None:
    make_pix2pix(tmp_path / "cs" / "train", 3)
    rail = cv2.imread(str(tmp_path / "cs" / "train" / "2.jpg"))
    rail[26:32, 32 + 4:32 + 28] = (140, 150, 230)              # BGR of rail track (230, 150, 140)
    assert cv2.imwrite(str(tmp_path / "cs" / "train" / "2.jpg"), rail, [cv2.IMWRITE_JPEG_QUALITY, 90])
    # the bundled mapping has no oversample section: every sample is drawn alike
    assert build_dataset("cityscapes_pix2pix", tmp_path / "cs", "all").sample_weights() is None
    cfg = yaml.safe_load(default_mapping_path("cityscapes_pix2pix_to_camvid11").read_text())
    cfg["oversample"] = {"labels": [[230, 150, 140]], "factor": 6, "min_pixels": 100}   # 6x24 in the fixture
    ds = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "all", mapping=cfg)
    weights = dict(zip(ds.names, ds.sample_weights()))
    assert weights == {"1": 1.0, "2": cfg["oversample"]["factor"], "3": 1.0}
    cfg["oversample"]["min_pixels"] = 200
    fewer = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "all", mapping=cfg)
    assert set(fewer.sample_weights()) == {1.0}


def test_pix2pix_odd_width_is_reported(tmp_path: Path) -> None:
    (tmp_path / "cs").mkdir()
    assert cv2.imwrite(str(tmp_path / "cs" / "1.jpg"), np.zeros((8, 15, 3), np.uint8))
    ds = build_dataset("cityscapes_pix2pix", tmp_path / "cs", "all")
    with pytest.raises(DatasetError, match="1.jpg.*side by side"):
        ds[0]


# ----------------------------------------------------------------------------- IDD-Lite
def make_idd(root: Path, split: str, seqs: dict[str, list[str]], seed: int = 0) -> np.ndarray:
    """IDD-Lite layout; every label has columns of level-1 ids 0..6 and 255."""
    rng = np.random.default_rng(seed)
    raw = np.array([0, 1, 2, 3, 4, 5, 6, 255], np.uint8)[stripes(list(range(8)))]
    for seq, idents in seqs.items():
        for ident in idents:
            img = root / "leftImg8bit" / split / seq / f"{ident}_image.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(img), random_image(rng))
            write_gray(root / "gtFine" / split / seq / f"{ident}_label.png", raw)
    return raw


@pytest.mark.parametrize("taxonomy, table", [
    ("camvid11", {0: 3, 1: 4, 2: IGNORE_INDEX, 3: 8, 4: IGNORE_INDEX, 5: IGNORE_INDEX, 6: 0,
                  255: IGNORE_INDEX}),
    ("road_binary", {0: 1, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 255: IGNORE_INDEX}),
])
def test_idd_lite_level1_ids(tmp_path: Path, taxonomy: str, table: dict) -> None:
    raw = make_idd(tmp_path / "idd", "train", {"0": ["000001", "000002"], "7": ["000003"]})
    ds = build_dataset("idd_lite", tmp_path / "idd", "all", taxonomy=taxonomy)
    assert ds.names == ["0/000001", "0/000002", "7/000003"]
    image, label = ds[2]
    assert image.shape == (H, W, 3)
    assert np.array_equal(label, np.vectorize(table.get)(raw).astype(np.uint8))


def test_idd_lite_splits_and_errors(tmp_path: Path) -> None:
    make_idd(tmp_path / "idd", "train", {"0": [f"{i:06d}" for i in range(10)]})
    train = build_dataset("idd_lite", tmp_path / "idd", "train", val_fraction=0.3)
    val = build_dataset("idd_lite", tmp_path / "idd", "val", val_fraction=0.3)
    assert (len(train), len(val)) == (7, 3) and not set(train.names) & set(val.names)
    make_idd(tmp_path / "idd", "val", {"1": ["000100"]})
    assert len(build_dataset("idd_lite", tmp_path / "idd", "val")) == 1
    assert len(build_dataset("idd_lite", tmp_path / "idd", "train")) == 10
    with pytest.raises(DatasetError, match="splits found: train, val"):
        build_dataset("idd_lite", tmp_path / "idd", "test")
    (tmp_path / "idd" / "gtFine" / "train" / "0" / "000004_label.png").unlink()
    with pytest.raises(DatasetError, match="000004_image.jpg: no label"):
        build_dataset("idd_lite", tmp_path / "idd", "all")


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "idd_lite").is_dir() or not (SHARED / "cityscapes_pix2pix").is_dir(),
                    reason="../shared/data/idd_lite or cityscapes_pix2pix absent")
def test_shared_new_datasets_counts() -> None:
    assert len(build_dataset("idd_lite", SHARED / "idd_lite", "all")) == 1403
    cs_train = build_dataset("cityscapes_pix2pix", SHARED / "cityscapes_pix2pix", "train")
    cs_val = build_dataset("cityscapes_pix2pix", SHARED / "cityscapes_pix2pix", "val")
    assert len(cs_train) + len(cs_val) == 1488 and len(cs_val) == 223
