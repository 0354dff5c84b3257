"""Stage-2 pseudo labels: invariants on a synthetic two-class scene, Eq. 7, the low-res path, and
hand-computed cases of the steps (Eq. 4-6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bana_core.pseudo_labels import (
    background_u0,
    background_unary,
    box_layout,
    class_unaries,
    feature_field,
    make_pseudo_labels,
    pseudo_label_parts,
    retrieval_prototypes,
    upsample_matrix,
)

H, W, C = 48, 64, 8
BOXES = np.array([[4, 6, 30, 40, 3], [34, 10, 60, 44, 7]])


def _scene(seed: int = 0):
    """Background, a disc of class 3 in box 0 and a square of class 7 in box 1.

    Features: one direction per label plus a little noise; classifier rows = those directions.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    gt = np.zeros((H, W), np.uint8)
    gt[(yy - 23) ** 2 + (xx - 17) ** 2 <= 10 ** 2] = 3
    gt[16:38, 40:54] = 7
    direction = {0: 0, 3: 1, 7: 2}
    feats = np.zeros((C, H, W), np.float32)
    for label, d in direction.items():
        feats[d][gt == label] = 1.0
    feats += rng.normal(0, 0.01, feats.shape).astype(np.float32)
    colours = {0: (120, 120, 120), 3: (200, 40, 40), 7: (40, 40, 200)}
    image = np.zeros((H, W, 3), np.float32)
    for label, col in colours.items():
        image[gt == label] = col
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    weight = torch.zeros(21, C)
    weight[0, 0] = weight[3, 1] = weight[7, 2] = 1.0
    return image, torch.from_numpy(feats), weight, gt


def _in_boxes(boxes, label=None):
    m = np.zeros((H, W), bool)
    for x1, y1, x2, y2, c in boxes:
        if label is None or c == label:
            m[y1:y2, x1:x2] = True
    return m


@pytest.mark.parametrize("crf", [None, (4, 55, 3, 3, 3)])
def test_invariants_on_synthetic_scene(crf):
    image, feats, weight, gt = _scene()
    y_crf, y_ret = make_pseudo_labels(image, feats, weight, BOXES, crf=crf)
    union = _in_boxes(BOXES)
    for y in (y_crf, y_ret):
        assert y.shape == (H, W) and y.dtype == np.uint8
        assert set(np.unique(y)) <= {0, 3, 7}  # only present classes, though 21 rows exist
        assert np.all(y[~union] == 0)  # outside every box: background
        assert np.all(~(y == 3) | _in_boxes(BOXES, 3))  # a class only inside its own boxes
        assert np.all(~(y == 7) | _in_boxes(BOXES, 7))
        assert (y[union] == gt[union]).mean() > 0.95  # and it finds the objects
    assert {3, 7} <= set(np.unique(y_crf))


def test_seen_classes_only_change_unseen_ones():
    image, feats, weight, _ = _scene()
    ref = pseudo_label_parts(image, feats, weight, BOXES, crf=None)
    same = pseudo_label_parts(image, feats, weight, BOXES, crf=None, seen_classes=range(1, 21))
    assert np.array_equal(ref["y_crf"], same["y_crf"]) and np.array_equal(ref["y_ret"], same["y_ret"])
    agnostic = pseudo_label_parts(image, feats, weight, BOXES, crf=None, seen_classes=[3])
    assert ref["labels"].tolist() == [0, 3, 7]
    # class 3 (seen) keeps its CAM unary; class 7 (unseen) gets 1 - u0 inside its box, 0 elsewhere
    torch.testing.assert_close(agnostic["u_fg"][0], ref["u_fg"][0])
    mask7 = torch.from_numpy(_in_boxes(BOXES, 7))
    torch.testing.assert_close(agnostic["u_fg"][1], (1 - agnostic["u0"]) * mask7)
    assert not torch.allclose(agnostic["u_fg"][1], ref["u_fg"][1])


