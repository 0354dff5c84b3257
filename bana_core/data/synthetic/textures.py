"""Textures: colours, smooth random fields and the background families."""

from __future__ import annotations

import colorsys

import numpy as np


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return 255.0 * np.array(colorsys.hsv_to_rgb((h / 360.0) % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def fourier_noise(rng: np.random.Generator, x, y, period: float, n: int = 8) -> np.ndarray:
    """Smooth random field of roughly unit variance: a sum of n random plane waves."""
    theta = rng.uniform(0, 2 * np.pi, n)
    freq = 2 * np.pi / (period * rng.uniform(0.6, 1.6, n))
    phase = rng.uniform(0, 2 * np.pi, n)
    kx, ky = (freq * np.cos(theta))[:, None, None], (freq * np.sin(theta))[:, None, None]
    return np.sqrt(2.0 / n) * np.cos(kx * x[None] + ky * y[None] + phase[:, None, None]).sum(0)


def _grid_noise(rng: np.random.Generator, h: int, w: int, period: float, n: int = 8) -> np.ndarray:
    """``fourier_noise`` on the H x W pixel grid (x = column, y = row), the same draws and field,
    as cos(a + b) = cos a cos b - sin a sin b: two rank-n products, n (H + W) cosines, not n H W."""
    theta = rng.uniform(0, 2 * np.pi, n)
    freq = 2 * np.pi / (period * rng.uniform(0.6, 1.6, n))
    phase = rng.uniform(0, 2 * np.pi, n)
    ax = np.outer(np.arange(w), freq * np.cos(theta)) + phase  # W x n
    by = np.outer(np.arange(h), freq * np.sin(theta))          # H x n
    return np.sqrt(2.0 / n) * (np.cos(by) @ np.cos(ax).T - np.sin(by) @ np.sin(ax).T)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.6), rng.uniform(0.25, 0.9))


# Background families. The generic ones carry no context (random colours); the others are the
# settings classes prefer (ClassSpec.context), each with its own colours and texture.
GENERIC_FAMILIES = ("noise", "stripes", "gradient", "blotches", "horizon")
CONTEXT_FAMILIES = ("sky", "water", "grass", "indoor", "road", "rail")
FAMILIES = CONTEXT_FAMILIES + GENERIC_FAMILIES


