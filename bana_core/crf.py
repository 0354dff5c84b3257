"""Fully connected CRF (Krähenbühl & Koltun) through pydensecrf, as the released BANA code uses it."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["dense_crf", "crf_label"]

_CLIP = 1e-5  # probabilities are clipped away from 0 before -log (pydensecrf's default)


def dense_crf(image: np.ndarray, probs: np.ndarray, *, params: Sequence[float] = (4, 55, 3, 3, 3),
              n_iter: int = 10) -> np.ndarray:
    """Mean-field DenseCRF marginals ``[L, H, W]`` float32 from softmax-like ``probs`` ``[L, H, W]``.

    ``params = (bi_w, bi_xy, bi_rgb, pos_w, pos_xy)``: bilateral kernel weight (Potts compat),
    its spatial and colour std, Gaussian kernel weight and spatial std. Stage 2 uses
    (4, 55, 3, 3, 3); the unary is ``-log(clip(probs, 1e-5, 1))``.
    """
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    probs = np.asarray(probs, dtype=np.float32)
    image = np.asarray(image)
    if probs.ndim != 3:
        raise ValueError(f"probs must be [L, H, W], got shape {probs.shape}")
    n_labels, h, w = probs.shape
    if image.shape != (h, w, 3):
        raise ValueError(f"image must be {h}x{w}x3 to match probs, got shape {image.shape}")
    if len(params) != 5:
        raise ValueError(f"params must be (bi_w, bi_xy, bi_rgb, pos_w, pos_xy), got {params!r}")
    bi_w, bi_xy, bi_rgb, pos_w, pos_xy = (float(p) for p in params)
    unary = np.ascontiguousarray(unary_from_softmax(probs, clip=_CLIP))
    rgb = np.ascontiguousarray(image, dtype=np.uint8)
    d = dcrf.DenseCRF2D(w, h, n_labels)
    d.setUnaryEnergy(unary)
    d.addPairwiseGaussian(sxy=pos_xy, compat=pos_w)
    d.addPairwiseBilateral(sxy=bi_xy, srgb=bi_rgb, rgbim=rgb, compat=bi_w)
    q = d.inference(int(n_iter))
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)


def crf_label(image: np.ndarray, probs: np.ndarray, *, params: Sequence[float] = (4, 55, 3, 3, 3),
              n_iter: int = 10) -> np.ndarray:
    """Argmax over labels of :func:`dense_crf` (``int64 [H, W]`` indices into ``probs``)."""
    return dense_crf(image, probs, params=params, n_iter=n_iter).argmax(0)
