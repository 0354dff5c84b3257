"""Background-Aware Pooling (BAP, stage 1): background prototypes, attention and weighted RoI pooling.

Eq. 1-3 of the paper, vectorised over images, grid cells and boxes. Shapes follow the feature map
of the backbone (output stride 8): ``features`` is ``[N, C, h, w]`` and ``bg_mask`` is 1 outside
every box, 0 inside, at the same ``h x w``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "background_attention",
    "background_prototypes",
    "bap_head",
    "grid_cell_index",
    "grid_padding",
    "pool_foreground",
    "roi_pool_matrices",
]

_EPS = 1e-12
_WEIGHT_EPS = 1e-6  # below this the (1 - A) weights of a bin are "all zero": fall back to plain average


def grid_padding(size: int, grid_size: int) -> tuple[int, int]:
    """(before, after) padding of one axis up to a multiple of ``grid_size``.

    As the released code (``pad_for_grid``): an even amount is split evenly, an odd one goes
    entirely after the data.
    """
    pad = (-size) % grid_size
    return (pad // 2, pad // 2) if pad % 2 == 0 else (0, pad)


def grid_cell_index(height: int, width: int, grid_size: int, device=None) -> Tensor:
    """Grid cell of each pixel, int64 ``[height, width]``: cells of a ``grid_size x grid_size``
    grid in row-major order, laid over the map zero-padded to a multiple of the grid
    (:func:`grid_padding`). Padded pixels belong to no pixel of the map, so they need no storage.
    """
    g = int(grid_size)
    (pt, pb), (pl, pr) = grid_padding(height, g), grid_padding(width, g)
    cy = (torch.arange(height, device=device) + pt) // ((height + pt + pb) // g)
    cx = (torch.arange(width, device=device) + pl) // ((width + pl + pr) // g)
    return cy[:, None] * g + cx[None, :]


def _as_mask(bg_mask: Tensor) -> Tensor:
    if bg_mask.dim() == 3:
        bg_mask = bg_mask[:, None]
    if bg_mask.dim() != 4 or bg_mask.shape[1] != 1:
        raise ValueError(f"bg_mask must be [N,1,h,w] or [N,h,w], got {tuple(bg_mask.shape)}")
    return bg_mask


def background_prototypes(features: Tensor, bg_mask: Tensor, grid_size: int) -> tuple[Tensor, Tensor]:
    """Masked mean of the features in each cell of a ``grid_size x grid_size`` grid (Eq. 1).

    Returns ``(prototypes [N, J, C], valid [N, J] bool)`` with ``J = grid_size**2`` cells in
    row-major order; a cell is valid when it holds at least one background pixel (its prototype
    is 0 otherwise). Map and mask are zero-padded to a multiple of the grid, so padding adds no
    background.
    """
    bg = _as_mask(bg_mask).to(features.dtype)
    n, c, h, w = features.shape
    if bg.shape[0] != n or bg.shape[-2:] != (h, w):
        raise ValueError(f"bg_mask {tuple(bg.shape)} does not match features {tuple(features.shape)}")
    g = int(grid_size)
    # padded pixels carry no background: the masked sums are one matrix product with per-cell
    # masks (no padded copy of f)
    cell = F.one_hot(grid_cell_index(h, w, g, features.device).reshape(-1), g * g).to(features.dtype)  # [hw, J]
    cell_masks = bg.reshape(n, h * w, 1) * cell  # [N, hw, J]
    sums = torch.bmm(features.reshape(n, c, h * w), cell_masks)  # [N, C, J]
    counts = cell_masks.sum(1)  # [N, J]
    valid = counts > 0
    # counts are whole pixels: clamping at 1 changes no valid cell (an empty cell's sum is 0 too) and,
    # unlike a tiny epsilon, survives fp16 (1e-12 rounds to 0 there and an empty cell gave 0/0 = NaN)
    protos = (sums / counts.clamp_min(1.0)[:, None, :]).transpose(1, 2)
    return protos, valid


def _attention_from_prototypes(features: Tensor, bg: Tensor, protos: Tensor, valid: Tensor) -> Tensor:
    """Eq. 2 given the prototypes: mean over valid cells of ReLU(cos), 1 on background pixels."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    # cos = (q/|q|) . f / |f|: dividing the [N, J, hw] products, not the [N, C, hw] features
    norms = torch.linalg.vector_norm(flat, dim=1, keepdim=True).clamp_min(_EPS)  # [N, 1, hw]
    cos = torch.bmm(F.normalize(protos, dim=2), flat) / norms  # [N, J, hw]
    vf = valid.to(features.dtype)
    # an image with no valid cell gets A = 0 inside its boxes (the sum is 0, the count clamps to 1)
    inside = (F.relu(cos) * vf[..., None]).sum(1) / vf.sum(1, keepdim=True).clamp_min(1.0)
    inside = inside.reshape(n, 1, h, w)
    return torch.where(bg >= 0.5, torch.ones_like(inside), inside)