def test_unseen_class_without_weight_is_still_labelled():
    image, feats, weight, gt = _scene()
    weight[7] = 0.0  # no usable weight for class 7
    y_seen, _ = make_pseudo_labels(image, feats, weight, BOXES, crf=None)
    y_crf, y_ret = make_pseudo_labels(image, feats, weight, BOXES, crf=None, seen_classes={3})
    obj7 = gt == 7
    assert (y_seen[obj7] == 7).mean() < 0.5  # a zero CAM cannot find it
    assert (y_crf[obj7] == 7).mean() > 0.95  # 1 - u0 does
    assert (y_ret[obj7] == 7).mean() > 0.95


def test_unseen_label_beyond_weight_rows():
    image, feats, weight, gt = _scene()
    boxes = BOXES.copy()
    boxes[1, 4] = 45  # a COCO-like label with no row in the 21-row classifier
    y_crf, y_ret = make_pseudo_labels(image, feats, weight, boxes, crf=None, seen_classes=range(1, 21))
    assert set(np.unique(y_crf)) == {0, 3, 45}
    assert (y_crf[gt == 7] == 45).mean() > 0.95
    with pytest.raises(ValueError, match="no weight"):
        make_pseudo_labels(image, feats, weight, boxes, crf=None)


def test_without_u0_runs_and_differs():
    image, feats, weight, _ = _scene()
    weight[0] = torch.tensor([1.0, -0.5, -0.5, 0, 0, 0, 0, 0])  # a background CAM that is not A
    with_u0 = pseudo_label_parts(image, feats, weight, BOXES, crf=None)
    without = pseudo_label_parts(image, feats, weight, BOXES, crf=None, use_u0=False)
    union = torch.from_numpy(_in_boxes(BOXES))
    assert torch.all(without["unary"][0][~union] == 1) and torch.all(with_u0["unary"][0][~union] == 1)
    assert not torch.allclose(without["unary"][0][union], with_u0["unary"][0][union])
    assert set(np.unique(without["y_crf"])) <= {0, 3, 7}
    assert np.all(without["y_crf"][~union.numpy()] == 0)


def test_upsample_matrix_matches_interpolate():
    torch.manual_seed(0)
    for align in (False, True):
        for (big_h, big_w), (h, w) in [((37, 50), (5, 7)), ((40, 48), (5, 6)), ((4, 5), (6, 9)), ((7, 1), (3, 1))]:
            x = torch.randn(3, h, w)
            uy = upsample_matrix(big_h, h, align_corners=align)
            ux = upsample_matrix(big_w, w, align_corners=align)
            assert uy.shape == (big_h, h)
            ref = F.interpolate(x[None], size=(big_h, big_w), mode="bilinear", align_corners=align)[0]
            assert (uy @ x @ ux.t() - ref).abs().max() < 1e-5


@pytest.mark.parametrize("grid_size,align", [(1, False), (2, False), (3, True)])
def test_low_res_features_equal_upsampled_features(grid_size, align):
    torch.manual_seed(grid_size)
    rng = np.random.default_rng(grid_size)
    image = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    low = torch.randn(16, 6, 8) + 0.5
    weight = torch.randn(21, 16)
    boxes = np.array([[3, 2, 30, 40, 5], [20, 10, 58, 30, 9], [40, 25, 61, 45, 5]])
    big = F.interpolate(low[None], size=(45, 61), mode="bilinear", align_corners=align)[0]
    kw = dict(grid_size=grid_size, crf=None, align_corners=align)
    a = pseudo_label_parts(image, low, weight, boxes, **kw)
    b = pseudo_label_parts(image, big, weight, boxes, **kw)
    for key in ("attention", "u0", "unary", "corr"):
        assert (a[key] - b[key]).abs().max() < 1e-5, key
    assert np.array_equal(a["y_crf"], b["y_crf"]) and np.array_equal(a["y_ret"], b["y_ret"])
    assert set(np.unique(a["y_crf"])) <= {0, 5, 9}


