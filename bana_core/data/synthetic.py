"""The embedded synthetic benchmark: a fair miniature of PASCAL VOC 2012 + SBD + COCO.

Written in exactly the public layouts, so every reader and conversion runs on it unchanged::

    <root>/VOCdevkit/VOC2012/{JPEGImages,Annotations,SegmentationClass,SegmentationObject}/
    <root>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval,test}.txt
    <root>/benchmark_RELEASE/dataset/{img,cls,inst}/ + {train,val}.txt
    <root>/coco/train2017/<12 digits>.jpg + coco/annotations/instances_train2017.json
    <root>/synthetic_summary.json

Each class (the 20 VOC ones and a few COCO classes outside VOC, the "unseen" classes of the
VOC-to-COCO experiment) has its own shape family and colour/pattern statistics in one table,
``CLASS_SPECS``. Objects are drawn over textured backgrounds (which also fill the part of each
box the object leaves free), later objects occlude earlier ones, and every box is tight around
its object's visible mask. Relations between the formats (asserted by tests/test_synthetic.py):

* VOC ``SegmentationClass`` = the class map with 255 (void) on a 1-pixel background ring
  around the objects, as VOC has thin void borders; ``SegmentationObject`` = instance ids in
  XML order, with the same void ring. The void ring never covers object pixels, so each XML
  box is tight around its instance's pixels in ``SegmentationObject``.
* SBD ``GTcls.Segmentation`` = the same class map without void (SBD has none): it equals VOC
  ``SegmentationClass`` wherever that is not 255, and is 0 (background) under the void ring.
  ``GTinst.Segmentation`` likewise equals ``SegmentationObject`` with void mapped to 0.
* Unlike real VOC, the test split has ground truth (PNG and XML).

Everything is a function of the seed: each image draws from its own numpy Generator seeded by
(seed, image index), so worker count and order cannot change a byte; JPEG quality is fixed and
the .mat header carries no timestamp.
"""

from __future__ import annotations

import colorsys
import io
import json
import math
import multiprocessing
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial, reduce
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image
from scipy import ndimage

from ..classes import VOC_CLASS_TO_INDEX, VOC_TO_COCO
from ..io import atomic_dir, save_label_png, write_json

JPEG_QUALITY = 90
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: bana_core.data.synthetic"

# ---------------------------------------------------------------------------------------------
# Shape primitives. Every shape lives in an object frame: v in [-1, 1] top to bottom, u in
# [-a, a] left to right (a = object width / height), so circles stay circles at any aspect.
# ---------------------------------------------------------------------------------------------


def _ell(u, v, cx, cy, rx, ry):
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1.0


