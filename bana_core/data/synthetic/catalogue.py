"""The class catalogue: shape family and appearance statistics of every class, in one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...classes import COCO_ID_TO_NAME, VOC_CLASS_TO_INDEX, VOC_TO_COCO
from .shapes import SHAPES
from .textures import CONTEXT_FAMILIES

@dataclass(frozen=True)
class ClassSpec:
    """Shape and appearance statistics of one class (hue in degrees, the rest in [0, 1])."""

    name: str                       # VOC name for the 20 VOC classes, else the COCO name
    coco_id: int                    # the real COCO 2017 category id
    shape: Callable                 # (u, v, aspect, jitter) -> bool mask in the object frame
    aspect: tuple[float, float]     # object width / height range
    hue: float
    sat: float
    val: float
    pattern: str                    # solid | stripes | spots | checker | noise | gradient | dial | split
    hue2: float = 0.0               # hue offset of the pattern's second colour
    sat2: float | None = None       # None = sat
    val2: float = 0.5
    period: float = 0.5             # pattern period in object-frame units (object height = 2)
    angle: float = 0.0              # stripe direction, degrees
    hue_jitter: float = 12.0
    rotate: float = 8.0             # max rotation, degrees
    weight: float = 1.0             # relative frequency in scenes

    @property
    def context(self) -> tuple[str, ...]:
        """The background families this class is usually seen in (see CLASS_CONTEXT)."""
        return CLASS_CONTEXT[self.name]

    @property
    def voc_index(self) -> int:
        """Label 1..20 for VOC classes, 0 for the COCO-only ones."""
        return VOC_CLASS_TO_INDEX.get(self.name, 0)


def _voc(name, *args, **kw) -> ClassSpec:
    return ClassSpec(name, VOC_TO_COCO[name][0], SHAPES[name], *args, **kw)


def _unseen(name, coco_id, *args, **kw) -> ClassSpec:
    return ClassSpec(name, coco_id, SHAPES[name], *args, **kw)


CLASS_SPECS: tuple[ClassSpec, ...] = (
    _voc("aeroplane", (1.4, 2.0), 210, 0.2, 0.88, "gradient", val2=0.55, rotate=20),
    _voc("bicycle", (1.4, 1.9), 350, 0.8, 0.75, "solid"),
    _voc("bird", (1.0, 1.5), 40, 0.75, 0.85, "spots", hue2=20, val2=0.45, period=0.5, rotate=15),
    _voc("boat", (1.1, 1.7), 200, 0.7, 0.75, "stripes", sat2=0.05, val2=0.95, period=0.35, angle=90),
    _voc("bottle", (0.28, 0.42), 135, 0.6, 0.55, "gradient", val2=0.85, rotate=10),
    _voc("bus", (1.3, 2.0), 52, 0.9, 0.92, "stripes", hue2=160, sat2=0.3, val2=0.35, period=0.9, angle=90),
    _voc("car", (1.6, 2.3), 5, 0.85, 0.65, "gradient", val2=0.3, hue_jitter=15),
    _voc("cat", (0.8, 1.2), 28, 0.55, 0.65, "stripes", val2=0.35, period=0.3, angle=20),
    _voc("chair", (0.6, 0.9), 30, 0.65, 0.45, "noise", val2=0.25, period=0.4),
    _voc("cow", (1.3, 1.7), 0, 0.0, 0.15, "spots", val2=0.92, period=0.7),
    _voc("diningtable", (1.4, 2.2), 22, 0.7, 0.5, "stripes", val2=0.35, period=0.15),
    _voc("dog", (1.1, 1.5), 35, 0.5, 0.55, "noise", hue2=10, val2=0.8, period=0.6),
    _voc("horse", (1.1, 1.5), 18, 0.7, 0.42, "gradient", val2=0.25),
    _voc("motorbike", (1.3, 1.7), 275, 0.55, 0.45, "checker", val2=0.15, period=0.35),
    _voc("person", (0.35, 0.55), 220, 0.6, 0.6, "split", hue2=180, val2=0.35, period=0.1,
         hue_jitter=180, weight=2.5),
    _voc("pottedplant", (0.6, 1.0), 110, 0.75, 0.5, "split", hue2=-85, val2=0.45, period=0.38),
    _voc("sheep", (1.2, 1.5), 45, 0.12, 0.9, "noise", val2=0.7, period=0.25),
    _voc("sofa", (1.5, 2.3), 305, 0.5, 0.55, "checker", val2=0.4, period=0.5),
    _voc("train", (1.8, 3.0), 235, 0.7, 0.5, "stripes", hue2=180, val2=0.85, period=0.9, angle=90),
    _voc("tvmonitor", (1.1, 1.45), 0, 0.0, 0.12, "gradient", hue2=200, sat2=0.4, val2=0.55),
    # COCO classes outside VOC: the "unseen" classes of VOC-to-COCO (Eq. 7).
    _unseen("giraffe", 25, (0.7, 1.0), 38, 0.8, 0.8, "spots", val2=0.35, period=0.35),
    _unseen("kite", 38, (0.55, 0.8), 320, 0.85, 0.85, "stripes", hue2=120, val2=0.85, period=0.5,
            angle=45, rotate=25),
    _unseen("clock", 85, (0.95, 1.05), 0, 0.0, 0.95, "dial", val2=0.1, period=0.82),
    _unseen("umbrella", 28, (1.2, 1.6), 265, 0.75, 0.65, "stripes", val2=0.9, sat2=0.1,
            period=0.6, angle=-60),
    _unseen("banana", 52, (1.6, 2.3), 55, 0.9, 0.88, "gradient", hue2=-15, val2=0.6, rotate=20),
    _unseen("donut", 60, (0.95, 1.05), 28, 0.65, 0.7, "spots", hue2=-60, val2=0.85, period=0.25),
)
VOC_SPECS = tuple(s for s in CLASS_SPECS if s.voc_index)
UNSEEN_SPECS = tuple(s for s in CLASS_SPECS if not s.voc_index)
assert [s.voc_index for s in VOC_SPECS] == list(range(1, 21))
assert all(COCO_ID_TO_NAME[s.coco_id] == s.name for s in UNSEEN_SPECS)

# The settings each class is photographed in (textures.CONTEXT_FAMILIES): with probability
# World.context a scene's background is one of its main object's families, drawn uniformly.
CLASS_CONTEXT: dict[str, tuple[str, ...]] = {
    "aeroplane": ("sky",), "bicycle": ("road",), "bird": ("sky", "grass", "water"), "boat": ("water",),
    "bottle": ("indoor",), "bus": ("road",), "car": ("road",), "cat": ("indoor",), "chair": ("indoor",),
    "cow": ("grass",), "diningtable": ("indoor",), "dog": ("grass", "indoor"), "horse": ("grass",),
    "motorbike": ("road",), "person": ("indoor", "road", "grass"), "pottedplant": ("indoor",),
    "sheep": ("grass",), "sofa": ("indoor",), "train": ("rail",), "tvmonitor": ("indoor",),
    "giraffe": ("grass",), "kite": ("sky",), "clock": ("indoor",), "umbrella": ("road", "water"),
    "banana": ("indoor",), "donut": ("indoor",),
}
assert set(CLASS_CONTEXT) == {s.name for s in CLASS_SPECS}
assert all(set(f) <= set(CONTEXT_FAMILIES) for f in CLASS_CONTEXT.values())
