"""Shape primitives and one shape family per class, all rasterised in an object frame."""

from __future__ import annotations

import math
from functools import reduce
from typing import Callable

import numpy as np

# ---------------------------------------------------------------------------------------------
# Shape primitives. Every shape lives in an object frame: v in [-1, 1] top to bottom, u in
# [-a, a] left to right (a = object width / height), so circles stay circles at any aspect.
# ---------------------------------------------------------------------------------------------


def _ell(u, v, cx, cy, rx, ry):
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1.0


def capsule(u, v, x0, y0, x1, y1, w):
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
    return _union(*[capsule(u, v, x * a, top, x * a + j(0.06) * a, bottom, w) for x in xs])


def _aeroplane(u, v, a, j):
    s = j(0.08)
    return _union(
        capsule(u, v, -0.9 * a, 0.1, 0.8 * a, 0.1, 0.22),
        _ell(u, v, 0.8 * a, 0.12, 0.2 * a, 0.2),
        _poly(u, v, [(-0.2 * a, 0.05), (0.22 * a, 0.05), (0.0 * a + s, 0.8), (-0.4 * a + s, 0.8)]),
        _poly(u, v, [(-0.15 * a, 0.0), (0.15 * a, 0.0), (-0.2 * a + s, -0.45), (-0.45 * a + s, -0.45)]),
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
        capsule(u, v, rx, hy, cx, hy + 0.05, w), capsule(u, v, rx, hy, sx, -0.45, w),
        capsule(u, v, sx, -0.45, cx, hy + 0.05, w), capsule(u, v, cx, hy + 0.05, hx, -0.5, w),
        capsule(u, v, sx, -0.45, hx, -0.5, w), capsule(u, v, hx, -0.5, fx, hy, w),
        capsule(u, v, sx, -0.45, sx - 0.05, -0.72, w), _ell(u, v, sx - 0.05, -0.76, 0.16, 0.07),
        capsule(u, v, hx, -0.5, hx + 0.02, -0.8, w), capsule(u, v, hx - 0.12, -0.82, hx + 0.18, -0.86, w),
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
        capsule(u, v, m, 0.45, m, -0.95, 0.045),
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
        capsule(u, v, -0.55 * a, 0.85, -0.92 * a, 0.1 + j(0.2), 0.06),
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
        capsule(u, v, 0.42 * a, -0.2, hx, -0.38, 0.18),
        _legs(u, v, a, (-0.55, -0.4, 0.3, 0.45), 0.15, 0.98, 0.075, j),
        capsule(u, v, -0.68 * a, -0.25, -0.76 * a, 0.45, 0.03),
        capsule(u, v, hx - 0.05, -0.6, hx - 0.12, -0.78, 0.03), capsule(u, v, hx + 0.05, -0.6, hx + 0.12, -0.78, 0.03),
    )


def _diningtable(u, v, a, j):
    top = 0.6 + j(0.1)
    return _union(
        _poly(u, v, [(-0.85 * a, -1.0), (0.85 * a, -1.0), (a, -1.0 + top), (-a, -1.0 + top)]),
        _box(u, v, -0.95 * a, -1.0 + top, 0.95 * a, -0.85 + top),
        _legs(u, v, a, (-0.88, 0.88), -0.9 + top, 1.0, 0.08, j),
        _legs(u, v, a, (-0.6, 0.6), -0.9 + top, 0.75, 0.065, j),
    )


def _dog(u, v, a, j):
    hx = 0.68 * a
    return _union(
        _ell(u, v, -0.05 * a, -0.05, 0.55 * a, 0.33),
        _ell(u, v, hx, -0.45, 0.2 * a, 0.27),
        _ell(u, v, hx + 0.15 * a, -0.35, 0.15 * a, 0.12),
        _ell(u, v, hx - 0.12 * a, -0.35, 0.07 * a, 0.25),
        _legs(u, v, a, (-0.45, -0.3, 0.28, 0.42), 0.15, 1.0, 0.09, j),
        capsule(u, v, -0.55 * a, -0.15, -0.92 * a, -0.7 + j(0.2), 0.05),
    )


def _horse(u, v, a, j):
    return _union(
        _ell(u, v, -0.1 * a, -0.1, 0.55 * a, 0.36),
        capsule(u, v, 0.3 * a, -0.2, 0.6 * a, -0.75, 0.18),
        capsule(u, v, 0.6 * a, -0.82, 0.88 * a, -0.55 + j(0.1), 0.13),
        _legs(u, v, a, (-0.48, -0.35, 0.22, 0.32), 0.1, 1.0, 0.085, j),
        capsule(u, v, -0.58 * a, -0.2, -0.75 * a, 0.45, 0.07),
    )