def _cap(u, v, x0, y0, x1, y1, w):
    """Capsule: points within w of the segment (x0, y0)-(x1, y1): legs, masts, handles."""
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return (u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2 <= w * w


def _box(u, v, x0, y0, x1, y1, r=0.0):
    """Rectangle with corner radius r."""
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    r = min(r, hx, hy)
    ax, ay = np.abs(u - cx), np.abs(v - cy)
    qx, qy = np.maximum(ax - (hx - r), 0.0), np.maximum(ay - (hy - r), 0.0)
    return (qx * qx + qy * qy <= r * r) & (ax <= hx) & (ay <= hy)


def _poly(u, v, pts):
    """Convex polygon (either orientation)."""
    pts = np.asarray(pts, dtype=np.float64)
    d = pts[np.r_[1:len(pts), 0]] - pts
    cross = d[:, 0, None, None] * (v - pts[:, 1, None, None]) - d[:, 1, None, None] * (u - pts[:, 0, None, None])
    return np.all(cross >= 0, axis=0) | np.all(cross <= 0, axis=0)


def _polar(u, v, cx, cy, sx, sy, radius: Callable[[np.ndarray], np.ndarray]):
    """Star-shaped region r <= radius(theta) around (cx, cy), scaled by (sx, sy): blobs, foliage."""
    x, y = (u - cx) / sx, (v - cy) / sy
    return np.hypot(x, y) <= radius(np.arctan2(y, x))


def _union(*masks):
    return reduce(np.logical_or, masks)


# ---------------------------------------------------------------------------------------------
# Shape families, one per class. j(s) draws a uniform jitter in [-s, s] from the image's RNG.
# ---------------------------------------------------------------------------------------------


def _legs(u, v, a, xs, top, bottom, w, j):
    return _union(*[_cap(u, v, x * a, top, x * a + j(0.06) * a, bottom, w) for x in xs])


def _aeroplane(u, v, a, j):
    s = j(0.08)
    return _union(
        _cap(u, v, -0.9 * a, 0.1, 0.8 * a, 0.1, 0.16),
        _ell(u, v, 0.82 * a, 0.12, 0.16 * a, 0.13),
        _poly(u, v, [(-0.12 * a, 0.05), (0.18 * a, 0.05), (-0.05 * a + s, 0.8), (-0.3 * a + s, 0.8)]),
        _poly(u, v, [(-0.08 * a, 0.0), (0.12 * a, 0.0), (-0.2 * a + s, -0.45), (-0.35 * a + s, -0.45)]),
        _poly(u, v, [(-0.97 * a, 0.1), (-0.62 * a, 0.1), (-0.84 * a, -0.95), (-0.98 * a, -0.95)]),
    )


def _bicycle(u, v, a, j):
    r = 0.56
    rx, fx, hy = -(a - r - 0.02), a - r - 0.02, 1.0 - r - 0.02
    cx, sx, hx = -0.05 * a + j(0.05), -0.28 * a + j(0.05), 0.42 * a + j(0.05)
    w = 0.06
    wheels = [_ell(u, v, x, hy, r, r) & ~_ell(u, v, x, hy, r - 0.1, r - 0.1) for x in (rx, fx)]
    hubs = [_ell(u, v, x, hy, 0.08, 0.08) for x in (rx, fx)]
    frame = [
        _cap(u, v, rx, hy, cx, hy + 0.05, w), _cap(u, v, rx, hy, sx, -0.45, w),
        _cap(u, v, sx, -0.45, cx, hy + 0.05, w), _cap(u, v, cx, hy + 0.05, hx, -0.5, w),
        _cap(u, v, sx, -0.45, hx, -0.5, w), _cap(u, v, hx, -0.5, fx, hy, w),
        _cap(u, v, sx, -0.45, sx - 0.05, -0.72, w), _ell(u, v, sx - 0.05, -0.76, 0.16, 0.07),
        _cap(u, v, hx, -0.5, hx + 0.02, -0.8, w), _cap(u, v, hx - 0.12, -0.82, hx + 0.18, -0.86, w),
    ]
    return _union(*wheels, *hubs, *frame)


def _bird(u, v, a, j):
    hx = a - 0.3
    return _union(
        _ell(u, v, -0.05 * a, 0.12, 0.6 * a, 0.42 + j(0.05)),
        _ell(u, v, hx, -0.38, 0.27, 0.27),
        _poly(u, v, [(hx + 0.2, -0.46), (hx + 0.2, -0.26), (a, -0.34)]),
        _poly(u, v, [(-0.5 * a, 0.0), (-0.5 * a, 0.3), (-a, 0.58 + j(0.1)), (-a, 0.22)]),
        _ell(u, v, -0.15 * a, -0.05 + j(0.1), 0.4 * a, 0.22),
        _legs(u, v, a, (-0.12, 0.12), 0.5, 1.0, 0.035, j),
    )


def _boat(u, v, a, j):
    m = -0.05 * a + j(0.1) * a
    parts = [
        _poly(u, v, [(-a, 0.45), (a, 0.45), (0.72 * a, 0.97), (-0.75 * a, 0.97)]),
        _cap(u, v, m, 0.45, m, -0.95, 0.045),
        _poly(u, v, [(m + 0.03, -0.9), (m + 0.03, 0.38), (m + 0.62 * a, 0.38)]),
    ]
    if j(1.0) > 0:
        parts.append(_poly(u, v, [(m - 0.03, -0.75), (m - 0.03, 0.38), (m - 0.58 * a, 0.38)]))
    else:
        parts.append(_box(u, v, -0.6 * a, 0.15, -0.15 * a, 0.48, 0.05))
    return _union(*parts)


def _bottle(u, v, a, j):
    neck = 0.36 * a + j(0.05) * a
    return _union(
        _box(u, v, -a, -0.2, a, 1.0, 0.12 * a),
        _ell(u, v, 0.0, -0.2, a, 0.32) & (v >= -0.55),
        _box(u, v, -neck, -0.98, neck, -0.3),
        _box(u, v, -neck * 1.2, -1.0, neck * 1.2, -0.88),
    )


def _bus(u, v, a, j):
    wx = a - 0.45
    return _union(
        _box(u, v, -a, -1.0, a, 0.76, 0.2),
        _ell(u, v, -wx, 0.76, 0.24, 0.24), _ell(u, v, wx, 0.76, 0.24, 0.24),
    )


def _car(u, v, a, j):
    wx = a - 0.55
    t = j(0.1) * a
    return _union(
        _box(u, v, -a, -0.25, a, 0.7, 0.22),
        _poly(u, v, [(-0.6 * a, -0.25), (0.45 * a, -0.25), (0.22 * a + t, -1.0), (-0.42 * a + t, -1.0)]),
        _ell(u, v, -wx, 0.68, 0.32, 0.32), _ell(u, v, wx, 0.68, 0.32, 0.32),
    )


def _cat(u, v, a, j):
    hx = 0.35 * a
    return _union(
        _ell(u, v, -0.05 * a, 0.35, 0.68 * a, 0.62),
        _ell(u, v, hx, -0.45, 0.32, 0.3),
        _poly(u, v, [(hx - 0.3, -0.55), (hx - 0.08, -0.65), (hx - 0.25, -1.0)]),
        _poly(u, v, [(hx + 0.3, -0.55), (hx + 0.08, -0.65), (hx + 0.25, -1.0)]),
        _cap(u, v, -0.55 * a, 0.85, -0.92 * a, 0.1 + j(0.2), 0.06),
    )


def _chair(u, v, a, j):
    back = _box(u, v, -0.8 * a, -1.0, 0.8 * a, -0.02, 0.05)
    if j(1.0) > -0.4:  # most chairs have an open back rest
        back &= ~_box(u, v, -0.6 * a, -0.82, 0.6 * a, -0.2)
    return _union(
        back,
        _box(u, v, -a, -0.05, a, 0.14),
        _legs(u, v, a, (-0.88, 0.88), 0.1, 1.0, 0.055, j),
        _legs(u, v, a, (-0.55, 0.55), 0.1, 0.82, 0.045, j),
    )


def _cow(u, v, a, j):
    hx = 0.78 * a
    return _union(
        _ell(u, v, -0.08 * a, -0.1, 0.62 * a, 0.42 + j(0.04)),
        _ell(u, v, hx, -0.4, 0.2 * a, 0.24),
        _cap(u, v, 0.42 * a, -0.2, hx, -0.38, 0.18),
        _legs(u, v, a, (-0.55, -0.4, 0.3, 0.45), 0.15, 0.98, 0.075, j),
        _cap(u, v, -0.68 * a, -0.25, -0.76 * a, 0.45, 0.03),
        _cap(u, v, hx - 0.05, -0.6, hx - 0.12, -0.78, 0.03), _cap(u, v, hx + 0.05, -0.6, hx + 0.12, -0.78, 0.03),
    )


def _diningtable(u, v, a, j):
    top = 0.45 + j(0.1)
    return _union(
        _poly(u, v, [(-0.85 * a, -1.0), (0.85 * a, -1.0), (a, -1.0 + top), (-a, -1.0 + top)]),
        _box(u, v, -0.95 * a, -1.0 + top, 0.95 * a, -0.85 + top),
        _legs(u, v, a, (-0.9, 0.9), -0.9 + top, 1.0, 0.06, j),
        _legs(u, v, a, (-0.6, 0.6), -0.9 + top, 0.75, 0.05, j),
    )


def _dog(u, v, a, j):
    hx = 0.68 * a
    return _union(
        _ell(u, v, -0.05 * a, -0.05, 0.55 * a, 0.33),
        _ell(u, v, hx, -0.45, 0.2 * a, 0.27),
        _ell(u, v, hx + 0.15 * a, -0.35, 0.15 * a, 0.12),
        _ell(u, v, hx - 0.12 * a, -0.35, 0.07 * a, 0.25),
        _legs(u, v, a, (-0.45, -0.3, 0.28, 0.42), 0.15, 1.0, 0.09, j),
        _cap(u, v, -0.55 * a, -0.15, -0.92 * a, -0.7 + j(0.2), 0.05),
    )


def _horse(u, v, a, j):
    return _union(
        _ell(u, v, -0.1 * a, -0.1, 0.5 * a, 0.28),
        _cap(u, v, 0.3 * a, -0.2, 0.6 * a, -0.75, 0.15),
        _cap(u, v, 0.6 * a, -0.82, 0.88 * a, -0.55 + j(0.1), 0.11),
        _legs(u, v, a, (-0.48, -0.35, 0.22, 0.32), 0.1, 1.0, 0.06, j),
        _cap(u, v, -0.58 * a, -0.2, -0.75 * a, 0.45, 0.07),
    )


def _motorbike(u, v, a, j):
    r = 0.45
    wx, wy = a - r - 0.02, 1.0 - r - 0.02
    return _union(
        _ell(u, v, -wx, wy, r, r), _ell(u, v, wx, wy, r, r),
        _poly(u, v, [(-0.45 * a, 0.25), (0.35 * a, 0.15), (0.25 * a, -0.35), (-0.3 * a, -0.3)]),
        _ell(u, v, -0.3 * a, -0.42, 0.35 * a, 0.1),
        _cap(u, v, wx, wy, 0.4 * a, -0.7, 0.06),
        _cap(u, v, 0.3 * a, -0.8 + j(0.05), 0.55 * a, -0.75, 0.05),
        _ell(u, v, 0.0, 0.25, 0.22 * a, 0.25),
    )


def _person(u, v, a, j):
    return _union(
        _ell(u, v, 0.0, -0.83, 0.16, 0.16),
        _box(u, v, -0.06, -0.72, 0.06, -0.6),
        _box(u, v, -0.6 * a, -0.66, 0.6 * a, 0.15, 0.1 * a),
        _cap(u, v, -0.55 * a, -0.58, -0.85 * a + j(0.12) * a, 0.1 + j(0.1), 0.065),
        _cap(u, v, 0.55 * a, -0.58, 0.85 * a + j(0.12) * a, 0.1 + j(0.1), 0.065),
        _cap(u, v, -0.25 * a, 0.1, -0.4 * a + j(0.2) * a, 0.98, 0.095),
        _cap(u, v, 0.25 * a, 0.1, 0.4 * a + j(0.2) * a, 0.98, 0.095),
    )


def _pottedplant(u, v, a, j):
    lobes, phase, depth = int(5 + abs(j(3.0))), j(math.pi), 0.22 + j(0.08)
    return _union(
        _poly(u, v, [(-0.55 * a, 0.38), (0.55 * a, 0.38), (0.4 * a, 1.0), (-0.4 * a, 1.0)]),
        _cap(u, v, 0.0, 0.38, 0.0, -0.1, 0.05),
        _polar(u, v, 0.0, -0.32, a, 0.68, lambda t: (1 - depth) + depth * np.cos(lobes * t + phase)),
    )


def _sheep(u, v, a, j):
    bumps, phase = 10 + int(abs(j(4.0))), j(math.pi)
    return _union(
        _polar(u, v, -0.08 * a, -0.1, 0.68 * a, 0.5, lambda t: 0.92 + 0.08 * np.cos(bumps * t + phase)),
        _ell(u, v, 0.76 * a, -0.3, 0.2 * a, 0.22),
        _legs(u, v, a, (-0.45, -0.3, 0.3, 0.45), 0.25, 1.0, 0.06, j),
    )


def _sofa(u, v, a, j):
    arm = 0.2 * a + j(0.05) * a
    return _union(
        _box(u, v, -0.9 * a, -1.0, 0.9 * a, 0.1, 0.15),
        _box(u, v, -a, -0.1, a, 0.78, 0.1),
        _box(u, v, -a, -0.45, -a + arm, 0.78, 0.08), _box(u, v, a - arm, -0.45, a, 0.78, 0.08),
        _box(u, v, -0.9 * a, 0.7, -0.8 * a, 0.98), _box(u, v, 0.8 * a, 0.7, 0.9 * a, 0.98),
    )


def _train(u, v, a, j):
    n = 1 + int(abs(j(2.99)))
    edges = np.linspace(-a, a, n + 1)
    cars = [_box(u, v, edges[i] + 0.04, -0.95, edges[i + 1] - 0.04, 0.8, 0.15) for i in range(n)]
    cars[-1] |= _ell(u, v, a - 0.35, -0.1, 0.35, 0.9) & (u <= a)
    wheels = [_ell(u, v, x, 0.84, 0.15, 0.15) for x in np.linspace(-a + 0.3, a - 0.3, 2 * n + 2)]
    return _union(*cars, *wheels, _box(u, v, -0.2, -1.0, 0.2, -0.9))


def _tvmonitor(u, v, a, j):
    if j(1.0) > 0.2:  # a bare screen fills its box, like many VOC monitors
        return _box(u, v, -a, -1.0, a, 1.0, 0.04)
    return _union(
        _box(u, v, -a, -1.0, a, 0.55, 0.05),
        _box(u, v, -0.1, 0.5, 0.1, 0.88),
        _box(u, v, -0.45 * a, 0.85, 0.45 * a, 1.0, 0.04),
    )


def _giraffe(u, v, a, j):
    return _union(
        _ell(u, v, -0.15 * a, 0.05, 0.55 * a, 0.22),
        _cap(u, v, 0.25 * a, -0.05, 0.6 * a, -0.85, 0.1),
        _ell(u, v, 0.72 * a, -0.88, 0.26 * a, 0.1),
        _legs(u, v, a, (-0.55, -0.4, 0.1, 0.25), 0.15, 1.0, 0.05, j),
    )


def _kite(u, v, a, j):
    w = 0.4 * a + j(0.1) * a
    return _union(
        _poly(u, v, [(0.0, -1.0), (a, -0.45), (0.0, 0.3), (-a, -0.45)]),
        _cap(u, v, 0.0, 0.3, w, 0.55, 0.025), _cap(u, v, w, 0.55, -w, 0.78, 0.025),
        _cap(u, v, -w, 0.78, 0.0, 1.0, 0.025),
        _poly(u, v, [(w - 0.1, 0.45), (w + 0.1, 0.45), (w, 0.55)]),
    )


def _clock(u, v, a, j):
    return _ell(u, v, 0.0, 0.05, a, 0.95) | _box(u, v, -0.08, -1.0, 0.08, -0.8)


def _umbrella(u, v, a, j):
    canopy = _ell(u, v, 0.0, -0.1, a, 0.9) & (v <= -0.1)
    scallops = _union(*[_ell(u, v, x, -0.1, a / 4, 0.12) for x in (-0.75 * a, -0.25 * a, 0.25 * a, 0.75 * a)])
    return _union(
        canopy & ~scallops,
        _cap(u, v, 0.0, -0.2, 0.0, 0.85, 0.045),
        _cap(u, v, 0.0, 0.85, 0.12, 0.98, 0.045), _cap(u, v, 0.12, 0.98, 0.22, 0.85, 0.045),
    )


def _banana(u, v, a, j):
    t = 0.45 + j(0.08)
    return (_ell(u, v, 0.0, -0.4, a, 1.4) & ~_ell(u, v, 0.0, -0.4 - t, 0.92 * a, 1.4)) | _cap(
        u, v, -a + 0.1, 0.2, -a + 0.05, -0.05, 0.06)


def _donut(u, v, a, j):
    hole = 0.32 + j(0.06)
    return _ell(u, v, 0.0, 0.0, a, 1.0) & ~_ell(u, v, 0.0, 0.0, hole * a, hole)


# ---------------------------------------------------------------------------------------------
# The class table
# ---------------------------------------------------------------------------------------------


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
    def voc_index(self) -> int:
        """Label 1..20 for VOC classes, 0 for the COCO-only ones."""
        return VOC_CLASS_TO_INDEX.get(self.name, 0)


def _voc(name, *args, **kw) -> ClassSpec:
    return ClassSpec(name, VOC_TO_COCO[name][0], *args, **kw)


CLASS_SPECS: tuple[ClassSpec, ...] = (
    _voc("aeroplane", _aeroplane, (1.4, 2.0), 210, 0.2, 0.88, "gradient", val2=0.55, rotate=20),
    _voc("bicycle", _bicycle, (1.4, 1.9), 350, 0.8, 0.75, "solid"),
    _voc("bird", _bird, (1.0, 1.5), 40, 0.75, 0.85, "spots", hue2=20, val2=0.45, period=0.5, rotate=15),
    _voc("boat", _boat, (1.1, 1.7), 200, 0.7, 0.75, "stripes", sat2=0.05, val2=0.95, period=0.35, angle=90),
    _voc("bottle", _bottle, (0.28, 0.42), 135, 0.6, 0.55, "gradient", val2=0.85, rotate=10),
    _voc("bus", _bus, (1.3, 2.0), 52, 0.9, 0.92, "stripes", hue2=160, sat2=0.3, val2=0.35, period=0.9, angle=90),
    _voc("car", _car, (1.6, 2.3), 5, 0.85, 0.65, "gradient", val2=0.3, hue_jitter=15),
    _voc("cat", _cat, (0.8, 1.2), 28, 0.55, 0.65, "stripes", val2=0.35, period=0.3, angle=20),
    _voc("chair", _chair, (0.6, 0.9), 30, 0.65, 0.45, "noise", val2=0.25, period=0.4),
    _voc("cow", _cow, (1.3, 1.7), 0, 0.0, 0.15, "spots", val2=0.92, period=0.7),
    _voc("diningtable", _diningtable, (1.4, 2.2), 22, 0.7, 0.5, "stripes", val2=0.35, period=0.15),
    _voc("dog", _dog, (1.1, 1.5), 35, 0.5, 0.55, "noise", hue2=10, val2=0.8, period=0.6),
    _voc("horse", _horse, (1.1, 1.5), 18, 0.7, 0.42, "gradient", val2=0.25),
    _voc("motorbike", _motorbike, (1.3, 1.7), 275, 0.55, 0.45, "checker", val2=0.15, period=0.35),
    _voc("person", _person, (0.35, 0.55), 220, 0.6, 0.6, "split", hue2=180, val2=0.35, period=0.1,
         hue_jitter=180, weight=2.5),
    _voc("pottedplant", _pottedplant, (0.6, 1.0), 110, 0.75, 0.5, "split", hue2=-85, val2=0.45, period=0.38),
    _voc("sheep", _sheep, (1.2, 1.5), 45, 0.12, 0.9, "noise", val2=0.7, period=0.25),
    _voc("sofa", _sofa, (1.5, 2.3), 305, 0.5, 0.55, "checker", val2=0.4, period=0.5),
    _voc("train", _train, (1.8, 3.0), 235, 0.7, 0.5, "stripes", hue2=180, val2=0.85, period=0.9, angle=90),
    _voc("tvmonitor", _tvmonitor, (1.1, 1.45), 0, 0.0, 0.12, "gradient", hue2=200, sat2=0.4, val2=0.55),
    # COCO classes outside VOC: the "unseen" classes of VOC-to-COCO (Eq. 7).
    ClassSpec("giraffe", 25, _giraffe, (0.7, 1.0), 38, 0.8, 0.8, "spots", val2=0.35, period=0.35),
    ClassSpec("kite", 38, _kite, (0.55, 0.8), 320, 0.85, 0.85, "stripes", hue2=120, val2=0.85, period=0.5,
              angle=45, rotate=25),
    ClassSpec("clock", 85, _clock, (0.95, 1.05), 0, 0.0, 0.95, "dial", val2=0.1, period=0.82),
    ClassSpec("umbrella", 28, _umbrella, (1.2, 1.6), 265, 0.75, 0.65, "stripes", val2=0.9, sat2=0.1,
              period=0.6, angle=-60),
    ClassSpec("banana", 52, _banana, (1.6, 2.3), 55, 0.9, 0.88, "gradient", hue2=-15, val2=0.6, rotate=20),
    ClassSpec("donut", 60, _donut, (0.95, 1.05), 28, 0.65, 0.7, "spots", hue2=-60, val2=0.85, period=0.25),
)
VOC_SPECS = tuple(s for s in CLASS_SPECS if s.voc_index)
UNSEEN_SPECS = tuple(s for s in CLASS_SPECS if not s.voc_index)
assert [s.voc_index for s in VOC_SPECS] == list(range(1, 21))

# The 80 COCO 2017 categories: (id, name, supercategory).
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = tuple(
    (int(i), n, sc) for sc, items in (
        ("person", "1 person"),
        ("vehicle", "2 bicycle|3 car|4 motorcycle|5 airplane|6 bus|7 train|8 truck|9 boat"),
        ("outdoor", "10 traffic light|11 fire hydrant|13 stop sign|14 parking meter|15 bench"),
        ("animal", "16 bird|17 cat|18 dog|19 horse|20 sheep|21 cow|22 elephant|23 bear|24 zebra|25 giraffe"),
        ("accessory", "27 backpack|28 umbrella|31 handbag|32 tie|33 suitcase"),
        ("sports", "34 frisbee|35 skis|36 snowboard|37 sports ball|38 kite|39 baseball bat|40 baseball glove|"
                   "41 skateboard|42 surfboard|43 tennis racket"),
        ("kitchen", "44 bottle|46 wine glass|47 cup|48 fork|49 knife|50 spoon|51 bowl"),
        ("food", "52 banana|53 apple|54 sandwich|55 orange|56 broccoli|57 carrot|58 hot dog|59 pizza|60 donut|"
                 "61 cake"),
        ("furniture", "62 chair|63 couch|64 potted plant|65 bed|67 dining table|70 toilet"),
        ("electronic", "72 tv|73 laptop|74 mouse|75 remote|76 keyboard|77 cell phone"),
        ("appliance", "78 microwave|79 oven|80 toaster|81 sink|82 refrigerator"),
        ("indoor", "84 book|85 clock|86 vase|87 scissors|88 teddy bear|89 hair drier|90 toothbrush"),
    ) for i, n in (item.split(" ", 1) for item in items.split("|"))
)
_COCO_NAMES = {cid: name for cid, name, _ in COCO_CATEGORIES}
assert len(_COCO_NAMES) == 80
assert all(_COCO_NAMES[cid] == name for cid, name in VOC_TO_COCO.values())
assert all(_COCO_NAMES[s.coco_id] == s.name for s in UNSEEN_SPECS)

# ---------------------------------------------------------------------------------------------
# Textures
# ---------------------------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return 255.0 * np.array(colorsys.hsv_to_rgb((h / 360.0) % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def _fourier_noise(rng: np.random.Generator, x, y, period: float, n: int = 8) -> np.ndarray:
    """Smooth random field of roughly unit variance: a sum of n random plane waves."""
    theta = rng.uniform(0, 2 * np.pi, n)
    freq = 2 * np.pi / (period * rng.uniform(0.6, 1.6, n))
    phase = rng.uniform(0, 2 * np.pi, n)
    kx, ky = (freq * np.cos(theta))[:, None, None], (freq * np.sin(theta))[:, None, None]
    return np.sqrt(2.0 / n) * np.cos(kx * x[None] + ky * y[None] + phase[:, None, None]).sum(0)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.6), rng.uniform(0.25, 0.9))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured H x W x 3 float background from one of five families."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    family = rng.choice(["noise", "stripes", "gradient", "blotches", "horizon"])
    c1, c2 = _random_colour(rng), _random_colour(rng)
    if family == "noise":
        n = _fourier_noise(rng, x, y, rng.uniform(4, 20))
        img = c1 + rng.uniform(20, 45) * n[..., None] * rng.uniform(0.7, 1.3, 3)
    elif family == "stripes":
        t = rng.uniform(0, np.pi)
        d = x * np.cos(t) + y * np.sin(t) + rng.uniform(1, 4) * _fourier_noise(rng, x, y, 20.0)
        m = 0.5 + 0.5 * np.sin(2 * np.pi * d / rng.uniform(5, 25))
        img = c1 + (c2 - c1) * m[..., None]
    elif family == "gradient":
        t = rng.uniform(0, 2 * np.pi)
        d = x * np.cos(t) + y * np.sin(t)
        m = (d - d.min()) / max(np.ptp(d), 1e-9)
        img = c1 + (c2 - c1) * m[..., None] + 10 * _fourier_noise(rng, x, y, 3.0)[..., None]
    elif family == "blotches":
        fields = np.stack([_fourier_noise(rng, x, y, rng.uniform(12, 35)) for _ in range(3)])
        cols = np.stack([c1, c2, _random_colour(rng)])
        img = cols[fields.argmax(0)] + 8 * _fourier_noise(rng, x, y, 3.0)[..., None]
    else:  # horizon: sky above, textured ground below
        line = h * rng.uniform(0.3, 0.7) + rng.uniform(1, 5) * _fourier_noise(rng, x, np.zeros_like(y), 30.0)
        sky = c1 + (y / h)[..., None] * 40
        ground = c2 + 30 * _fourier_noise(rng, x, y, rng.uniform(3, 10))[..., None]
        img = np.where((y > line)[..., None], ground, sky)
    return img


