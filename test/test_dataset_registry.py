"""roadseg_ros.dataset_registry: one entry per dataset, read by every tool; specs and their recorded form."""

from __future__ import annotations

import subprocess
import sys

import pytest

from roadseg_ros.dataset_registry import (
    DATASET_NAMES,
    DATASETS,
    FOLDER_DATASETS,
    UNKNOWN_LICENSE,
    Categories,
    DatasetSpec,
    dataset_licenses,
    description_name,
)


def test_the_registry_lists_every_dataset_once_with_its_facts():
    assert DATASET_NAMES == ("camvid", "kitti", "carla", "cityscapes", "cityscapes_pix2pix", "idd_lite",
                             "synthetic")
    assert DATASET_NAMES[:-1] == FOLDER_DATASETS
    assert {n: i.default_split for n, i in DATASETS.items()} == {
        "camvid": "val", "kitti": "training", "carla": "val", "cityscapes": "val",
        "cityscapes_pix2pix": "val", "idd_lite": "val", "synthetic": "val"}
    assert [n for n, i in DATASETS.items() if i.squeezed] == ["cityscapes_pix2pix"]
    assert [n for n, i in DATASETS.items() if i.binary_by_default] == ["kitti", "idd_lite"]
    assert [n for n, i in DATASETS.items() if i.categories is not None] == ["kitti"]
    assert "CC BY-NC-SA 3.0" in DATASETS["kitti"].license
    assert all(info.name == name and info.license for name, info in DATASETS.items())
    with pytest.raises(TypeError):
        DATASETS["ade20k"] = DATASETS["camvid"]          # read-only: one home, not a place to patch


def test_the_registry_needs_no_torch():
    code = "import sys, roadseg_ros.dataset_registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-1000:]


def test_kitti_categories_come_from_the_sample_names_in_benchmark_order():
    rule = DATASETS["kitti"].categories
    assert [rule.of(n) for n in ("um_000000", "umm_000012", "uu_000093")] == ["um", "umm", "uu"]
    assert rule.order({"uu", "zz", "um", "aa", "umm"}) == ["um", "umm", "uu", "aa", "zz"]
    assert Categories(("b", "a")).order({"a", "b", "c"}) == ["b", "a", "c"]


def test_a_spec_describes_itself_as_checkpoints_record_it():
    assert DatasetSpec("camvid", "/data/camvid", "train").describe() == "camvid:/data/camvid:train"
    scenes = {"num_scenes": 40, "size": (64, 48), "seed": 3}
    assert DatasetSpec("synthetic", None, "train", options=scenes).describe() == "synthetic:40:seed3"
    assert DatasetSpec("synthetic", None, "val", options=scenes).describe() == "synthetic-val:40:seed3"
    for text in ("camvid:/data/camvid:train", "synthetic:40:seed3", "synthetic-val:40:seed3"):
        assert description_name(text) in DATASET_NAMES


def test_a_spec_refuses_what_its_reader_would_refuse():
    with pytest.raises(ValueError, match="unknown dataset 'mapillary'; valid names: camvid, kitti"):
        DatasetSpec("mapillary", "/data", "train")
    with pytest.raises(ValueError, match="takes no option.*carla_labels.*valid: val_fraction, seed"):
        DatasetSpec("kitti", "/data", "train", options={"carla_labels": "palette"})
    options = {"carla_labels": "palette"}
    spec = DatasetSpec("carla", "/data", "all", options=options)
    options["carla_labels"] = "pre_0914"
    assert spec.options == {"carla_labels": "palette"}       # the spec keeps its own copy


def test_licences_of_specs_and_of_recorded_descriptions():
    specs = [DatasetSpec("kitti", "/k", "train"), DatasetSpec("synthetic", None, "val",
                                                                options={"num_scenes": 2, "seed": 0})]
    expected = {"kitti": DATASETS["kitti"].license, "synthetic": DATASETS["synthetic"].license}
    assert dataset_licenses(specs) == expected
    assert dataset_licenses(["kitti:/k:train", "synthetic-val:2:seed0", "kitti:/k:val"]) == expected
    assert dataset_licenses(["mapillary:/m:train"]) == {"mapillary": UNKNOWN_LICENSE}
