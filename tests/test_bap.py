"""BAP (Eq. 1-3), the stage-1 head and the box classifier, on hand-computed tiny cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from torchvision.ops import roi_align

from bana_core.bap import (
    background_attention,
    background_prototypes,
    bap_head,
    grid_padding,
    pool_foreground,
)
from bana_core.models.classifier import BoxClassifier


def _f4x4() -> torch.Tensor:
    f0 = torch.arange(16, dtype=torch.float32).reshape(4, 4)  # f0[y, x] = 4y + x
    return torch.stack([f0, torch.ones(4, 4)])[None]  # [1, 2, 4, 4]


def test_prototypes_eq1_hand_mask():
    mask = torch.tensor([[1, 1, 0, 0],
                         [0, 1, 0, 0],
                         [0, 0, 0, 0],
                         [1, 0, 0, 1]], dtype=torch.float32)[None]
    protos, valid = background_prototypes(_f4x4(), mask, grid_size=2)
    # cell (0,0): pixels 0, 1, 5 -> 2; cell (0,1): no background; (1,0): 12; (1,1): 15
    assert valid.tolist() == [[True, False, True, True]]
    expected = torch.tensor([[2.0, 1.0], [0.0, 0.0], [12.0, 1.0], [15.0, 1.0]])
    torch.testing.assert_close(protos[0], expected)


def test_grid_padding_rule():
    assert grid_padding(4, 2) == (0, 0)
    assert grid_padding(5, 2) == (0, 1)  # odd amount: all after
    assert grid_padding(4, 3) == (1, 1)  # even amount: split
    assert grid_padding(41, 4) == (0, 3)
    assert grid_padding(41, 5) == (2, 2)


def test_prototypes_padding_to_grid_multiple():
    f = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    protos, valid = background_prototypes(f, torch.ones(1, 5, 5), grid_size=2)
    # padded to 6x6 at the end: cells of 3x3; cell (1,1) holds rows/cols 3..4 only
    assert valid.all()
    assert protos[0, :, 0].tolist() == pytest.approx([6.0, 8.5, 18.5, 21.0])
    f = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    protos, valid = background_prototypes(f, torch.ones(1, 4, 4), grid_size=3)
    # padded by 1 on each side to 6x6, cells of 2x2: corner cells hold one pixel each
    assert protos[0, :, 0].tolist() == pytest.approx([0.0, 1.5, 3.0, 6.0, 7.5, 9.0, 12.0, 13.5, 15.0])
    # padding carries no background: a 1-pixel map on a 2x2 grid has one valid cell
    _, valid = background_prototypes(torch.ones(1, 3, 1, 1), torch.ones(1, 1, 1), grid_size=2)
    assert valid.sum().item() == 1


def test_attention_two_valid_cells_hand_computed():
    # 2x4 map, grid 2 -> cells of 1x2. Background: (0,0) in cell 0, (0,2),(0,3) in cell 1.
    # Row 1 is all inside a box, so cells 2 and 3 hold no background and are ignored.
    f = torch.zeros(1, 2, 2, 4)
    vals = {(0, 0): (1, 0), (0, 1): (1, 1), (0, 2): (0, 1), (0, 3): (0, 3),
            (1, 0): (1, -1), (1, 1): (-1, -1), (1, 2): (3, 0), (1, 3): (2, 2)}
    for (y, x), v in vals.items():
        f[0, :, y, x] = torch.tensor(v, dtype=torch.float32)
    bg = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.float32)[None]
    a = background_attention(f, bg, grid_size=2)[0, 0]
    # q1 = (1, 0), q2 = (0, 2): A = (ReLU(cos q1) + ReLU(cos q2)) / 2
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[1.0, r, 1.0, 1.0],
                             [r / 2, 0.0, 0.5, r]])
    torch.testing.assert_close(a, expected)


def test_attention_without_background_is_zero_inside():
    f = torch.randn(2, 3, 4, 4)
    bg = torch.zeros(2, 4, 4)
    bg[1, 0, 0] = 1
    a = background_attention(f, bg, grid_size=2)
    assert a.shape == (2, 1, 4, 4)
    assert torch.all(a[0] == 0)
    assert a[1, 0, 0, 0] == 1 and torch.all(a[1] >= 0) and torch.all(a[1] <= 1)


def _manual_pool(f, a, y0, y1, x0, x1):
    num = torch.zeros(f.shape[0])
    den = 0.0
    for y in range(y0, y1):
        for x in range(x0, x1):
            num += (1 - a[y, x]) * f[:, y, x]
            den += 1 - a[y, x]
    return num / den


@pytest.mark.parametrize("impl", ["matrix", "roi_align"])
def test_pool_foreground_matches_manual_weighted_mean(impl):
    torch.manual_seed(0)
    f = torch.randn(2, 3, 6, 6)
    a = torch.rand(2, 1, 6, 6) * 0.9
    boxes = torch.tensor([[1, 1.0, 1.0, 5.0, 5.0], [0, 0.0, 2.0, 3.0, 4.0]])
    out = pool_foreground(f, a, boxes, (1, 1), impl=impl)
    assert out.shape == (2, 3, 1, 1)
    torch.testing.assert_close(out[0, :, 0, 0], _manual_pool(f[1], a[1, 0], 1, 5, 1, 5))
    torch.testing.assert_close(out[1, :, 0, 0], _manual_pool(f[0], a[0, 0], 2, 4, 0, 3))
    out = pool_foreground(f, a, boxes[:1], (2, 2), impl=impl)
    for by in range(2):
        for bx in range(2):
            exp = _manual_pool(f[1], a[1, 0], 1 + 2 * by, 3 + 2 * by, 1 + 2 * bx, 3 + 2 * bx)
            torch.testing.assert_close(out[0, :, by, bx], exp)


def test_pool_foreground_matrix_equals_roi_align_with_grads():
    torch.manual_seed(1)
    f = torch.randn(3, 5, 9, 11, dtype=torch.float64, requires_grad=True)
    a = (torch.rand(3, 1, 9, 11, dtype=torch.float64) * 0.95).requires_grad_()
    xy = torch.rand(12, 4, dtype=torch.float64) * torch.tensor([11.0, 9.0, 11.0, 9.0])
    boxes = torch.cat([torch.randint(0, 3, (12, 1)).double(),
                       torch.minimum(xy[:, :2], xy[:, 2:]), torch.maximum(xy[:, :2], xy[:, 2:]) + 0.3], 1)
    outs, grads = [], []
    for impl in ("matrix", "roi_align"):
        o = pool_foreground(f, a, boxes, (2, 2), impl=impl)
        g = torch.autograd.grad((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum(), [f, a])
        outs.append(o)
        grads.append(g)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    # plain sums too: a = 0 is torchvision's roi_align itself
    o = pool_foreground(f, torch.zeros_like(a), boxes, (3, 2))
    torch.testing.assert_close(o, roi_align(f, boxes, (3, 2), 1.0, 0, True))


def test_pool_foreground_all_zero_weights_fall_back_to_plain_average():
    f = torch.randn(1, 2, 4, 4)
    a = torch.ones(1, 1, 4, 4)
    out = pool_foreground(f, a, torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]]), (1, 1))
    torch.testing.assert_close(out[0, :, 0, 0], f[0].mean(dim=(1, 2)))


def _eye_head(features, bg, boxes, labels, **kw):
    c = features.shape[1]
    return bap_head(features, bg, boxes, labels, torch.eye(c), **kw)


def test_gap_fallback_when_background_at_most_one_eighth():
    torch.manual_seed(2)
    f = torch.randn(2, 4, 8, 8)
    bg = torch.zeros(2, 8, 8)
    bg[0, 0, :] = 1  # 8 of 64 pixels: exactly 1/8 -> not reliable
    bg[1, :4, :] = 1  # half the map
    boxes = torch.tensor([[0, 0.0, 1.0, 8.0, 8.0], [1, 0.0, 4.0, 8.0, 8.0]])
    logits, targets = _eye_head(f, bg, boxes, torch.tensor([3, 4]), grid_size=2, roi_size=(1, 1))
    plain0 = f[0, :, 1:, :].mean(dim=(1, 2))
    plain1 = f[1, :, 4:, :].mean(dim=(1, 2))
    torch.testing.assert_close(logits[0], plain0)  # unreliable background: plain average
    assert not torch.allclose(logits[1], plain1)  # reliable: background-aware
    a = background_attention(f[1:], bg[1:], 2)
    torch.testing.assert_close(logits[1], _manual_pool(f[1], a[0, 0], 4, 8, 0, 8))
    # GAP: plain average for every box
    logits, _ = _eye_head(f, bg, boxes, torch.tensor([3, 4]), grid_size=2, roi_size=(1, 1), pool="gap")
    torch.testing.assert_close(logits[1], plain1)
    torch.testing.assert_close(logits[0], plain0)


def test_bap_head_layout_and_gradients():
    torch.manual_seed(3)
    f = torch.randn(2, 6, 8, 8, requires_grad=True)
    bg = torch.ones(2, 8, 8)
    bg[0, :4, :4] = 0
    bg[0, 5:, 5:] = 0
    bg[1, :, :5] = 0  # image 1: the two left cells hold no background (image 0: the top-left one)
    boxes = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0], [0, 5.0, 5.0, 8.0, 8.0], [1, 0.0, 0.0, 5.0, 8.0]])
    labels = torch.tensor([5, 7, 2])
    clf = nn.Conv2d(6, 21, 1, bias=False)
    logits, targets = bap_head(f, bg, boxes, labels, clf, grid_size=2, roi_size=(2, 2))
    protos, valid = background_prototypes(f, bg, 2)
    assert valid.tolist() == [[False, True, True, True], [False, True, False, True]]
    assert logits.shape == (12 + 5, 21)
    assert targets.tolist() == [5] * 4 + [7] * 4 + [2] * 4 + [0] * 5
    torch.testing.assert_close(logits[12:], protos[valid] @ clf.weight[:, :, 0, 0].t())
    # a box's four rows are its bins in row-major order
    a = background_attention(f, bg, 2)
    pooled = pool_foreground(f, a, boxes, (2, 2))
    torch.testing.assert_close(logits[4:8], pooled[1].permute(1, 2, 0).reshape(4, 6) @ clf.weight[:, :, 0, 0].t())
    loss = nn.functional.cross_entropy(logits, targets)
    loss.backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    assert clf.weight.grad is not None and clf.weight.grad.abs().sum() > 0


class _TinyBackbone(nn.Module):
    """Three stride-2 convs: stride 8, like the real backbones."""

    def __init__(self, c: int = 5):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(4, c, 3, 2, 1))

    def forward(self, x):
        return self.net(x)


def test_box_classifier_forward_scales_boxes_and_mask():
    torch.manual_seed(4)
    model = BoxClassifier(_TinyBackbone(5), 5, 21, pool="bap", grid_size=2)
    images = torch.randn(2, 3, 40, 48)  # features 5 x 6
    bg = torch.ones(2, 40, 48)
    bg[0, 8:32, 8:24] = 0
    bg[1, 0:16, 16:48] = 0
    boxes = torch.tensor([[0, 8.0, 8.0, 24.0, 32.0], [1, 16.0, 0.0, 48.0, 16.0]])
    labels = torch.tensor([4, 9])
    logits, targets = model(images, bg, boxes, labels)
    assert model.classifier_weight.shape == (21, 5)
    assert model.classifier.bias is None
    feats = model.features(images)
    assert feats.shape == (2, 5, 5, 6)
    bg_small = bg[:, ::8, ::8]  # nearest resize by 1/8
    exp_logits, exp_targets = bap_head(feats, bg_small, boxes * torch.tensor([1, 1 / 8, 1 / 8, 1 / 8, 1 / 8]),
                                       labels, model.classifier, grid_size=2)
    torch.testing.assert_close(logits, exp_logits)
    assert targets.tolist() == exp_targets.tolist()
    assert targets[:8].tolist() == [4] * 4 + [9] * 4
    logits.sum().backward()
    assert model.classifier.weight.grad is not None


def test_bap_head_without_boxes_gives_background_rows_only():
    f = torch.randn(2, 6, 8, 8, requires_grad=True)
    logits, targets = bap_head(f, torch.ones(2, 8, 8), torch.zeros(0, 5), torch.zeros(0, dtype=torch.long),
                               torch.randn(21, 6), grid_size=4)
    assert logits.shape == (32, 21) and targets.tolist() == [0] * 32
    logits.sum().backward()
    assert f.grad.abs().sum() > 0
