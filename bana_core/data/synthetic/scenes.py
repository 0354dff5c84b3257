"""Scene composition: place objects, occlude, paint them over a background."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ...classes import VOC_CLASS_TO_INDEX
from .catalogue import CLASS_SPECS, UNSEEN_SPECS, VOC_SPECS, ClassSpec
from .shapes import capsule
from .textures import FAMILIES, fourier_noise, hsv, render_background


# Scenes let up to 60 % of an object's half-extent leave the image (VOC objects are often cut by
# the frame; at 40 % the box-fill baseline sat 1 point lower); pretraining keeps 40 %.
_SCENE_INSIDE = 0.4


@dataclass(frozen=True)
class World:
    """The phenomena of the synthetic world, each the probability of a seeded draw.

    ``context``: a scene's background is one of its main (largest visible) object's preferred
    families (ClassSpec.context), else a family drawn uniformly from all of them. Per object:
    ``camouflage``: it takes most of its colours and texture from what lies around it;
    ``soft_edges``: its boundary is blurred and it may cast a soft shadow; ``holes``: 1-2
    see-through holes; ``thin_parts``: 1-3 parts 1-2 px wide, struts across the object
    (spokes, rigging) or short spikes out of it (antennae, masts).
    Labels stay hard and exact: these change what the image shows, never what is annotated.
    ``object_scale`` multiplies every object's drawn box area (a share of the image, log-uniform
    in [0.05, 0.5] for a scene's first object and [0.02, 0.5] for the others at 1): the world's
    foreground share, calibrated to VOC's (docs/synthetic_world.md): 2 gives about 25 % of
    val's labelled pixels, as in VOC 2012 (1 gave 15 %).
    The defaults are the demo's (config/schema.yaml gives the same, a test checks it).
    """

    context: float = 0.8
    camouflage: float = 0.2
    soft_edges: float = 0.4
    holes: float = 0.1
    thin_parts: float = 0.2
    object_scale: float = 2.0

    @classmethod
    def from_settings(cls, settings: dict) -> "World":
        """The world of a ``dataset.synthetic`` config block (its other keys are sizes and seed)."""
        return cls(**{k: settings[k] for k in cls.__dataclass_fields__ if k in settings})

    def __post_init__(self):
        for name, value in vars(self).items():
            if name == "object_scale":
                if not value > 0:
                    raise ValueError(f"World.object_scale must be positive, got {value}")
            elif not 0.0 <= value <= 1.0:
                raise ValueError(f"World.{name} is a probability, got {value}")


TRAITS = ("camouflage", "soft_edges", "holes", "thin_parts")


@dataclass
class Placed:
    spec: int                 # index into CLASS_SPECS
    ys: slice
    xs: slice
    u: np.ndarray
    v: np.ndarray
    mask: np.ndarray          # bool, window-sized (before occlusion)
    group: int = -1           # >= 0: member of a crowd region
    traits: tuple[str, ...] = ()


def place_object(rng: np.random.Generator, spec_index: int, h: int, w: int, *, area: float,
           centre: tuple[float, float] | None = None, inside: float = 0.6,
           world: World | None = None) -> Placed | None:
    """Rasterise one object of the given box-area fraction (None if it falls outside the image).

    Without a ``centre``, at least ``inside`` of each half-extent stays in the image.

    With a ``world``, the object may get holes and thin parts (drawn after its shape, so the
    draws before them, and ``world=None``'s output, do not depend on the world).
    """
    spec = CLASS_SPECS[spec_index]
    a = rng.uniform(*spec.aspect)
    half = math.sqrt(area * w * h / (4 * a))
    half = min(half, 0.55 * h, 0.55 * w / a)
    if centre is None:
        mx, my = inside * a * half, inside * half
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
    traits: list[str] = []
    if world is not None:
        if rng.random() < world.holes and _cut_holes(rng, mask, half):
            traits.append("holes")
        if rng.random() < world.thin_parts:
            _add_thin_parts(rng, mask, dx, dy)
            traits.append("thin_parts")
    return Placed(spec_index, slice(y0, y1), slice(x0, x1), u, v, mask, traits=tuple(traits))


def _cut_holes(rng: np.random.Generator, mask: np.ndarray, half: float) -> bool:
    """Cut 1-2 elliptical holes, each enclosed by the object (in place). False if none fits."""
    yy, xx = np.indices(mask.shape)
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # px to the nearest non-object px
    cut = False
    for _ in range(1 + int(rng.random() < 0.4)):
        r = rng.uniform(0.12, 0.3) * half
        ry = r * rng.uniform(0.7, 1.3)
        inner = np.flatnonzero(depth >= max(r, ry) + 1.5)  # leaves a rim of object around the hole
        if r < 1.0 or inner.size == 0:
            continue
        cy, cx = np.unravel_index(inner[rng.integers(inner.size)], mask.shape)
        mask &= ((yy - cy) / ry) ** 2 + ((xx - cx) / r) ** 2 > 1.0
        cut = True
    return cut


def _add_thin_parts(rng: np.random.Generator, mask: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> None:
    """Add 1-3 straight parts 1-2 px wide (in place): struts between two points of the object
    (spokes, rigging, leashes), or short spikes leaving it outwards (antennae, masts, poles)."""
    ys, xs = np.nonzero(mask)
    px_all, py_all = dx[ys, xs], dy[ys, xs]
    centre_x, centre_y = px_all.mean(), py_all.mean()
    half_extent = max(np.ptp(px_all), np.ptp(py_all), 4.0) / 2
    for _ in range(int(rng.integers(1, 4))):
        i, j = rng.integers(ys.size, size=2)
        px, py = px_all[i], py_all[i]
        if rng.random() < 0.5:
            ex, ey = px_all[j], py_all[j]
        else:
            angle = math.atan2(py - centre_y, px - centre_x) + rng.uniform(-0.6, 0.6)
            length = rng.uniform(0.2, 0.5) * half_extent
            ex, ey = px + length * math.cos(angle), py + length * math.sin(angle)
        mask |= capsule(dx, dy, px, py, ex, ey, rng.uniform(0.6, 0.9))  # >= 0.6: 8-connected at any angle


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
        return (fourier_noise(rng, u, v, p) > 0.7).astype(float)
    if kind == "checker":
        return ((np.floor(u / p) + np.floor(v / p)) % 2).astype(float)
    if kind == "noise":
        return np.clip(0.5 + 0.35 * fourier_noise(rng, u, v, p), 0, 1)
    if kind == "gradient":
        return np.clip((v + 1) / 2 + 0.1 * fourier_noise(rng, u, v, 0.5), 0, 1)
    if kind == "dial":  # dark rim and two hands on a light face
        t = rng.uniform(0, 2 * np.pi, 2)
        hands = [np.abs(u * np.sin(a) - v * np.cos(a)) < 0.06 for a in t]
        along = [(u * np.cos(a) + v * np.sin(a)) for a in t]
        face = (hands[0] & (along[0] > -0.05) & (along[0] < 0.7)) | (hands[1] & (along[1] > -0.05) & (along[1] < 0.5))
        return ((np.hypot(u, v) > p) | face).astype(float)
    if kind == "split":
        return (v > p + rng.uniform(-0.1, 0.1)).astype(float)
    raise ValueError(f"unknown pattern {kind!r}")


def paint_object(rng: np.random.Generator, img: np.ndarray, obj: Placed, visible: np.ndarray, *,
           camouflage: bool = False, soft: bool = False) -> None:
    """Colour an object's visible pixels (class colours + pattern + shading) into img.

    ``camouflage``: the colour is mostly the canvas a few pixels away (same colours and texture
    as the surroundings, so the outline barely shows). ``soft``: the object is blended in through
    a blurred copy of its mask, after darkening the canvas with a blurred, offset shadow.
    """
    spec = CLASS_SPECS[obj.spec]
    hue = spec.hue + rng.uniform(-spec.hue_jitter, spec.hue_jitter)
    sat = spec.sat + rng.uniform(-0.12, 0.12)
    c1 = hsv(hue, sat, spec.val + rng.uniform(-0.12, 0.12))
    c2 = hsv(hue + spec.hue2 + rng.uniform(-10, 10), (spec.sat2 if spec.sat2 is not None else sat),
              spec.val2 + rng.uniform(-0.1, 0.1))
    t = _pattern(rng, spec, obj.u, obj.v)[..., None]
    colour = c1 * (1 - t) + c2 * t
    light = rng.uniform(0, 2 * np.pi)
    shade = 1.0 + 0.15 * (np.cos(light) * obj.u + np.sin(light) * obj.v) / (1 + np.abs(obj.u).max())
    colour = colour * shade[..., None] + 6 * fourier_noise(rng, obj.u, obj.v, 0.4)[..., None]
    h, w = img.shape[:2]
    if camouflage:
        oy, ox = rng.integers(3, 9, 2) * rng.choice([-1, 1], 2)
        rows = np.clip(np.arange(obj.ys.start, obj.ys.stop) + oy, 0, h - 1)
        cols = np.clip(np.arange(obj.xs.start, obj.xs.stop) + ox, 0, w - 1)
        mix = rng.uniform(0.6, 0.85)
        colour = (1 - mix) * colour + mix * img[rows[:, None], cols[None, :]]
    if not soft:
        window = img[obj.ys, obj.xs]
        window[visible] = colour[visible]
        return
    sigma = rng.uniform(0.7, 1.8)
    if rng.random() < 0.6:  # a soft shadow, offset down and sideways
        full = np.zeros((h, w))
        full[obj.ys, obj.xs] = obj.mask
        oy, ox = int(rng.integers(1, 5)), int(rng.integers(-4, 5))
        shadow = np.zeros((h, w))
        shadow[oy:, max(ox, 0):w + min(ox, 0)] = full[:h - oy, max(-ox, 0):w - max(ox, 0)]
        img *= 1.0 - rng.uniform(0.3, 0.55) * ndimage.gaussian_filter(shadow, 1.5 * sigma)[..., None]
    alpha = ndimage.gaussian_filter(obj.mask.astype(np.float64), sigma, mode="nearest")[..., None]
    window = img[obj.ys, obj.xs]
    window += alpha * (colour - window)


@dataclass
class Scene:
    """One rendered image with its instances (index k in ``instances`` is instance id k + 1)."""

    image: np.ndarray         # H x W x 3 uint8
    instances: np.ndarray     # H x W int32: 0 background, k + 1 = instances[k]
    specs: list[int]          # CLASS_SPECS index per instance
    groups: list[int]         # crowd group per instance (-1 = an individual object)
    background: str = ""      # background family (textures.FAMILIES)
    main: int = 0             # the instance (index k) whose class set the context: the largest
    traits: list[tuple[str, ...]] = field(default_factory=list)  # per instance, a subset of TRAITS


def _occlusion(objs: list[Placed], h: int, w: int) -> np.ndarray:
    inst = np.zeros((h, w), dtype=np.int32)
    for k, o in enumerate(objs):  # later objects on top
        inst[o.ys, o.xs][o.mask] = k + 1
    return inst


def _compose(rng: np.random.Generator, h: int, w: int, wanted: list[tuple[int, float, int]],
             crowd_centre: tuple[float, float] | None, forced: int | None, world: World) -> Scene | None:
    """Place, occlude, drop barely visible objects, paint. None if the forced class got lost."""
    objs: list[Placed] = []
    for spec_index, area, group in wanted:
        centre = None
        if group >= 0 and crowd_centre is not None:
            centre = (crowd_centre[0] + rng.normal(0, 0.08 * w), crowd_centre[1] + rng.normal(0, 0.05 * h))
        o = place_object(rng, spec_index, h, w, area=area * world.object_scale, centre=centre, inside=_SCENE_INSIDE,
                   world=world)
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
    main = int(np.argmax(np.bincount(inst.ravel(), minlength=len(objs) + 1)[1:]))
    if rng.random() < world.context:
        family = str(rng.choice(list(CLASS_SPECS[objs[main].spec].context)))
    else:
        family = str(rng.choice(list(FAMILIES)))
    img = render_background(rng, h, w, family)
    traits = []
    for k, o in enumerate(objs):
        camouflage, soft = rng.random() < world.camouflage, rng.random() < world.soft_edges
        paint_object(rng, img, o, inst[o.ys, o.xs] == k + 1, camouflage=camouflage, soft=soft)
        traits.append(o.traits + ("camouflage",) * camouflage + ("soft_edges",) * soft)
    img = img + rng.normal(0, 3.0, img.shape)  # sensor noise
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Scene(image, inst, [o.spec for o in objs], [o.group for o in objs], family, main, traits)


_VOC_WEIGHTS = np.array([s.weight for s in VOC_SPECS]) / sum(s.weight for s in VOC_SPECS)
_N_OBJECTS_P = np.array([0.38, 0.3, 0.2, 0.12])  # 1..4 objects before occlusion drops some


def render_scene(rng: np.random.Generator, size: tuple[int, int], *, coco: bool = False,
                 forced: int | None = None, crowd: bool = False, world: World | None = None) -> Scene:
    """Render one scene of size (W, H): 1-4 objects (VOC classes, plus unseen ones when coco).

    ``forced`` (a CLASS_SPECS index) must occur; ``crowd`` adds a cluster of small objects of
    one class that COCO annotates as a single iscrowd region. ``world``: the phenomena and their
    rates (None: the demo's, ``World()``).
    """
    world = World() if world is None else world
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
        scene = _compose(rng, h, w, wanted, centre, forced, world)
        if scene is not None and (not crowd or 0 in scene.groups):
            return scene
    raise RuntimeError("could not compose a scene (image too small?)")  # pragma: no cover


def jitter_image_size(rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int]:
    """VOC-like size jitter: +-15 % per side, and some portrait images."""
    w, h = (max(16, int(round(s * rng.uniform(0.85, 1.15)))) for s in size)
    return (h, w) if rng.random() < 0.15 else (w, h)


def instance_boxes(inst: np.ndarray, n: int) -> np.ndarray:
    """Tight half-open boxes (x1, y1, x2, y2) of instance ids 1..n."""
    objs = ndimage.find_objects(inst, max_label=n)
    return np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in objs], dtype=np.int64).reshape(-1, 4)


def placed_mask(obj: Placed, h: int, w: int) -> np.ndarray:
    """The object's (unoccluded) mask in image coordinates."""
    mask = np.zeros((h, w), dtype=bool)
    mask[obj.ys, obj.xs] = obj.mask
    return mask


