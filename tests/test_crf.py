"""DenseCRF wrapper: shapes, normalisation, a clear-cut unary survives, odd inputs, the order of
the five parameters as handed to pydensecrf."""

from __future__ import annotations

import numpy as np
import pytest

from bana_core.crf import crf_label, dense_crf


def _two_region(h: int = 30, w: int = 40):
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (200, 30, 30)
    image[:, w // 2:] = (30, 30, 200)
    probs = np.zeros((3, h, w), np.float32)
    probs[0, :, : w // 2] = 0.9
    probs[1, :, w // 2:] = 0.9
    probs[2] = 0.1
    return image, probs


def test_shape_dtype_and_normalised():
    image, probs = _two_region()
    q = dense_crf(image, probs)
    assert q.shape == probs.shape and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)
    assert q.min() >= 0


def test_clear_cut_unary_preserved():
    image, probs = _two_region()
    lab = crf_label(image, probs, params=(4, 55, 3, 3, 3))
    expected = np.zeros(lab.shape, int)
    expected[:, 20:] = 1
    assert np.array_equal(lab, expected)
    # a lone noisy pixel of the wrong label is smoothed away by the pairwise terms
    probs[:, 10, 5] = (0.3, 0.35, 0.35)
    assert crf_label(image, probs)[10, 5] == 0


def test_single_label_and_non_contiguous_inputs():
    image, probs = _two_region()
    q = dense_crf(image, np.ones((1, 30, 40), np.float32))
    assert q.shape == (1, 30, 40)
    np.testing.assert_allclose(q, 1.0, atol=1e-5)
    flipped = image[:, ::-1]  # negative strides
    probs_t = np.ascontiguousarray(probs.transpose(0, 2, 1)).transpose(0, 2, 1)[:, :, ::-1]
    lab = crf_label(flipped, probs_t)
    expected = np.ones(lab.shape, int)
    expected[:, 20:] = 0
    assert np.array_equal(lab, expected)


def test_bad_shapes_raise():
    image, probs = _two_region()
    with pytest.raises(ValueError, match="match probs"):
        dense_crf(image[:10], probs)
    with pytest.raises(ValueError, match=r"\[L, H, W\]"):
        dense_crf(image, probs[0])
    with pytest.raises(ValueError, match="params"):
        dense_crf(image, probs, params=(4, 55, 3))


def test_params_reach_pydensecrf_in_order(monkeypatch):
    # (bi_w, bi_xy, bi_rgb, pos_w, pos_xy) as the released DENSE_CRF hands them on: Gaussian
    # kernel (sxy=pos_xy, compat=pos_w), bilateral kernel (sxy=bi_xy, srgb=bi_rgb, compat=bi_w)
    import pydensecrf.densecrf as dcrf

    calls = {}
    real = dcrf.DenseCRF2D

    class Spy:  # a wrapper: pydensecrf's DenseCRF2D builds its C++ object only for itself, not subclasses
        def __init__(self, *args):
            self.crf = real(*args)

        def __getattr__(self, name):
            return getattr(self.crf, name)

        def addPairwiseGaussian(self, sxy, compat, *args, **kwargs):
            calls["gaussian"] = dict(sxy=sxy, compat=compat)
            return self.crf.addPairwiseGaussian(sxy, compat, *args, **kwargs)

        def addPairwiseBilateral(self, sxy, srgb, rgbim, compat, *args, **kwargs):
            calls["bilateral"] = dict(sxy=sxy, srgb=srgb, compat=compat, rgbim=rgbim)
            return self.crf.addPairwiseBilateral(sxy, srgb, rgbim, compat, *args, **kwargs)

    monkeypatch.setattr(dcrf, "DenseCRF2D", Spy)
    image, probs = _two_region()
    q = dense_crf(image, probs, params=(5, 50, 7, 2, 3), n_iter=2)
    assert q.shape == probs.shape
    assert calls["gaussian"] == dict(sxy=3.0, compat=2.0)
    bilateral = calls["bilateral"]
    np.testing.assert_array_equal(bilateral.pop("rgbim"), image)  # the RGB image as given
    assert bilateral == dict(sxy=50.0, srgb=7.0, compat=5.0)
