"""Textures: colours, smooth random fields, the background families and the object patterns."""

from __future__ import annotations

import colorsys

import numpy as np

from .catalogue import ClassSpec

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


