"""Scene composition: place objects, occlude, paint them over a background."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...classes import VOC_CLASS_TO_INDEX
from .catalogue import CLASS_SPECS, UNSEEN_SPECS, VOC_SPECS
from .textures import _background, _fourier_noise, _hsv, _pattern

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


def _image_mask(obj: _Placed, h: int, w: int) -> np.ndarray:
    """The object's (unoccluded) mask in image coordinates."""
    mask = np.zeros((h, w), dtype=bool)
    mask[obj.ys, obj.xs] = obj.mask
    return mask