def _pattern(rng: np.random.Generator, spec: ClassSpec, u, v) -> np.ndarray:
    """Mixing weight in [0, 1] between the class's two colours, attached to the object frame."""
    p = spec.period * rng.uniform(0.75, 1.3)
    kind = spec.pattern
    if kind == "solid":
        return np.zeros_like(u)
    if kind == "stripes":
        t = np.deg2rad(spec.angle + rng.uniform(-20, 20))
        return (np.sin(2 * np.pi * (u * np.cos(t) + v * np.sin(t)) / p + rng.uniform(0, 2 * np.pi)) > 0).astype(float)
    if kind == "spots":
        return (_fourier_noise(rng, u, v, p) > 0.7).astype(float)
    if kind == "checker":
        return ((np.floor(u / p) + np.floor(v / p)) % 2).astype(float)
    if kind == "noise":
        return np.clip(0.5 + 0.35 * _fourier_noise(rng, u, v, p), 0, 1)
    if kind == "gradient":
        return np.clip((v + 1) / 2 + 0.1 * _fourier_noise(rng, u, v, 0.5), 0, 1)
    if kind == "dial":  # dark rim and two hands on a light face
        t = rng.uniform(0, 2 * np.pi, 2)
        hands = [np.abs(u * np.sin(a) - v * np.cos(a)) < 0.06 for a in t]
        along = [(u * np.cos(a) + v * np.sin(a)) for a in t]
        face = (hands[0] & (along[0] > -0.05) & (along[0] < 0.7)) | (hands[1] & (along[1] > -0.05) & (along[1] < 0.5))
        return ((np.hypot(u, v) > p) | face).astype(float)
    if kind == "split":
        return (v > p + rng.uniform(-0.1, 0.1)).astype(float)
    raise ValueError(f"unknown pattern {kind!r}")


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------


