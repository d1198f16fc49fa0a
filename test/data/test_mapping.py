"""Class-mapping configs: the bundled YAML files validate, and bad configs fail naming the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from roadseg_ros.classes import IGNORE_INDEX, get_taxonomy
from roadseg_ros.data import LabelMapping, MappingError, list_mapping_configs, load_mapping
from roadseg_ros.data.mapping import config_dir, default_mapping_path, mapping_from_dict, resolve_mapping

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "datasets"
BUNDLED = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def test_bundled_configs_are_found() -> None:
    assert config_dir() == CONFIG_DIR
    assert list_mapping_configs() == BUNDLED
    # One config per dataset reader default (<dataset>_to_<taxonomy>).
    for stem in (
        "camvid_to_camvid11",
        "camvid_to_road_binary",
        "kitti_to_road_binary",
        "carla_pre_0914_to_camvid11",
        "carla_post_0914_to_road_binary",
        "carla_palette_to_camvid11",
        "cityscapes_to_camvid11",
        "cityscapes_to_road_binary",
        "synthetic_to_road_binary",
    ):
        assert stem in BUNDLED


@pytest.mark.parametrize("stem", BUNDLED)
def test_each_bundled_config_loads_and_validates(stem: str) -> None:
    path = CONFIG_DIR / f"{stem}.yaml"
    cfg = yaml.safe_load(path.read_text())
    m = load_mapping(path)
    assert m.taxonomy.name == stem.rsplit("_to_", 1)[1] == cfg["taxonomy"]
    reader = stem.rsplit("_to_", 1)[0]   # e.g. cityscapes_pix2pix, or carla_palette (reader + encoding)
    assert reader == cfg["dataset"] or reader.startswith(cfg["dataset"] + "_")
    # Every listed class maps to its own id, ignore entries to 255.
    for name, labels in cfg["classes"].items():
        target = m.taxonomy.index(name)
        for value in labels:
            raw = (
                np.array(value, np.uint8).reshape(1, 1, 3)
                if m.input == "colors"
                else np.array([[value]], np.uint8)
            )
            assert m.apply(raw)[0, 0] == target, (stem, name, value)
    for value in cfg.get("ignore") or []:
        raw = (
            np.array(value, np.uint8).reshape(1, 1, 3)
            if m.input == "colors"
            else np.array([[value]], np.uint8)
        )
        assert m.apply(raw)[0, 0] == IGNORE_INDEX
    # The road class is reachable in every config: the node's drivable area depends on it.
    assert cfg["classes"]["road"], stem


def test_camvid_config_is_identity_with_ignore() -> None:
    m = load_mapping(default_mapping_path("camvid_to_camvid11"))
    raw = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = m.apply(raw)
    np.testing.assert_array_equal(out.ravel()[:11], np.arange(11))
    assert (out.ravel()[11:] == IGNORE_INDEX).all()


def test_requested_taxonomy_must_match() -> None:
    path = default_mapping_path("camvid_to_camvid11")
    with pytest.raises(MappingError, match="maps onto taxonomy 'camvid11' but 'road_binary' was requested"):
        load_mapping(path, taxonomy="road_binary")
    ready = load_mapping(path)
    assert resolve_mapping(ready, "unused", "camvid11") is ready
    with pytest.raises(MappingError, match="but 'road_binary' was requested"):
        resolve_mapping(ready, "unused", "road_binary")


def test_missing_bundled_config_lists_available() -> None:
    with pytest.raises(
        MappingError, match=r"no bundled mapping config 'kitti_to_camvid11.yaml'.*camvid_to_camvid11"
    ):
        default_mapping_path("kitti_to_camvid11")
    with pytest.raises(MappingError, match="mapping config not found"):
        load_mapping("/nonexistent/map.yaml")


GOOD = {
    "taxonomy": "road_binary",
    "input": "ids",
    "unmapped": "background",
    "classes": {"road": [7, 6]},
    "ignore": [0],
}


def bad(**changes) -> dict:
    cfg = {**GOOD, **changes}
    return {k: v for k, v in cfg.items() if v is not None}


def test_dict_config_maps_ids() -> None:
    m = mapping_from_dict(GOOD)
    assert isinstance(m, LabelMapping)
    np.testing.assert_array_equal(m.apply(np.array([[7, 6, 0, 3, 200]], np.uint8)), [[1, 1, 255, 0, 0]])
    # Wider integer ids are accepted when within 0..255, rejected outside.
    np.testing.assert_array_equal(m.apply(np.array([[7, 0]], np.int32)), [[1, 255]])
    with pytest.raises(ValueError, match="outside 0..255"):
        m.apply(np.array([[7, 300]], np.int32))
    with pytest.raises(ValueError, match="expected an HxW id image"):
        m.apply(np.zeros((2, 2, 3), np.uint8))


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            bad(classes={"roadway": [7]}),
            r"unknown class 'roadway' for taxonomy 'road_binary'; valid: ignore, background, road",
        ),
        (bad(unmapped="grass"), r"unmapped: unknown class 'grass'"),
        (bad(taxonomy="mapillary66"), r"unknown taxonomy 'mapillary66'; valid names: camvid11, road_binary"),
        (bad(classes={"road": [7, 256]}), r"raw label id 256 is not an integer in 0..255"),
        (bad(classes={"road": [-1]}), r"raw label id -1 is not an integer in 0..255"),
        (bad(classes={"road": [7.5]}), r"raw label id 7.5 is not an integer"),
        (bad(classes={"road": [7], "background": [7]}), r"raw label 7 is mapped twice"),
        (bad(ignore=[7]), r"raw label 7 is mapped twice"),
        (bad(input="rgb"), r"input 'rgb' is not one of ids, colors"),
        (bad(classes={}), r"'classes' must be a non-empty mapping"),
        (bad(classes={"road": 7}), r"'road': expected a list of raw labels"),
        (bad(taxonomy=None), r"missing required key 'taxonomy'"),
        (bad(colour="x"), r"unknown keys \['colour'\]"),
        (
            bad(input="colors", classes={"road": [[128, 64]]}, ignore=None),
            r"colour \[128, 64\] is not \[R, G, B\]",
        ),
        (bad(input="colors", classes={"road": [[128, 64, 300]]}, ignore=None), r"colour \[128, 64, 300\]"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, cfg: dict, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(MappingError, match=message) as info:
        load_mapping(path)
    assert str(path) in str(info.value), "the error names the file"


def test_invalid_yaml_and_top_level(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("classes: [road: 1\n")
    with pytest.raises(MappingError, match="invalid YAML"):
        load_mapping(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(MappingError, match="expected a mapping at the top level, got list"):
        load_mapping(path)


def test_colour_mapping_packs_rgb_exactly() -> None:
    m = mapping_from_dict(
        {
            "taxonomy": "camvid11",
            "input": "colors",
            "unmapped": "ignore",
            "classes": {"road": [[128, 64, 128]], "car": [[0, 0, 142]], "sky": [[255, 255, 255]]},
        }
    )
    raw = np.array([[[128, 64, 128], [0, 0, 142], [128, 128, 64], [255, 255, 255], [0, 0, 0]]], np.uint8)
    car = get_taxonomy("camvid11").index("car")
    np.testing.assert_array_equal(m.apply(raw), [[3, car, 255, 0, 255]])
    with pytest.raises(ValueError, match="expected an HxWx3 RGB colour label image"):
        m.apply(np.zeros((2, 2), np.uint8))


def test_color_tolerance_takes_the_nearest_listed_colour() -> None:
    cfg = {"taxonomy": "camvid11", "input": "colors", "color_tolerance": 40,
           "classes": {"road": [[128, 64, 128]], "sky": [[70, 130, 180]]}, "ignore": [[0, 0, 0]]}
    m = mapping_from_dict(cfg)
    raw = np.array([[[128, 64, 128], [140, 70, 120], [99, 97, 154], [70, 130, 180], [10, 5, 0],
                     [200, 200, 200], [128, 64, 168]]], np.uint8)
    # exact road, near road, halfway road/sky (distance 45 from both: too far), sky, near void,
    # far from everything, exactly 40 from road (within)
    assert m.apply(raw).tolist() == [[3, 3, 255, 0, 255, 255, 3]]
    exact = mapping_from_dict({**cfg, "color_tolerance": 0})
    assert exact.apply(raw).tolist() == [[3, 255, 255, 0, 255, 255, 255]]


@pytest.mark.parametrize("value", [-1, 500, "40", True])
def test_color_tolerance_must_be_a_distance(value) -> None:
    cfg = {"taxonomy": "camvid11", "input": "colors", "color_tolerance": value,
           "classes": {"road": [[128, 64, 128]]}}
    with pytest.raises(MappingError, match="color_tolerance"):
        mapping_from_dict(cfg)
    with pytest.raises(MappingError, match="colors only"):
        mapping_from_dict({"taxonomy": "camvid11", "input": "ids", "color_tolerance": 10,
                           "classes": {"road": [3]}})


# ----------------------------------------------------------------------------- oversample section
OVER_COLOURS = {"taxonomy": "camvid11", "input": "colors", "color_tolerance": 40,
                "classes": {"road": [[128, 64, 128]], "pavement": [[244, 35, 232], [230, 150, 140]]},
                "oversample": {"labels": [[230, 150, 140]], "factor": 5, "min_pixels": 4}}


def test_oversample_counts_decoded_pixels_of_the_listed_colours() -> None:
    m = mapping_from_dict(OVER_COLOURS)
    raw = np.zeros((4, 4, 3), np.uint8)
    raw[:] = (128, 64, 128)
    assert m.oversample_weight(raw) == 1.0
    # three blended rail pixels (within tolerance) are not enough, a fourth is
    raw[0, :3] = (225, 148, 141)
    assert m.oversample_weight(raw) == 1.0
    raw[1, 0] = (230, 150, 140)
    assert m.oversample_weight(raw) == 5.0
    # sidewalk, the rail track's class, does not count: the section names raw labels
    raw[:] = (244, 35, 232)
    assert m.oversample_weight(raw) == 1.0
    # the mapping's output is untouched by the section
    assert set(np.unique(m.apply(raw))) == {get_taxonomy("camvid11").index("pavement")}


def test_oversample_ids_and_exact_colours() -> None:
    ids = mapping_from_dict({"taxonomy": "camvid11", "classes": {"road": [7], "pavement": [8, 10]},
                             "oversample": {"labels": [10], "factor": 3}})
    raw = np.full((5, 5), 7, np.uint8)
    assert ids.oversample_weight(raw) == 1.0
    raw[2, 2] = 10                              # min_pixels defaults to 1
    assert ids.oversample_weight(raw) == 3.0
    exact = mapping_from_dict({**OVER_COLOURS, "color_tolerance": 0})
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:] = (230, 150, 140)
    assert exact.oversample_weight(rgb) == 5.0
    rgb[:] = (229, 150, 140)                    # not an exact match without a tolerance
    assert exact.oversample_weight(rgb) == 1.0
    assert mapping_from_dict({k: v for k, v in OVER_COLOURS.items() if k != "oversample"}) \
        .oversample_weight(rgb) == 1.0


@pytest.mark.parametrize("section, message", [
    ({"labels": [[1, 2, 3]], "factor": 2}, r"oversample.labels \[\[1, 2, 3\]\] are not listed"),
    ({"labels": [], "factor": 2}, "non-empty list"),
    ({"labels": [[230, 150, 140]], "factor": 0.5}, "factor 0.5 is not a number >= 1"),
    ({"labels": [[230, 150, 140]], "factor": 2, "min_pixels": 0}, "min_pixels 0"),
    ({"labels": [[230, 150, 140]], "factor": 2, "every": 3}, r"unknown keys \['every'\]"),
    ([[230, 150, 140]], "expected a mapping"),
])
def test_bad_oversample_sections_name_the_problem(section, message) -> None:
    with pytest.raises(MappingError, match=message):
        mapping_from_dict({**OVER_COLOURS, "oversample": section}, source="x.yaml")