def _motorbike(u, v, a, j):
    r = 0.45
    wx, wy = a - r - 0.02, 1.0 - r - 0.02
    return _union(
        _ell(u, v, -wx, wy, r, r), _ell(u, v, wx, wy, r, r),
        _poly(u, v, [(-0.45 * a, 0.25), (0.35 * a, 0.15), (0.25 * a, -0.35), (-0.3 * a, -0.3)]),
        _ell(u, v, -0.3 * a, -0.42, 0.35 * a, 0.1),
        capsule(u, v, wx, wy, 0.4 * a, -0.7, 0.06),
        capsule(u, v, 0.3 * a, -0.8 + j(0.05), 0.55 * a, -0.75, 0.05),
        _ell(u, v, 0.0, 0.25, 0.22 * a, 0.25),
    )


def _person(u, v, a, j):
    return _union(
        _ell(u, v, 0.0, -0.83, 0.16, 0.16),
        _box(u, v, -0.06, -0.72, 0.06, -0.6),
        _box(u, v, -0.6 * a, -0.66, 0.6 * a, 0.15, 0.1 * a),
        capsule(u, v, -0.55 * a, -0.58, -0.85 * a + j(0.12) * a, 0.1 + j(0.1), 0.065),
        capsule(u, v, 0.55 * a, -0.58, 0.85 * a + j(0.12) * a, 0.1 + j(0.1), 0.065),
        capsule(u, v, -0.25 * a, 0.1, -0.4 * a + j(0.2) * a, 0.98, 0.095),
        capsule(u, v, 0.25 * a, 0.1, 0.4 * a + j(0.2) * a, 0.98, 0.095),
    )


def _pottedplant(u, v, a, j):
    lobes, phase, depth = int(5 + abs(j(3.0))), j(math.pi), 0.22 + j(0.08)
    return _union(
        _poly(u, v, [(-0.55 * a, 0.38), (0.55 * a, 0.38), (0.4 * a, 1.0), (-0.4 * a, 1.0)]),
        capsule(u, v, 0.0, 0.38, 0.0, -0.1, 0.05),
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
        capsule(u, v, 0.25 * a, -0.05, 0.6 * a, -0.85, 0.1),
        _ell(u, v, 0.72 * a, -0.88, 0.26 * a, 0.1),
        _legs(u, v, a, (-0.55, -0.4, 0.1, 0.25), 0.15, 1.0, 0.05, j),
    )


def _kite(u, v, a, j):
    w = 0.4 * a + j(0.1) * a
    return _union(
        _poly(u, v, [(0.0, -1.0), (a, -0.45), (0.0, 0.3), (-a, -0.45)]),
        capsule(u, v, 0.0, 0.3, w, 0.55, 0.025), capsule(u, v, w, 0.55, -w, 0.78, 0.025),
        capsule(u, v, -w, 0.78, 0.0, 1.0, 0.025),
        _poly(u, v, [(w - 0.1, 0.45), (w + 0.1, 0.45), (w, 0.55)]),
    )


def _clock(u, v, a, j):
    return _ell(u, v, 0.0, 0.05, a, 0.95) | _box(u, v, -0.08, -1.0, 0.08, -0.8)


def _umbrella(u, v, a, j):
    canopy = _ell(u, v, 0.0, -0.1, a, 0.9) & (v <= -0.1)
    scallops = _union(*[_ell(u, v, x, -0.1, a / 4, 0.12) for x in (-0.75 * a, -0.25 * a, 0.25 * a, 0.75 * a)])
    return _union(
        canopy & ~scallops,
        capsule(u, v, 0.0, -0.2, 0.0, 0.85, 0.045),
        capsule(u, v, 0.0, 0.85, 0.12, 0.98, 0.045), capsule(u, v, 0.12, 0.98, 0.22, 0.85, 0.045),
    )


def _banana(u, v, a, j):
    t = 0.45 + j(0.08)
    return (_ell(u, v, 0.0, -0.4, a, 1.4) & ~_ell(u, v, 0.0, -0.4 - t, 0.92 * a, 1.4)) | capsule(
        u, v, -a + 0.1, 0.2, -a + 0.05, -0.05, 0.06)


def _donut(u, v, a, j):
    hole = 0.32 + j(0.06)
    return _ell(u, v, 0.0, 0.0, a, 1.0) & ~_ell(u, v, 0.0, 0.0, hole * a, hole)


# Each class's shape by class name (catalogue.CLASS_SPECS reads it).
SHAPES: dict[str, Callable] = {
    "aeroplane": _aeroplane,
    "bicycle": _bicycle,
    "bird": _bird,
    "boat": _boat,
    "bottle": _bottle,
    "bus": _bus,
    "car": _car,
    "cat": _cat,
    "chair": _chair,
    "cow": _cow,
    "diningtable": _diningtable,
    "dog": _dog,
    "horse": _horse,
    "motorbike": _motorbike,
    "person": _person,
    "pottedplant": _pottedplant,
    "sheep": _sheep,
    "sofa": _sofa,
    "train": _train,
    "tvmonitor": _tvmonitor,
    "giraffe": _giraffe,
    "kite": _kite,
    "clock": _clock,
    "umbrella": _umbrella,
    "banana": _banana,
    "donut": _donut,
}