def generic_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured H x W x 3 float background from a generic family (the pretraining images')."""
    return render_background(rng, h, w, str(rng.choice(list(GENERIC_FAMILIES))))


def _upper(rng: np.random.Generator, y, h: int, w: int, lo: float, hi: float) -> np.ndarray:
    """A wavy horizontal line at lo..hi of the height: True below it."""
    line = h * rng.uniform(lo, hi) + rng.uniform(0.5, 3) * _grid_noise(rng, 1, w, 30.0)[0]
    return y > line


def _sky(rng: np.random.Generator, y, h: int, w: int) -> np.ndarray:
    """Blue (or overcast grey) sky, lighter towards the horizon, with soft clouds."""
    hue = rng.uniform(195, 230)
    sat = rng.uniform(0.3, 0.7) if rng.random() < 0.7 else rng.uniform(0.0, 0.1)
    val = rng.uniform(0.6, 0.92)
    top, bottom = hsv(hue, sat, val), hsv(hue + rng.uniform(-10, 10), 0.4 * sat, min(val + 0.12, 1.0))
    img = top + (bottom - top) * (y / h)[..., None]
    cloud = np.clip(_grid_noise(rng, h, w, rng.uniform(25, 60)) - rng.uniform(0.0, 0.8), 0, 1)
    return img + (hsv(0, 0, rng.uniform(0.85, 1.0)) - img) * (rng.uniform(0.3, 0.8) * cloud)[..., None]


def render_background(rng: np.random.Generator, h: int, w: int, family: str) -> np.ndarray:
    """A textured H x W x 3 float background of the given family (one of FAMILIES)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    if family in CONTEXT_FAMILIES:
        return _context_background(rng, x, y, h, w, family)
    c1, c2 = _random_colour(rng), _random_colour(rng)
    if family == "noise":
        n = fourier_noise(rng, x, y, rng.uniform(4, 20))
        img = c1 + rng.uniform(20, 45) * n[..., None] * rng.uniform(0.7, 1.3, 3)
    elif family == "stripes":
        t = rng.uniform(0, np.pi)
        d = x * np.cos(t) + y * np.sin(t) + rng.uniform(1, 4) * fourier_noise(rng, x, y, 20.0)
        m = 0.5 + 0.5 * np.sin(2 * np.pi * d / rng.uniform(5, 25))
        img = c1 + (c2 - c1) * m[..., None]
    elif family == "gradient":
        t = rng.uniform(0, 2 * np.pi)
        d = x * np.cos(t) + y * np.sin(t)
        m = (d - d.min()) / max(np.ptp(d), 1e-9)
        img = c1 + (c2 - c1) * m[..., None] + 10 * fourier_noise(rng, x, y, 3.0)[..., None]
    elif family == "blotches":
        fields = np.stack([fourier_noise(rng, x, y, rng.uniform(12, 35)) for _ in range(3)])
        cols = np.stack([c1, c2, _random_colour(rng)])
        img = cols[fields.argmax(0)] + 8 * fourier_noise(rng, x, y, 3.0)[..., None]
    elif family == "horizon":  # sky above, textured ground below
        line = h * rng.uniform(0.3, 0.7) + rng.uniform(1, 5) * fourier_noise(rng, x, np.zeros_like(y), 30.0)
        sky = c1 + (y / h)[..., None] * 40
        ground = c2 + 30 * fourier_noise(rng, x, y, rng.uniform(3, 10))[..., None]
        img = np.where((y > line)[..., None], ground, sky)
    else:
        raise ValueError(f"unknown background family {family!r} (known: {', '.join(FAMILIES)})")
    return img


def _context_background(rng: np.random.Generator, x, y, h: int, w: int, family: str) -> np.ndarray:
    grain = _grid_noise(rng, h, w, rng.uniform(2, 5))[..., None]  # fine texture of every family
    if family == "sky":
        return _sky(rng, y, h, w) + 4 * grain
    if family == "water":  # horizontal ripples, darker towards the viewer; sometimes a sky strip
        c = hsv(rng.uniform(180, 220), rng.uniform(0.35, 0.75), rng.uniform(0.3, 0.62))
        ripple = np.sin(2 * np.pi * (y + 2.5 * _grid_noise(rng, h, w, 25.0)) / rng.uniform(3, 8))
        img = c * (1.1 - 0.25 * (y / h))[..., None] + rng.uniform(10, 25) * ripple[..., None] + 5 * grain
        if rng.random() < 0.4:
            img = np.where(_upper(rng, y, h, w, 0.1, 0.3)[..., None], img, _sky(rng, y, h, w))
        return img
    if family == "grass":  # green field, coarse and fine variation; sometimes sky above
        c = hsv(rng.uniform(70, 125), rng.uniform(0.35, 0.75), rng.uniform(0.3, 0.62))
        img = c + rng.uniform(12, 25) * _grid_noise(rng, h, w, rng.uniform(15, 35))[..., None] \
            + rng.uniform(12, 25) * grain
        if rng.random() < 0.5:
            img = np.where(_upper(rng, y, h, w, 0.1, 0.35)[..., None], img, _sky(rng, y, h, w))
        return img
    if family == "indoor":  # a wall (plain or papered) over a wooden or carpeted floor
        wall = hsv(rng.uniform(15, 55) if rng.random() < 0.7 else rng.uniform(0, 360),
                    rng.uniform(0.05, 0.4), rng.uniform(0.5, 0.9))
        wall = wall + rng.uniform(0, 12) * np.sin(2 * np.pi * x / rng.uniform(4, 12))[..., None]
        floor = hsv(rng.uniform(18, 38), rng.uniform(0.35, 0.7), rng.uniform(0.28, 0.55))
        planks = np.sin(2 * np.pi * (y + 1.5 * _grid_noise(rng, h, w, 15.0)) / rng.uniform(4, 9))
        floor = floor + rng.uniform(6, 18) * planks[..., None]
        return np.where(_upper(rng, y, h, w, 0.5, 0.85)[..., None], floor, wall) + 5 * grain
    if family == "road":  # asphalt with a dashed lane line; buildings or sky above
        img = hsv(0, rng.uniform(0.0, 0.08), rng.uniform(0.25, 0.5)) + rng.uniform(8, 16) * grain
        lane_y = h * rng.uniform(0.65, 0.9)
        dash = (np.abs(y - lane_y) < rng.uniform(0.8, 2.0)) & (np.sin(2 * np.pi * x / rng.uniform(15, 30)) > 0)
        paint = hsv(50, 0.8, 0.9) if rng.random() < 0.3 else hsv(0, 0, 0.92)
        img = np.where(dash[..., None], paint, img)
        if rng.random() < 0.6:
            blocks = np.floor(x / rng.uniform(15, 40))
            tone = 0.55 + 0.35 * np.sin(blocks * 12.9898 + rng.uniform(0, 6.3))  # one tone per block
            above = hsv(rng.uniform(10, 40), rng.uniform(0.1, 0.35), 0.8)[None, None] * tone[..., None]
            img = np.where(_upper(rng, y, h, w, 0.2, 0.45)[..., None], img, above + 5 * grain)
        return img
    # rail: ballast with two steel rails and sleepers near the bottom, greenery above
    img = hsv(rng.uniform(20, 40), rng.uniform(0.1, 0.25), rng.uniform(0.35, 0.55)) + rng.uniform(15, 25) * grain
    y0 = h * rng.uniform(0.72, 0.88)
    sleepers = (np.abs(y - y0 - 2) < 4) & (np.sin(2 * np.pi * x / rng.uniform(5, 9)) > 0.3)
    img = np.where(sleepers[..., None], hsv(25, 0.45, 0.3), img)
    rails = (np.abs(y - y0) < 0.9) | (np.abs(y - y0 - 4) < 0.9)
    img = np.where(rails[..., None], hsv(210, 0.05, rng.uniform(0.55, 0.75)), img)
    above = hsv(rng.uniform(80, 130), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.55)) \
        + 18 * _grid_noise(rng, h, w, 10.0)[..., None]
    return np.where(_upper(rng, y, h, w, 0.3, 0.55)[..., None], img, above)
