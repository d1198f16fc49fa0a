"""Class taxonomies: names, display colours and which classes count as drivable.

A checkpoint records its own taxonomy, so the node and tools never need this module to
interpret a trained model; it exists so that training, dataset label mappings and the
synthetic scene generator agree on one set of class ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Label value ignored by losses and metrics (unlabelled / not evaluated pixels).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class Taxonomy:
    """A set of classes with their display colours (RGB) and the drivable subset."""

    name: str
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[int, int, int], ...]
    drivable_classes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.class_colors):
            raise ValueError(f"taxonomy {self.name!r}: {len(self.class_names)} names but "
                             f"{len(self.class_colors)} colours")
        bad = [c for c in self.drivable_classes if not 0 <= c < len(self.class_names)]
        if bad:
            raise ValueError(f"taxonomy {self.name!r}: drivable class ids {bad} out of range")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def index(self, class_name: str) -> int:
        """Class id of ``class_name``; the error lists the valid names."""
        try:
            return self.class_names.index(class_name)
        except ValueError:
            raise ValueError(f"taxonomy {self.name!r} has no class {class_name!r}; "
                             f"classes: {', '.join(self.class_names)}") from None


#: CamVid's 11 classes (SegNet layout ids 0..10; 11 = unlabelled maps to IGNORE_INDEX).
#: The project's default taxonomy: the bundled model is trained on it.
CAMVID11 = Taxonomy(
    name="camvid11",
    class_names=("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol",
                 "fence", "car", "pedestrian", "bicyclist"),
    class_colors=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                  (0, 128, 192)),
    drivable_classes=(3,),
)

#: Two classes, as in KITTI Road: everything else vs road.
ROAD_BINARY = Taxonomy(
    name="road_binary",
    class_names=("background", "road"),
    class_colors=((0, 0, 0), (255, 0, 255)),
    drivable_classes=(1,),
)

TAXONOMIES: dict[str, Taxonomy] = {t.name: t for t in (CAMVID11, ROAD_BINARY)}


def get_taxonomy(name: str) -> Taxonomy:
    """Look a taxonomy up by name; an unknown name fails with the list of valid ones."""
    try:
        return TAXONOMIES[name]
    except KeyError:
        raise ValueError(f"unknown taxonomy {name!r}; valid names: {', '.join(sorted(TAXONOMIES))}") from None


def parse_class_list(text: str, names: Sequence[str], default: Sequence[int]) -> list[int]:
    """Class ids from a comma-separated list of ids or names (``"road, 7"``), sorted, unique.

    Empty text means ``default`` (e.g. the checkpoint's drivable classes). A name the model
    does not have, or an id beyond its classes, raises ValueError naming the valid ones:
    a typo here would otherwise silently make nothing drivable.
    """
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        return list(default)
    ids = []
    for item in items:
        if item.isdigit():
            cid = int(item)
            if cid >= len(names):
                raise ValueError(f"class id {cid} is out of range (the model has {len(names)} classes: "
                                 f"0..{len(names) - 1})")
        elif item in names:
            cid = list(names).index(item)
        else:
            raise ValueError(f"no class {item!r}; the model's classes: {', '.join(names)}")
        ids.append(cid)
    return sorted(set(ids))


def taxonomy_of(class_names: Sequence[str]) -> Taxonomy | None:
    """The known taxonomy whose class names equal ``class_names`` (a checkpoint's), if any."""
    for tax in TAXONOMIES.values():
        if tuple(tax.class_names) == tuple(class_names):
            return tax
    return None