def test_low_res_path_with_crf_and_timings():
    image, feats, weight, _ = _scene()
    low = F.avg_pool2d(feats[None], 8)[0]  # 6 x 8
    big = F.interpolate(low[None], size=(H, W), mode="bilinear", align_corners=True)[0]  # the default
    timings: dict = {}
    a = make_pseudo_labels(image, low, weight, BOXES, timings=timings)
    b = make_pseudo_labels(image, big, weight, BOXES)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert set(timings) == {"setup", "attention", "unaries", "crf", "retrieval"}
    assert all(v >= 0 for v in timings.values())


def test_no_boxes_and_bad_inputs():
    image, feats, weight, _ = _scene()
    y_crf, y_ret = make_pseudo_labels(image, feats, weight, np.zeros((0, 5), int), crf=None)
    assert not y_crf.any() and not y_ret.any()
    with pytest.raises(ValueError, match="uint8"):
        make_pseudo_labels(image.astype(np.float32), feats, weight, BOXES)
    with pytest.raises(ValueError, match="labels"):
        make_pseudo_labels(image, feats, weight, np.array([[0, 0, 4, 4, 0]]))
    with pytest.raises(ValueError, match="channels"):
        make_pseudo_labels(image, feats, weight[:, :4], BOXES)


# -- hand-computed cases of the steps (Eq. 4-6) ------------------------------------------------


def test_u0_cut_at_099_of_max_hand_computed():
    # Eq. 4: A below 0.99 x max(A) -> 0; u0 = A inside the boxes, 1 outside
    attention = torch.tensor([[0.5, 0.995], [1.0, 0.98]])
    inside = torch.tensor([[True, True], [False, True]])
    cut, u0 = background_u0(attention, inside, 0.99)
    torch.testing.assert_close(cut, torch.tensor([[0.0, 0.995], [1.0, 0.0]]))
    torch.testing.assert_close(u0, torch.tensor([[0.0, 0.995], [1.0, 0.0]]))
    cut, u0 = background_u0(attention * 0.5, ~inside, 0.9)  # the cut follows the maximum: 0.45
    torch.testing.assert_close(cut, torch.tensor([[0.0, 0.4975], [0.5, 0.49]]))
    torch.testing.assert_close(u0, torch.tensor([[1.0, 1.0], [0.5, 1.0]]))


def test_attention_and_u0_through_pseudo_label_parts_hand_computed():
    # 2 x 4 image; column 0 is background with f = (1, 0), so the one prototype (grid 1) is (1, 0)
    # and A(p) = ReLU(cos(f(p), (1, 0))) = ReLU(f0) / |f|
    f = torch.tensor([[[1.0, 1.0, 0.0, 1.0], [1.0, -1.0, 1.0, 2.0]],
                      [[0.0, 1.0, 1.0, 0.1], [0.0, 0.0, 0.0, 2.0]]])
    r2 = 1 / math.sqrt(2)
    a = torch.tensor([[1.0, r2, 0.0, 1 / math.sqrt(1.01)], [1.0, 0.0, 1.0, r2]])
    boxes = np.array([[1, 0, 4, 2, 3]])
    parts = pseudo_label_parts(np.zeros((2, 4, 3), np.uint8), f, torch.randn(21, 2), boxes, crf=None)
    keep = a >= 0.99  # max A = 1: 1/sqrt(1.01) = 0.995 stays, 1/sqrt(2) goes
    torch.testing.assert_close(parts["attention"], torch.where(keep, a, torch.zeros(())))
    u0 = torch.where(keep, a, torch.zeros(()))
    u0[:, 0] = 1.0  # outside the box
    torch.testing.assert_close(parts["u0"], u0)
    assert parts["u0"][0, 3].item() == pytest.approx(0.9950372)