@dataclass
class _Placed:
    spec: int                 # index into CLASS_SPECS
    ys: slice
    xs: slice
    u: np.ndarray
    v: np.ndarray
    mask: np.ndarray          # bool, window-sized (before occlusion)
    group: int = -1           # >= 0: member of a crowd region


def _place(rng: np.random.Generator, spec_index: int, h: int, w: int, *, area: float,
           centre: tuple[float, float] | None = None) -> _Placed | None:
    """Rasterise one object of the given box-area fraction (None if it falls outside the image)."""
    spec = CLASS_SPECS[spec_index]
    a = rng.uniform(*spec.aspect)
    half = math.sqrt(area * w * h / (4 * a))
    half = min(half, 0.55 * h, 0.55 * w / a)
    if centre is None:
        mx, my = 0.6 * a * half, 0.6 * half  # up to 40 % of a half-extent may leave the image
        cx = rng.uniform(mx, w - mx) if w > 2 * mx else w / 2
        cy = rng.uniform(my, h - my) if h > 2 * my else h / 2
    else:
        cx, cy = centre
    theta = np.deg2rad(rng.uniform(-spec.rotate, spec.rotate))
    flip = 1.0 if rng.random() < 0.5 else -1.0
    reach = half * math.hypot(a, 1.0) + 1
    y0, y1 = max(int(cy - reach), 0), min(int(math.ceil(cy + reach)), h)
    x0, x1 = max(int(cx - reach), 0), min(int(math.ceil(cx + reach)), w)
    if y1 <= y0 or x1 <= x0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    c, s = math.cos(theta), math.sin(theta)
    u = flip * (c * dx + s * dy) / half
    v = (-s * dx + c * dy) / half

    def jitter(scale: float) -> float:
        return float(rng.uniform(-scale, scale))

    mask = spec.shape(u, v, a, jitter) & (np.abs(u) <= a) & (np.abs(v) <= 1.0)
    if not mask.any():
        return None
    return _Placed(spec_index, slice(y0, y1), slice(x0, x1), u, v, mask)