def background_attention(features: Tensor, bg_mask: Tensor, grid_size: int) -> Tensor:
    """Background attention A (Eq. 2), ``[N, 1, h, w]``.

    Inside boxes (``bg_mask == 0``): the mean over valid grid cells j of ReLU(cos(f(p), q_j));
    outside boxes: 1. An image without any background pixel gets A = 0 inside its boxes.
    """
    bg = _as_mask(bg_mask).to(features.dtype)
    protos, valid = background_prototypes(features, bg, grid_size)
    return _attention_from_prototypes(features, bg, protos, valid)


def _axis_matrix(start: Tensor, size: Tensor, bins: int, length: int) -> Tensor:
    """Per-box averaging matrix ``[K, bins, length]`` of one axis of roi_align(aligned=True, sampling_ratio=0).

    Bin b averages ``n = ceil(size / bins)`` bilinear samples at
    ``start + b * size/bins + (i + 0.5) * size/(bins * n)``; sample weights follow torchvision's
    ``bilinear_interpolate`` (zero beyond one pixel outside the map, clamped to the border).
    Bilinear weights and the out-of-map test are separable, so the 2-D pooling is ``Ry f Rx^T``.
    """
    k = start.shape[0]
    bin_size = size / bins
    n_samp = torch.ceil(size / bins).clamp_min(0).to(torch.int64)  # [K]
    s_max = max(int(n_samp.max()) if k else 0, 1)
    b = torch.arange(bins, dtype=start.dtype, device=start.device)
    i = torch.arange(s_max, dtype=start.dtype, device=start.device)
    n_f = n_samp.clamp_min(1).to(start.dtype)
    pos = (start[:, None, None] + b[None, :, None] * bin_size[:, None, None]
           + (i[None, None, :] + 0.5) * (bin_size / n_f)[:, None, None])  # [K, bins, S]
    used = (i[None, None, :] < n_samp[:, None, None].to(start.dtype))
    inside = (pos >= -1.0) & (pos <= length)
    p = pos.clamp_min(0.0)
    low = p.floor().to(torch.int64).clamp_max(length - 1)
    at_end = low >= length - 1
    high = torch.where(at_end, low, low + 1)
    p = torch.where(at_end, low.to(p.dtype), p)
    lw = p - low.to(p.dtype)
    weight = (used & inside).to(start.dtype) / n_f[:, None, None]
    mat = torch.zeros(k, bins, length, dtype=start.dtype, device=start.device)
    mat.scatter_add_(2, low, weight * (1.0 - lw))
    mat.scatter_add_(2, high, weight * lw)
    return mat