def _line_layout():
    """1 x 6 image; two boxes of class 3 overlapping on pixel 3 (A: pixels 1-3, B: pixels 3-4)."""
    f = torch.tensor([[[0.0, 2.0, 4.0, 1.0, 3.0, 0.0]],
                      [[1.0, 2.0, 6.0, 3.0, 1.0, 5.0]]])  # [C=2, H=1, W=6]
    boxes = np.array([[1, 0, 4, 1, 3], [3, 0, 5, 1, 3]])
    weight = torch.zeros(21, 2)
    weight[0] = torch.tensor([0.0, 1.0])  # background CAM = f1
    weight[3] = torch.tensor([1.0, 0.0])  # class-3 CAM = f0
    layout = box_layout(boxes, 1, 6, n_weights=21)
    return feature_field(f, (1, 6)), weight, layout


def test_cams_normalised_per_box_hand_computed():
    field, weight, layout = _line_layout()
    u_fg = class_unaries(field, weight, layout, torch.ones(1, 6))
    # box A's max is 4 (pixel 2), box B's 3 (pixel 4); pixel 3 lies in both: the box listed last
    # (B) holds, as the released code writes the boxes in order; 0 outside the class's boxes
    expected = torch.tensor([[[0.0, 2 / 4, 4 / 4, 1 / 3, 3 / 3, 0.0]]])
    torch.testing.assert_close(u_fg, expected)
    # "w/o u0": the background CAM f1, normalised the same way (A: max 6, B: max 3), 1 outside
    bg = background_unary(field, weight, layout, torch.full((1, 6), 7.0), use_u0=False)
    torch.testing.assert_close(bg, torch.tensor([[1.0, 2 / 6, 6 / 6, 3 / 3, 1 / 3, 1.0]]))
    assert torch.equal(background_unary(field, weight, layout, torch.full((1, 6), 7.0), use_u0=True),
                       torch.full((1, 6), 7.0))


def test_unseen_class_unary_is_one_minus_u0_in_its_boxes():
    field, weight, layout = _line_layout()
    layout = box_layout(np.array([[1, 0, 4, 1, 3], [3, 0, 5, 1, 3]]), 1, 6, seen_classes=[], n_weights=21)
    u0 = torch.tensor([[1.0, 0.25, 0.0, 0.5, 1.0, 1.0]])
    u_fg = class_unaries(field, weight, layout, u0)
    torch.testing.assert_close(u_fg, torch.tensor([[[0.0, 0.75, 1.0, 0.5, 0.0, 0.0]]]))


def test_retrieval_prototypes_hand_computed():
    f = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
                      [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]])  # [C=2, H=2, W=3]
    idx_crf = torch.tensor([[0, 0, 1], [1, 1, 0]])  # channel of each pixel in Y_crf
    labels = np.array([0, 3, 7, 9])
    weight = torch.zeros(21, 2)
    weight[7] = torch.tensor([0.5, -2.0])
    has_weight = np.array([True, True, True, False])  # label 9: unseen, no usable row
    protos, empty = retrieval_prototypes(feature_field(f, (2, 3)), idx_crf, weight, labels, has_weight)
    expected = torch.tensor([[(1 + 2 + 6) / 3, (0 + 0 + 1) / 3],  # mean over channel 0's pixels
                             [(3 + 4 + 5) / 3, 1.0],  # channel 1's
                             [0.5, -2.0],  # label 7: no pixel, its classifier row
                             [0.0, 0.0]])  # label 9: no pixel, no row
    torch.testing.assert_close(protos, expected)
    assert empty.tolist() == [False, False, True, True]


def test_without_u0_and_no_boxes_is_background():
    image, feats, weight, _ = _scene()
    parts = pseudo_label_parts(image, feats, weight, np.zeros((0, 5), int), crf=None, use_u0=False)
    assert not parts["y_crf"].any() and not parts["y_ret"].any()
    assert torch.all(parts["unary"] == 1)