def _paint(rng: np.random.Generator, img: np.ndarray, obj: _Placed, visible: np.ndarray) -> None:
    """Colour an object's visible pixels (class colours + pattern + shading) into img."""
    spec = CLASS_SPECS[obj.spec]
    hue = spec.hue + rng.uniform(-spec.hue_jitter, spec.hue_jitter)
    sat = spec.sat + rng.uniform(-0.12, 0.12)
    c1 = _hsv(hue, sat, spec.val + rng.uniform(-0.12, 0.12))
    c2 = _hsv(hue + spec.hue2 + rng.uniform(-10, 10), (spec.sat2 if spec.sat2 is not None else sat),
              spec.val2 + rng.uniform(-0.1, 0.1))
    t = _pattern(rng, spec, obj.u, obj.v)[..., None]
    colour = c1 * (1 - t) + c2 * t
    light = rng.uniform(0, 2 * np.pi)
    shade = 1.0 + 0.15 * (np.cos(light) * obj.u + np.sin(light) * obj.v) / (1 + np.abs(obj.u).max())
    colour = colour * shade[..., None] + 6 * _fourier_noise(rng, obj.u, obj.v, 0.4)[..., None]
    window = img[obj.ys, obj.xs]
    window[visible] = colour[visible]


@dataclass
class Scene:
    """One rendered image with its instances (index k in ``instances`` is instance id k + 1)."""

    image: np.ndarray         # H x W x 3 uint8
    instances: np.ndarray     # H x W int32: 0 background, k + 1 = instances[k]
    specs: list[int]          # CLASS_SPECS index per instance
    groups: list[int]         # crowd group per instance (-1 = an individual object)


def _occlusion(objs: list[_Placed], h: int, w: int) -> np.ndarray:
    inst = np.zeros((h, w), dtype=np.int32)
    for k, o in enumerate(objs):  # later objects on top
        inst[o.ys, o.xs][o.mask] = k + 1
    return inst


def _compose(rng: np.random.Generator, h: int, w: int, wanted: list[tuple[int, float, int]],
             crowd_centre: tuple[float, float] | None, forced: int | None) -> Scene | None:
    """Place, occlude, drop barely visible objects, paint. None if the forced class got lost."""
    objs: list[_Placed] = []
    for spec_index, area, group in wanted:
        centre = None
        if group >= 0 and crowd_centre is not None:
            centre = (crowd_centre[0] + rng.normal(0, 0.08 * w), crowd_centre[1] + rng.normal(0, 0.05 * h))
        o = _place(rng, spec_index, h, w, area=area, centre=centre)
        if o is not None:
            o.group = group
            objs.append(o)
    # Big objects behind small ones (as in photos), with some shuffling.
    order = np.argsort([-(o.mask.sum() * rng.uniform(0.5, 2.0)) for o in objs], kind="stable")
    objs = [objs[i] for i in order]
    min_area = max(12, int(0.004 * h * w))
    for _ in range(2):  # dropping frees pixels; a second pass settles it
        inst = _occlusion(objs, h, w)
        vis = np.bincount(inst.ravel(), minlength=len(objs) + 1)[1:]
        full = np.array([o.mask.sum() for o in objs])
        keep = [(vis[k] >= min_area and vis[k] >= 0.15 * full[k]) or (o.group >= 0 and vis[k] > 0)
                for k, o in enumerate(objs)]
        objs = [o for o, k in zip(objs, keep, strict=True) if k]
    inst = _occlusion(objs, h, w)
    if not objs or (forced is not None and forced not in [o.spec for o in objs]):
        return None
    img = _background(rng, h, w)
    for k, o in enumerate(objs):
        _paint(rng, img, o, inst[o.ys, o.xs] == k + 1)
    img = img + rng.normal(0, 3.0, img.shape)  # sensor noise
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Scene(image, inst, [o.spec for o in objs], [o.group for o in objs])


_VOC_WEIGHTS = np.array([s.weight for s in VOC_SPECS]) / sum(s.weight for s in VOC_SPECS)
_N_OBJECTS_P = np.array([0.38, 0.3, 0.2, 0.12])  # 1..4 objects before occlusion drops some


def render_scene(rng: np.random.Generator, size: tuple[int, int], *, coco: bool = False,
                 forced: int | None = None, crowd: bool = False) -> Scene:
    """Render one scene of size (W, H): 1-4 objects (VOC classes, plus unseen ones when coco).

    ``forced`` (a CLASS_SPECS index) must occur; ``crowd`` adds a cluster of small objects of
    one class that COCO annotates as a single iscrowd region.
    """
    w, h = size
    for _attempt in range(50):
        n = 1 + int(rng.choice(4, p=_N_OBJECTS_P))

        wanted: list[tuple[int, float, int]] = []
        for i in range(n):
            if i == 0 and forced is not None:
                cls = forced
            elif coco and rng.random() < 0.35:
                cls = len(VOC_SPECS) + int(rng.integers(len(UNSEEN_SPECS)))
            elif wanted and rng.random() < 0.35:  # same class again, as in VOC's herds and crowds
                cls = wanted[-1][0]
            else:
                cls = int(rng.choice(len(VOC_SPECS), p=_VOC_WEIGHTS))
            area = math.exp(rng.uniform(math.log(0.05 if i == 0 else 0.02), math.log(0.5)))
            wanted.append((cls, area, -1))
        centre = None
        if crowd:
            cls = int(rng.choice([VOC_CLASS_TO_INDEX[c] - 1 for c in ("person", "sheep", "bird", "cow")]
                                 + [CLASS_SPECS.index(s) for s in UNSEEN_SPECS if s.name in ("banana", "kite")]))
            centre = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
            wanted = wanted[:2] + [(cls, rng.uniform(0.006, 0.02), 0) for _ in range(int(rng.integers(4, 8)))]
        scene = _compose(rng, h, w, wanted, centre, forced)
        if scene is not None and (not crowd or 0 in scene.groups):
            return scene
    raise RuntimeError("could not compose a scene (image too small?)")  # pragma: no cover