def roi_pool_matrices(boxes: Tensor, roi_size: tuple[int, int], height: int, width: int) -> tuple[Tensor, Tensor]:
    """(Ry ``[K, oh, h]``, Rx ``[K, ow, w]``): roi_align(aligned=True, sampling_ratio=0, scale 1) as matrices.

    ``boxes`` is ``[K, 5]`` (batch index, x1, y1, x2, y2) in feature pixels (half-open: a box
    (0, 0, 4, 4) covers pixels 0..3, whose centres are the samples of a 1 x 1 bin).
    """
    oh, ow = roi_size
    b = boxes.detach()
    if not b.is_floating_point():
        b = b.float()  # positions in the features' precision, as torchvision computes them
    x1, y1, x2, y2 = b[:, 1] - 0.5, b[:, 2] - 0.5, b[:, 3] - 0.5, b[:, 4] - 0.5
    ry = _axis_matrix(y1, y2 - y1, oh, height)
    rx = _axis_matrix(x1, x2 - x1, ow, width)
    return ry, rx


def _pool_kernels(kern: Tensor, features: Tensor, boxes: Tensor) -> Tensor:
    """``kern[k] @ features[b_k]``: ``kern`` ``[K, B, h*w]`` per-box pooling weights -> ``[K, C, B]``.

    One batched product per image, boxes padded to the most any image has.
    """
    n, c, h, w = features.shape
    k, nb, _ = kern.shape
    if k == 0:
        return features.new_zeros(0, c, nb)
    bidx = boxes[:, 0].detach().to(torch.int64)
    counts = torch.bincount(bidx, minlength=n)
    kmax = int(counts.max())
    order = torch.argsort(bidx, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(bidx)
    slot[order] = torch.arange(k, device=bidx.device) - starts[bidx[order]]
    kpad = kern.new_zeros(n, kmax, nb, h * w)
    kpad[bidx, slot] = kern
    # features stay the untransposed operand: [N, C, hw] @ [N, hw, kmax*B] (and so does their gradient)
    out = torch.bmm(features.reshape(n, c, h * w), kpad.reshape(n, kmax * nb, h * w).transpose(1, 2))
    return out.reshape(n, c, kmax, nb)[bidx, :, slot]


def pool_foreground(features: Tensor, attention: Tensor, boxes: Tensor,
                    roi_size: tuple[int, int] = (2, 2), *, impl: str = "matrix") -> Tensor:
    """Background-aware pooling (Eq. 3) of each box into ``roi_size`` bins: ``[K, C, oh, ow]``.

    Each bin is ``sum((1 - A) f) / sum(1 - A)`` over the bilinear samples of the box, which lie on
    a grid of the box's own size in feature pixels (torchvision ``roi_align`` with ``aligned=True``,
    ``spatial_scale=1``, ``sampling_ratio=0``, i.e. ceil(bin size) samples per bin and axis), taken
    as ``roi_align((1 - A) f) / roi_align(1 - A)``. A bin whose weights are all ~0 falls back to the
    plain average of f. ``boxes`` is ``[K, 5]``: batch index, x1, y1, x2, y2 in feature pixels.

    ``impl="matrix"`` (default) computes exactly roi_align's sums with per-box kernels
    ``Ry[a, i] Rx[b, j] (1 - A)(i, j)`` (:func:`roi_pool_matrices`) applied to the features by one
    batched matrix product per image: same numbers, and a backward pass that is a matrix product
    too: forward + backward ~10x faster on CPU than torchvision's roi_align (benchmarks/bap_head.py).
    ``impl="roi_align"`` calls torchvision (the reference the tests compare with).
    """
    if impl not in ("matrix", "roi_align"):
        raise ValueError(f"impl must be 'matrix' or 'roi_align', got {impl!r}")
    oh, ow = roi_size
    n, c, h, w = features.shape
    boxes = boxes.to(features.dtype)
    weight = 1.0 - attention  # [N, 1, h, w]
    if impl == "roi_align":
        from torchvision.ops import roi_align

        def plain(sel: Tensor) -> Tensor:
            return roi_align(features, boxes[sel], (oh, ow), spatial_scale=1.0, sampling_ratio=0, aligned=True)

        num = roi_align(features * weight, boxes, (oh, ow), spatial_scale=1.0, sampling_ratio=0, aligned=True)
        den = roi_align(weight, boxes, (oh, ow), spatial_scale=1.0, sampling_ratio=0, aligned=True)
    else:
        ry, rx = roi_pool_matrices(boxes, (oh, ow), h, w)
        base = torch.einsum("kai,kbj->kabij", ry.to(features.dtype), rx.to(features.dtype))
        base = base.reshape(len(boxes), oh * ow, h * w)  # bilinear sample weights of each bin
        # (1 - A) folded into the small per-box kernels: no [N, C, h, w] product of A and f
        kern = base * weight.reshape(n, 1, h * w)[boxes[:, 0].detach().to(torch.int64)]

        def plain(sel: Tensor) -> Tensor:
            return _pool_kernels(base[sel], features, boxes[sel]).reshape(len(sel), c, oh, ow)

        num = _pool_kernels(kern, features, boxes).reshape(len(boxes), c, oh, ow)
        den = kern.sum(-1).reshape(len(boxes), 1, oh, ow)
    out = num / den.clamp_min(_WEIGHT_EPS)
    low = den < _WEIGHT_EPS  # [K, 1, oh, ow]
    if bool(low.any()):
        # only boxes with an empty bin pay for the plain average
        sel = low.flatten(1).any(1).nonzero()[:, 0]
        out = out.clone()
        out[sel] = torch.where(low[sel], plain(sel), out[sel])
    return out


def bap_head(features: Tensor, bg_mask: Tensor, boxes: Tensor, box_labels: Tensor,
             classifier: nn.Conv2d | Tensor, *, grid_size: int, roi_size: tuple[int, int] = (2, 2),
             pool: str = "bap", min_bg_fraction: float = 1 / 8) -> tuple[Tensor, Tensor]:
    """Everything of stage 1 after the backbone: ``(logits [P, L], targets [P])``.

    Rows are, in order: the ``oh * ow`` foreground vectors of each box (row-major bins, box order),
    labelled with the box class, then the valid background prototypes (image-major, cells
    row-major), labelled 0. The classifier is the bias-free 1x1 conv (or its weight ``[L, C]``).

    ``pool="gap"``: A = 0 everywhere (plain average pooling). With ``pool="bap"``, an image whose
    background covers at most ``min_bg_fraction`` of its feature map has no reliable background,
    so its boxes use plain average pooling too (A = 0 in that image). Its valid background cells
    still contribute prototypes labelled 0, as in the released code: they are masked means over
    true background pixels, only too few to judge the inside of its boxes. GAP keeps the
    background prototypes as well, since the background class must be learned either way.
    """
    if pool not in ("bap", "gap"):
        raise ValueError(f"pool must be 'bap' or 'gap', got {pool!r}")
    bg = _as_mask(bg_mask).to(features.dtype)
    n, c, h, w = features.shape
    oh, ow = roi_size
    protos, valid = background_prototypes(features, bg, grid_size)
    if pool == "bap":
        attention = _attention_from_prototypes(features, bg, protos, valid)
        reliable = bg.mean(dim=(1, 2, 3)) > min_bg_fraction
        attention = attention * reliable.to(features.dtype)[:, None, None, None]
    else:
        attention = features.new_zeros(n, 1, h, w)
    fg = pool_foreground(features, attention, boxes, roi_size)  # [K, C, oh, ow]
    fg = fg.permute(0, 2, 3, 1).reshape(-1, c)
    bg_vecs = protos[valid]  # [P_bg, C]
    weight = classifier.weight if isinstance(classifier, nn.Module) else classifier
    weight = weight.reshape(weight.shape[0], -1)
    logits = F.linear(torch.cat([fg, bg_vecs], 0), weight)
    box_labels = box_labels.to(device=features.device, dtype=torch.int64)
    targets = torch.cat([box_labels.repeat_interleave(oh * ow),
                         torch.zeros(bg_vecs.shape[0], dtype=torch.int64, device=features.device)])
    return logits, targets