def _image_size(rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int]:
    """VOC-like size jitter: +-15 % per side, and some portrait images."""
    w, h = (max(16, int(round(s * rng.uniform(0.85, 1.15)))) for s in size)
    return (h, w) if rng.random() < 0.15 else (w, h)


def _boxes(inst: np.ndarray, n: int) -> np.ndarray:
    """Tight half-open boxes (x1, y1, x2, y2) of instance ids 1..n."""
    objs = ndimage.find_objects(inst, max_label=n)
    return np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in objs], dtype=np.int64).reshape(-1, 4)


# ---------------------------------------------------------------------------------------------
# Writers (public formats)
# ---------------------------------------------------------------------------------------------


def _save_jpeg(path: Path, image: np.ndarray, gray: bool = False) -> None:
    img = Image.fromarray(image)
    if gray:
        img = img.convert("L")
    img.save(path, format="JPEG", quality=JPEG_QUALITY)


def _voc_xml(image_id: str, size: tuple[int, int], objects: list[dict], segmented: bool) -> str:
    w, h = size
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "The VOC2007 Database"
    ET.SubElement(src, "annotation").text = "PASCAL VOC2007"
    ET.SubElement(src, "image").text = "synthetic"
    sz = ET.SubElement(root, "size")
    for k, val in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(sz, k).text = str(val)
    ET.SubElement(root, "segmented").text = str(int(segmented))
    for o in objects:
        ob = ET.SubElement(root, "object")
        ET.SubElement(ob, "name").text = o["name"]
        ET.SubElement(ob, "pose").text = o["pose"]
        ET.SubElement(ob, "truncated").text = str(o["truncated"])
        ET.SubElement(ob, "difficult").text = str(o["difficult"])
        bb = ET.SubElement(ob, "bndbox")
        x1, y1, x2, y2 = o["box"]
        for k, val in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):  # 1-based inclusive
            ET.SubElement(bb, k).text = str(int(val))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def _savemat(path: Path, mdict: dict) -> None:
    """scipy.io.savemat with a fixed header (scipy writes the creation time into it)."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, mdict, do_compression=True, oned_as="column")
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b" ")
    path.write_bytes(bytes(data))


def _boundaries(label: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood holds another label (inner boundary of every region)."""
    p = np.pad(label, 1, mode="edge")
    c = p[1:-1, 1:-1]
    return (c != p[:-2, 1:-1]) | (c != p[2:, 1:-1]) | (c != p[1:-1, :-2]) | (c != p[1:-1, 2:])


def _cell(maps: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((len(maps), 1), dtype=object)
    for i, m in enumerate(maps):
        cell[i, 0] = scipy.sparse.csc_matrix(m)
    return cell


def _write_sbd(ds: Path, image_id: str, cls: np.ndarray, inst: np.ndarray, inst_classes: list[int]) -> None:
    bnd = _boundaries(cls) & (cls > 0)
    present = sorted(set(inst_classes))
    _savemat(ds / "cls" / f"{image_id}.mat", {"GTcls": {
        "Segmentation": cls.astype(np.uint8),
        "Boundaries": _cell([bnd & (cls == c) for c in range(1, 21)]),
        "CategoriesPresent": np.array(present, dtype=np.uint8).reshape(-1, 1),
    }})
    ibnd = _boundaries(inst) & (inst > 0)
    _savemat(ds / "inst" / f"{image_id}.mat", {"GTinst": {
        "Segmentation": inst.astype(np.uint8),
        "Boundaries": _cell([ibnd & (inst == k + 1) for k in range(len(inst_classes))]),
        "Categories": np.array(inst_classes, dtype=np.uint8).reshape(-1, 1),
    }})


def mask_to_polygons(mask: np.ndarray) -> list[list[float]] | None:
    """COCO polygons (pixel-corner coordinates) tracing a mask exactly, or None when it has holes
    or pinched corners (the caller then falls back to RLE)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any() or not np.array_equal(ndimage.binary_fill_holes(mask), mask):
        return None
    labels, n = ndimage.label(mask)
    polys = []
    for k in range(1, n + 1):  # components (a handful at most)
        p = np.pad(labels == k, 1)
        hgt, wid = p.shape
        inside = p[1:-1, 1:-1]
        r, c = np.nonzero(inside)
        # Directed boundary edges with the inside on the right (y down), in padded corner coords.
        edges = []
        for cond, start, end in (
            (~p[:-2, 1:-1], (c, r), (c + 1, r)),              # top: east
            (~p[2:, 1:-1], (c + 1, r + 1), (c, r + 1)),       # bottom: west
            (~p[1:-1, :-2], (c, r + 1), (c, r)),              # left: north
            (~p[1:-1, 2:], (c + 1, r), (c + 1, r + 1)),       # right: south
        ):
            sel = cond[r, c]
            edges.append((start[0][sel], start[1][sel], end[0][sel], end[1][sel]))
        sx, sy, ex, ey = (np.concatenate(x) for x in zip(*edges, strict=True))
        key = sy * (wid + 1) + sx
        if len(np.unique(key)) != len(key):  # a corner with two exits: pinch
            return None
        succ = np.full((hgt + 1) * (wid + 1), -1, dtype=np.int64)
        succ[key] = ey * (wid + 1) + ex
        loop = [int(key[np.lexsort((sx, sy))[0]])]
        for _ in range(len(key) - 1):  # walk the contour (its length, not the image area)
            loop.append(int(succ[loop[-1]]))
        if succ[loop[-1]] != loop[0] or len(set(loop)) != len(key):
            return None  # more than one loop
        pts = np.array([(q % (wid + 1), q // (wid + 1)) for q in loop], dtype=np.int64)
        prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
        turn = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) != (pts[:, 1] - prev[:, 1]) * (nxt[:, 0] - pts[:, 0])
        pts = pts[turn]  # keep the corners only
        polys.append([float(x) for x in pts.ravel()])
    return polys


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: run lengths of the column-major mask, starting with zeros."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.r_[0, change, flat.size])
    counts = ([0] if flat[0] else []) + runs.tolist()
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(x) for x in counts]}


def _coco_annotation(mask: np.ndarray, category_id: int, crowd: bool) -> dict:
    from pycocotools import mask as mask_utils

    h, w = mask.shape
    polys = None if crowd else mask_to_polygons(mask)
    if crowd:
        seg = _uncompressed_rle(mask)
        rle = mask_utils.frPyObjects(seg, h, w)
    elif polys is not None:
        seg = polys
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    else:
        seg = _rle(mask)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if polys is not None:  # COCO's polygon boxes are the polygon's extent
        xy = np.concatenate([np.reshape(p, (-1, 2)) for p in polys])
        x0, y0 = xy.min(0)
        x1, y1 = xy.max(0)
        bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    else:
        bbox = [float(x) for x in mask_utils.toBbox(rle)]
    return {"category_id": int(category_id), "segmentation": seg, "area": float(mask_utils.area(rle)),
            "bbox": bbox, "iscrowd": int(crowd)}


# ---------------------------------------------------------------------------------------------
# Per-image jobs
# ---------------------------------------------------------------------------------------------

_POSES = ("Unspecified", "Frontal", "Left", "Right", "Rear")


@dataclass(frozen=True)
class _Task:
    index: int                # global image index: the RNG stream
    image_id: str
    split: str                # train | val | test | sbd_only | coco
    in_sbd: bool = False
    forced: int | None = None
    crowd: bool = False
    gray: bool = False
    coco_id: int = 0


def _run_task(task: _Task, *, out: Path, size: tuple[int, int], seed: int) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([seed, task.index]))
    coco = task.split == "coco"
    wh = _image_size(rng, size)
    scene = render_scene(rng, wh, coco=coco, forced=task.forced, crowd=task.crowd)
    n = len(scene.specs)
    boxes = _boxes(scene.instances, n)
    if coco:
        _save_jpeg(out / "coco" / "train2017" / f"{task.coco_id:012d}.jpg", scene.image, task.gray)
        anns = []
        for k in range(n):
            if scene.groups[k] < 0:
                anns.append(_coco_annotation(scene.instances == k + 1, CLASS_SPECS[scene.specs[k]].coco_id, False))
        for g in sorted(set(scene.groups) - {-1}):
            members = [k + 1 for k in range(n) if scene.groups[k] == g]
            anns.append(_coco_annotation(np.isin(scene.instances, members),
                                         CLASS_SPECS[scene.specs[members[0] - 1]].coco_id, True))
        image = {"id": task.coco_id, "file_name": f"{task.coco_id:012d}.jpg", "width": wh[0], "height": wh[1],
                 "license": 1}
        return {"split": "coco", "image": image, "annotations": anns, "gray": task.gray,
                "classes": [_COCO_NAMES[CLASS_SPECS[s].coco_id] for s, g in zip(scene.specs, scene.groups, strict=True)
                            if g < 0]}

    voc = out / "VOCdevkit" / "VOC2012"
    _save_jpeg(voc / "JPEGImages" / f"{task.image_id}.jpg", scene.image)
    h, w = scene.instances.shape
    min_area = max(12, int(0.004 * h * w))
    areas = np.bincount(scene.instances.ravel(), minlength=n + 1)[1:]
    objects = []
    for k in range(n):
        x1, y1, x2, y2 = (int(b) for b in boxes[k])
        objects.append({
            "name": CLASS_SPECS[scene.specs[k]].name, "pose": _POSES[int(rng.integers(len(_POSES)))],
            "truncated": int(x1 == 0 or y1 == 0 or x2 == w or y2 == h),
            "difficult": int(areas[k] < 2 * min_area), "box": (x1, y1, x2, y2),
        })
    segmented = task.split != "sbd_only"
    (voc / "Annotations" / f"{task.image_id}.xml").write_text(_voc_xml(task.image_id, wh, objects, segmented))
    lut = np.array([0] + [CLASS_SPECS[s].voc_index for s in scene.specs], dtype=np.uint8)
    cls = lut[scene.instances]
    labels: list[int] = []
    if segmented:
        # VOC's thin void border, on the background side only so object pixels keep their label.
        void = ndimage.binary_dilation(scene.instances > 0, structure=np.ones((3, 3), bool)) & (scene.instances == 0)
        save_label_png(voc / "SegmentationClass" / f"{task.image_id}.png", np.where(void, 255, cls))
        save_label_png(voc / "SegmentationObject" / f"{task.image_id}.png",
                       np.where(void, 255, scene.instances).astype(np.uint8))
        labels = sorted(int(x) for x in np.unique(np.where(void, 255, cls)) if x != 255)
    if task.in_sbd:
        ds = out / "benchmark_RELEASE" / "dataset"
        (ds / "img" / f"{task.image_id}.jpg").write_bytes((voc / "JPEGImages" / f"{task.image_id}.jpg").read_bytes())
        _write_sbd(ds, task.image_id, cls, scene.instances, [int(x) for x in lut[1:]])
    return {"split": task.split, "id": task.image_id, "classes": [o["name"] for o in objects], "labels": labels}


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


def _voc_ids(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct VOC-style ids (2007_000032 ...), increasing, spread over 2007-2012."""
    ids, per_year = [], math.ceil(n / 6)
    for year in range(2007, 2013):
        nums = np.cumsum(rng.integers(1, 40, per_year)) + 20
        ids += [f"{year}_{int(x):06d}" for x in nums]
    return ids[:n]


def _plan(n_train: int, n_val: int, n_test: int, n_sbd_only: int, n_coco: int, seed: int) -> list[_Task]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    n_voc = n_train + n_val + n_test + n_sbd_only
    ids = _voc_ids(rng, n_voc)
    roles = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test + ["sbd_only"] * n_sbd_only)
    roles = roles[rng.permutation(n_voc)]  # splits interleave in id order, as in VOC
    tasks: list[_Task] = []
    seen: Counter = Counter()
    # SBD covers about half of VOC train and of VOC val (at least one of each) besides its own images.
    sbd_of = {r: set(rng.permutation(n)[:max(1, n // 2) if n else 0].tolist())
              for r, n in (("train", n_train), ("val", n_val))}
    for i, (image_id, role) in enumerate(zip(ids, roles, strict=True)):
        k = seen[role]
        seen[role] += 1
        forced = k % 20 if role in ("train", "val", "test") and k < 20 else None  # every class early on
        in_sbd = role == "sbd_only" or k in sbd_of.get(role, ())
        tasks.append(_Task(i, image_id, str(role), in_sbd=in_sbd, forced=forced))
    coco_ids = np.sort(rng.choice(np.arange(1, 600_000), size=n_coco, replace=False))
    for k, cid in enumerate(coco_ids):
        forced = len(VOC_SPECS) + k if k < len(UNSEEN_SPECS) else None  # every unseen class
        tasks.append(_Task(n_voc + k, f"{int(cid):012d}", "coco", forced=forced, crowd=k % 12 == 3,
                           gray=k % 15 == 7, coco_id=int(cid)))
    return tasks


def _sbd_split(rng: np.random.Generator, tasks: list[_Task]) -> tuple[list[str], list[str]]:
    """SBD train / val: both take SBD-only images, VOC train images and VOC val images."""
    train, val = [], []
    for role, p_train in (("sbd_only", 0.75), ("train", 0.6), ("val", 0.5)):
        ids = [t.image_id for t in tasks if t.in_sbd and t.split == role]
        to_train = rng.random(len(ids)) < p_train
        if role == "val" and len(ids) >= 2:  # keep the train_aug set operation non-trivial
            to_train[0], to_train[1] = True, False
        train += [i for i, f in zip(ids, to_train, strict=True) if f]
        val += [i for i, f in zip(ids, to_train, strict=True) if not f]
    return sorted(train), sorted(val)


def _write_list(path: Path, ids) -> None:
    path.write_text("".join(f"{i}\n" for i in sorted(ids)))


def synthesize(root: Path, *, image_size: tuple[int, int] = (160, 120), n_train: int = 300, n_val: int = 100,
               n_test: int = 100, n_sbd_only: int = 200, n_coco: int = 200, seed: int = 0, workers: int = 1,
               progress: bool = True) -> dict:
    """Write the synthetic VOC 2012 + SBD + COCO miniature under ``root`` (replacing it whole).

    ``image_size`` is (W, H) before per-image jitter. Returns the summary also written to
    ``<root>/synthetic_summary.json``. The output is byte-identical for a given seed, whatever
    ``workers``.
    """
    root = Path(root)
    size = (int(image_size[0]), int(image_size[1]))
    if min(size) < 32:
        raise ValueError(f"image_size must be at least 32 x 32, got {size}")
    counts = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "n_sbd_only": n_sbd_only, "n_coco": n_coco}
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"image counts must be >= 0, got {counts}")
    tasks = _plan(n_train, n_val, n_test, n_sbd_only, n_coco, seed)
    with atomic_dir(root) as tmp:
        voc, ds, coco = tmp / "VOCdevkit" / "VOC2012", tmp / "benchmark_RELEASE" / "dataset", tmp / "coco"
        for d in (voc / "JPEGImages", voc / "Annotations", voc / "SegmentationClass", voc / "SegmentationObject",
                  voc / "ImageSets" / "Segmentation", ds / "img", ds / "cls", ds / "inst",
                  coco / "train2017", coco / "annotations"):
            d.mkdir(parents=True, exist_ok=True)
        job = partial(_run_task, out=tmp, size=size, seed=seed)
        records = list(_imap(job, tasks, workers, progress, "synthesize"))

        by_split: dict[str, list[dict]] = {}
        for r in records:
            by_split.setdefault(r["split"], []).append(r)
        split_ids = {s: sorted(r["id"] for r in by_split.get(s, [])) for s in ("train", "val", "test", "sbd_only")}
        sets = voc / "ImageSets" / "Segmentation"
        _write_list(sets / "train.txt", split_ids["train"])
        _write_list(sets / "val.txt", split_ids["val"])
        _write_list(sets / "trainval.txt", split_ids["train"] + split_ids["val"])
        _write_list(sets / "test.txt", split_ids["test"])
        sbd_train, sbd_val = _sbd_split(np.random.default_rng(np.random.SeedSequence([seed, 0x5BD])), tasks)
        _write_list(ds / "train.txt", sbd_train)
        _write_list(ds / "val.txt", sbd_val)

        coco_records = by_split.get("coco", [])
        annotations = []
        for r in coco_records:
            for a in r["annotations"]:
                annotations.append({"id": len(annotations) + 1, "image_id": r["image"]["id"], **a})
        instances = {
            "info": {"description": "bana-pipeline synthetic COCO-style train2017", "version": "1.0",
                     "year": 2017, "contributor": "bana_core.data.synthetic", "date_created": "2017/09/01"},
            "licenses": [{"id": 1, "name": "CC0 (synthetic)", "url": ""}],
            "images": [r["image"] for r in coco_records],
            "annotations": annotations,
            "categories": [{"supercategory": sc, "id": i, "name": n} for i, n, sc in COCO_CATEGORIES],
        }
        (coco / "annotations" / "instances_train2017.json").write_text(json.dumps(instances, separators=(",", ":")))

        train_aug = (set(sbd_train) | set(sbd_val) | set(split_ids["train"])) - set(split_ids["val"])
        summary = {
            "seed": seed, "image_size": list(size),
            "counts": {**{s: len(v) for s, v in split_ids.items()}, "sbd_train": len(sbd_train),
                       "sbd_val": len(sbd_val), "train_aug": len(train_aug), "coco": len(coco_records),
                       "coco_annotations": len(annotations),
                       "coco_crowd": sum(a["iscrowd"] for a in annotations),
                       "coco_grayscale": sum(r["gray"] for r in coco_records)},
            "objects_per_image": {s: round(float(np.mean([len(r["classes"]) for r in rs])), 3)
                                  for s, rs in sorted(by_split.items())},
            "class_histogram": {s: dict(sorted(Counter(c for r in rs for c in r["classes"]).items()))
                                for s, rs in sorted(by_split.items())},
            "labels_in_val": sorted({lab for r in by_split.get("val", []) for lab in r["labels"]}),
            "unseen_classes": [s.name for s in UNSEEN_SPECS],
        }
        write_json(tmp / "synthetic_summary.json", summary)
    return summary


def _imap(job: Callable, tasks: list, workers: int, progress: bool, desc: str) -> Iterator:
    """``job(t)`` for each task, in order, in ``workers`` processes when more than one."""
    if workers > 1:
        methods = multiprocessing.get_all_start_methods()
        # fork: the workflow runs this from a script without a __main__ guard, which spawn re-runs.
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            yield from _progress(pool.map(job, tasks, chunksize=8), len(tasks), progress, desc)
    else:
        yield from _progress(map(job, tasks), len(tasks), progress, desc)


def _progress(it, total: int, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, unit="img")


def _image_mask(obj: _Placed, h: int, w: int) -> np.ndarray:
    """The object's (unoccluded) mask in image coordinates."""
    mask = np.zeros((h, w), dtype=bool)
    mask[obj.ys, obj.xs] = obj.mask
    return mask


def render_pretrain_image(rng: np.random.Generator, label: int, size: int = 64, *,
                          clutter: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """One pretraining image: an object of VOC class ``label`` (1..20) near the centre of a
    random background, 10-60 % of the image in area.

    With probability ``clutter`` the image also holds 1-2 smaller objects of other VOC classes
    (each 15-60 % of the labelled object's area), painted behind it or, if the labelled object
    keeps at least 60 % of its pixels, in front of it, as ImageNet's photos hold other things.

    Returns (image uint8 [size, size, 3], visible mask of the labelled object, distractor count).
    """
    img = _background(rng, size, size)
    obj = None
    while obj is None:  # an object placed too far out is drawn again
        centre = (size / 2 + rng.normal(0, 0.15 * size), size / 2 + rng.normal(0, 0.15 * size))
        area = rng.uniform(0.1, 0.6)
        obj = _place(rng, label - 1, size, size, area=area, centre=centre)
    full = _image_mask(obj, size, size)
    visible = full.copy()
    front: list[_Placed] = []
    n_distractors = 0
    if clutter > 0 and rng.random() < clutter:
        for _ in range(int(rng.integers(1, 3))):
            other = int(rng.integers(19))
            other += other >= label - 1  # any VOC class but the label's
            d = _place(rng, other, size, size, area=area * rng.uniform(0.15, 0.6))
            if d is None:
                continue
            n_distractors += 1
            covered = _image_mask(d, size, size)
            if rng.random() < 0.5 and (visible & ~covered).sum() >= 0.6 * full.sum():
                front.append(d)
                visible &= ~covered
            else:
                _paint(rng, img, d, d.mask)
    _paint(rng, img, obj, obj.mask)
    for d in front:
        _paint(rng, img, d, d.mask)
    img = img + rng.normal(0, 3.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), visible, n_distractors


def _pretrain_image(task: tuple[int, int], size: int, seed: int, clutter: float) -> np.ndarray:
    i, label = task
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E7, label, i]))
    return render_pretrain_image(rng, label, size, clutter=clutter)[0]


def make_pretrain_set(n_per_class: int, size: int = 64, seed: int = 0, clutter: float = 0.0,
                      workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labelled single-object images of the 20 VOC classes (ImageNet's role in the demo).

    Object size (10-60 % of the image) and position vary, as ImageNet's do: features pretrained
    on large centred objects only transferred worse to the scenes' 17-107 px objects (stage-1
    val box accuracy 61 % against 69 %). ``clutter`` (see :func:`render_pretrain_image`) adds
    other objects behind and in front: the scenes' boxes overlap, and features pretrained on
    lone objects classified overlapping val boxes far worse than isolated ones.

    Returns images uint8 [N, size, size, 3] and labels int64 [N] in 1..20, class by class. Each
    image has its own seed, so ``workers`` (processes) cannot change a byte.
    """
    labels = np.repeat(np.arange(1, 21, dtype=np.int64), n_per_class)
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)  # filled as rendered: one copy
    job = partial(_pretrain_image, size=size, seed=seed, clutter=clutter)
    for i, image in enumerate(_imap(job, list(enumerate(labels.tolist())), workers, False, "pretrain set")):
        images[i] = image
    return images, labels


__all__ = ["CLASS_SPECS", "COCO_CATEGORIES", "ClassSpec", "Scene", "UNSEEN_SPECS", "VOC_SPECS",
           "make_pretrain_set", "mask_to_polygons", "render_pretrain_image", "render_scene", "synthesize"]
