"""Stage 2: pseudo labels Y_crf and Y_ret from a trained box classifier (Eq. 4-7).

The method works on features bilinearly upsampled to image size. Upsampling 1024 channels to
500 x 375 costs more than the whole rest of the stage, so low-resolution features are never
upsampled here: every quantity the method needs is linear or quadratic in the features and
is computed exactly from the low-resolution map (see :class:`_UpsampledField`).
"""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .bap import grid_padding
from .crf import dense_crf

__all__ = ["make_pseudo_labels", "pseudo_label_parts", "upsample_matrix"]

_EPS = 1e-12


def upsample_matrix(out_size: int, in_size: int, *, align_corners: bool = False,
                    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """The ``[out_size, in_size]`` matrix of 1-D linear resampling, as ``F.interpolate`` does it.

    ``F.interpolate(x, (H, W), mode='bilinear', align_corners=a)`` of a ``[h, w]`` map equals
    ``Uy @ x @ Ux.T`` with ``Uy = upsample_matrix(H, h)``, ``Ux = upsample_matrix(W, w)``. Built by
    resampling the identity, so the weights are PyTorch's own. Each row has at most two
    non-zeros, on adjacent columns.
    """
    eye = torch.eye(in_size, dtype=torch.float64, device=device)[None]  # channels = unit vectors
    up = F.interpolate(eye, size=out_size, mode="linear", align_corners=align_corners)  # [1, in, out]
    return up[0].t().contiguous().to(dtype)


class _DenseField:
    """Features already at image size ``[C, H, W]``."""

    def __init__(self, features: Tensor):
        self.c, self.h, self.w = features.shape
        self.flat = features.reshape(self.c, -1)
        self._norm: Tensor | None = None

    def dots(self, q: Tensor) -> Tensor:
        return (q @ self.flat).reshape(-1, self.h, self.w)

    def sq_norms(self) -> Tensor:
        return (self.flat * self.flat).sum(0).reshape(self.h, self.w)

    def masked_sums(self, masks: Tensor) -> Tensor:
        return masks.reshape(masks.shape[0], -1) @ self.flat.t()

    def norms(self) -> Tensor:
        if self._norm is None:
            self._norm = self.sq_norms().clamp_min(0).sqrt()
        return self._norm

    def cos(self, q: Tensor) -> Tensor:
        """cos(f(p), q_k) for every pixel: ``[K, H, W]`` (F.normalize's eps on both sides)."""
        return self.dots(F.normalize(q, dim=1)) / self.norms().clamp_min(_EPS)


class _UpsampledField(_DenseField):
    """Low-resolution features ``[C, h, w]`` seen through exact bilinear upsampling to ``(H, W)``.

    With U = Uy (x) Ux (:func:`upsample_matrix`), the upsampled map is ``F_up = Uy f Ux^T`` per
    channel, and, never forming ``F_up``:

    * ``F_up(p) . q = (Uy (f . q) Ux^T)(p)``: dot products commute with U;
    * ``sum_p m(p) F_up(p) = sum_(i,j) (Uy^T m Ux)(i,j) f(i,j)``: region sums go through U^T;
    * ``||F_up(p)||^2 = sum_(a,b) U(p,a) U(p,b) <f(a), f(b)>``. Rows of Uy, Ux have two adjacent
      non-zeros, so only neighbour pairs (offsets d in {-1,0,1}^2) contribute, and offsets d and
      -d give the same sum: ``sum_d c_d (Uy*Uy_shift(di)) G_d (Ux*Ux_shift(dj))^T`` over
      d = (0,0), (0,1), (1,0), (1,1), (1,-1) with c = 1, 2, 2, 2, 2 and ``G_d(i,j) = <f(i,j),
      f(i+di, j+dj)>``.
    """

    def __init__(self, features: Tensor, size: tuple[int, int], align_corners: bool = False):
        self.f = features
        self.c, self.lh, self.lw = features.shape
        self.h, self.w = size
        self.flat = features.reshape(self.c, -1)
        kw = dict(align_corners=align_corners, dtype=features.dtype, device=features.device)
        self.uy = upsample_matrix(self.h, self.lh, **kw)
        self.ux = upsample_matrix(self.w, self.lw, **kw)
        self._norm = None

    def up(self, x: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.uy, x), self.ux.t())

    def down(self, m: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.uy.t(), m), self.ux)

    def dots(self, q: Tensor) -> Tensor:
        return self.up((q @ self.flat).reshape(-1, self.lh, self.lw))

    def masked_sums(self, masks: Tensor) -> Tensor:
        return self.down(masks).reshape(masks.shape[0], -1) @ self.flat.t()

    @staticmethod
    def _band(u: Tensor, d: int) -> Tensor:
        """``B[r, i] = u[r, i] * u[r, i + d]`` (0 where ``i + d`` is out of range)."""
        if d == 0:
            return u * u
        out = torch.zeros_like(u)
        if d > 0:
            out[:, :-d] = u[:, :-d] * u[:, d:]
        else:
            out[:, -d:] = u[:, -d:] * u[:, :d]
        return out

    def _gram(self, di: int, dj: int) -> Tensor:
        """``G[i, j] = <f(i, j), f(i + di, j + dj)>`` (0 where the neighbour is outside), di >= 0."""
        f, h, w = self.f, self.lh, self.lw
        g = f.new_zeros(h, w)
        if dj >= 0:
            a, b = f[:, : h - di, : w - dj], f[:, di:, dj:]
            g[: h - di, : w - dj] = (a * b).sum(0)  # (einsum is 20x slower here)
        else:
            a, b = f[:, : h - di, -dj:], f[:, di:, : w + dj]
            g[: h - di, -dj:] = (a * b).sum(0)  # (einsum is 20x slower here)
        return g

    def sq_norms(self) -> Tensor:
        total = self.f.new_zeros(self.h, self.w)
        for (di, dj), c in (((0, 0), 1.0), ((0, 1), 2.0), ((1, 0), 2.0), ((1, 1), 2.0), ((1, -1), 2.0)):
            if di >= self.lh or abs(dj) >= self.lw:
                continue
            ay, ax = self._band(self.uy, di), self._band(self.ux, dj)
            total += c * (ay @ self._gram(di, dj) @ ax.t())
        return total


class _Clock:
    """Adds the seconds since the last lap to ``timings[key]`` (no-op without a dict)."""

    def __init__(self, timings: dict | None):
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, key: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[key] = self.timings.get(key, 0.0) + now - self.last
        self.last = now


def _argmax0(x: Tensor) -> Tensor:
    """Argmax over the leading axis (first maximum wins); reducing a contiguous last axis is ~15x
    faster on CPU than ``x.argmax(0)``."""
    return x.permute(1, 2, 0).contiguous().argmax(-1)


def _box_masks(boxes: np.ndarray, h: int, w: int, device) -> Tensor:
    """``[M, H, W]`` bool, box m covering ``[y1:y2, x1:x2]`` (clipped to the image)."""
    b = torch.as_tensor(boxes[:, :4], dtype=torch.int64, device=device)
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    my = (ys[None] >= b[:, 1:2]) & (ys[None] < b[:, 3:4])  # [M, H]
    mx = (xs[None] >= b[:, 0:1]) & (xs[None] < b[:, 2:3])  # [M, W]
    return my[:, :, None] & mx[:, None, :]


def _per_box_normalised(cam: Tensor, box_masks: Tensor, box_cls: Tensor, owner: Tensor) -> Tensor:
    """Divide each class map by its maximum inside each box of that class separately (Eq. 5).

    ``cam`` ``[L, H, W]`` (>= 0); ``box_cls[m]`` row of ``cam`` box m belongs to; ``owner[l, p]`` =
    1 + index of the box of class l whose normalisation holds at p (the last one listed, as the
    released code writes boxes in order), 0 outside the class's boxes.
    """
    box_max = torch.where(box_masks, cam[box_cls], cam.new_zeros(())).amax(dim=(1, 2))  # [M]
    denom = box_max[(owner - 1).clamp_min(0)] + _EPS
    return torch.where(owner > 0, cam / denom, cam.new_zeros(()))


def _check_inputs(image, features, classifier_weight, boxes):
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be a uint8 H x W x 3 array, got {image.dtype} {image.shape}")
    features = torch.as_tensor(features)
    if features.dim() == 4 and features.shape[0] == 1:
        features = features[0]
    if features.dim() != 3:
        raise ValueError(f"features must be [C, H, W] or [C, h, w], got {tuple(features.shape)}")
    weight = torch.as_tensor(classifier_weight).to(device=features.device, dtype=torch.float32)
    weight = weight.reshape(weight.shape[0], -1)
    if weight.shape[1] != features.shape[0]:
        raise ValueError(f"classifier_weight has {weight.shape[1]} channels, features {features.shape[0]}")
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 5)
    if len(boxes) and (boxes[:, 4].min() < 1 or boxes[:, 4].max() > 254):
        raise ValueError(f"box labels must be in 1..254, got {sorted(set(boxes[:, 4].tolist()))}")
    return image, features.float(), weight, boxes


@torch.no_grad()
def pseudo_label_parts(image: np.ndarray, features: Tensor, classifier_weight: Tensor, boxes: np.ndarray, *,
                       grid_size: int = 1, bg_threshold: float = 0.99,
                       crf: Sequence[float] | None = (4, 55, 3, 3, 3), use_u0: bool = True,
                       seen_classes: Iterable[int] | None = None, align_corners: bool = False,
                       n_iter: int = 10, timings: dict | None = None) -> dict:
    """:func:`make_pseudo_labels` with its intermediate maps; see there for the arguments.

    Returns a dict: ``labels`` (int64 ``[1 + L]``: the label of each unary channel, 0 first, then
    the present box labels ascending), ``attention`` (A over the image, thresholded), ``u0``,
    ``u_fg`` (class unaries ``[L, H, W]`` before the softmax), ``unary`` (``[1 + L, H, W]``,
    softmax-normalised inside boxes), ``probs`` (CRF marginals, classes zeroed outside their
    boxes), ``corr`` (retrieval maps ``[1 + L, H, W]``), ``y_crf``, ``y_ret`` (uint8 ``[H, W]``).
    ``timings`` (if a dict) receives seconds per step: setup (box masks), attention, unaries, crf
    (the DenseCRF call only), retrieval (Y_crf's argmax and Y_ret).
    """
    clock = _Clock(timings)
    image, features, weight, boxes = _check_inputs(image, features, classifier_weight, boxes)
    h, w = image.shape[:2]
    dev = features.device
    if features.shape[-2:] == (h, w):
        field: _DenseField = _DenseField(features)
    else:
        field = _UpsampledField(features, (h, w), align_corners)

    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    present = np.unique(boxes[:, 4])
    labels = np.concatenate([[0], present]).astype(np.int64)
    seen = set(int(c) for c in present) if seen_classes is None else {int(c) for c in seen_classes}
    is_seen = np.array([int(c) in seen for c in present], dtype=bool)
    if np.any(present[is_seen] >= weight.shape[0]):
        raise ValueError(f"classifier_weight has {weight.shape[0]} rows; no weight for seen labels "
                         f"{present[is_seen & (present >= weight.shape[0])].tolist()}")
    n_cls = len(present)
    box_masks = _box_masks(boxes, h, w, dev)  # [M, H, W]
    box_cls = torch.as_tensor(np.searchsorted(present, boxes[:, 4]), dtype=torch.int64, device=dev)
    m = len(boxes)
    ids = box_masks.to(torch.int64) * torch.arange(1, m + 1, device=dev)[:, None, None]
    owner = torch.zeros(n_cls, h, w, dtype=torch.int64, device=dev)
    owner.scatter_reduce_(0, box_cls[:, None, None].expand(m, h, w), ids, reduce="amax")
    class_masks = owner > 0  # [L, H, W]
    inside = box_masks.any(0) if m else torch.zeros(h, w, dtype=torch.bool, device=dev)
    clock.lap("setup")

    # Eq. 2 at image size, over the whole image (as the released code), then the 0.99 x max cut
    g = int(grid_size)
    bg = (~inside).to(features.dtype)
    (pt, pb), (pl, pr) = grid_padding(h, g), grid_padding(w, g)
    cy = (torch.arange(h, device=dev) + pt) // ((h + pt + pb) // g)
    cx = (torch.arange(w, device=dev) + pl) // ((w + pl + pr) // g)
    cells = torch.arange(g, device=dev)
    cell_masks = ((cy[None, :, None] == cells[:, None, None])[:, None] &
                  (cx[None, None, :] == cells[:, None, None])[None]).reshape(g * g, h, w)
    cell_masks = cell_masks.to(features.dtype) * bg
    counts = cell_masks.sum(dim=(1, 2))
    valid = counts > 0
    if bool(valid.any()):
        protos = field.masked_sums(cell_masks[valid]) / counts[valid, None]
        attention = F.relu(field.cos(protos)).mean(0)
    else:  # no background pixel at all: A = 0 inside the boxes
        attention = features.new_zeros(h, w)
    attention = torch.where(attention < bg_threshold * attention.max(), attention.new_zeros(()), attention)
    u0 = torch.where(inside, attention, attention.new_ones(()))
    clock.lap("attention")

    # Eq. 5 / 7: CAMs of seen classes (per-box max normalisation), 1 - u0 for unseen ones
    u_fg = features.new_zeros(n_cls, h, w)
    if n_cls:
        cam = features.new_zeros(n_cls, h, w)
        seen_idx = torch.as_tensor(np.flatnonzero(is_seen), dtype=torch.int64, device=dev)
        if len(seen_idx):
            cam[seen_idx] = F.relu(field.dots(weight[torch.as_tensor(present[is_seen], device=dev)]))
        u_fg = _per_box_normalised(cam, box_masks, box_cls, owner)
        if not is_seen.all():
            unseen_idx = torch.as_tensor(np.flatnonzero(~is_seen), dtype=torch.int64, device=dev)
            u_fg[unseen_idx] = (1.0 - u0)[None] * class_masks[unseen_idx].to(u0.dtype)
    if use_u0:
        bg_unary = u0
    else:  # "w/o u0": background-class CAM, normalised per box like the class CAMs
        cam0 = F.relu(field.dots(weight[:1]))
        owner0 = ids.amax(0, keepdim=True) if m else torch.zeros(1, h, w, dtype=torch.int64, device=dev)
        zeros = torch.zeros(m, dtype=torch.int64, device=dev)
        cam0 = _per_box_normalised(cam0, box_masks, zeros, owner0)[0]
        bg_unary = torch.where(inside, cam0, cam0.new_ones(()))
    unary = torch.cat([bg_unary[None], u_fg], 0)
    unary = torch.where(inside[None], torch.softmax(unary, dim=0), unary)
    clock.lap("unaries")

    unary_np = unary.cpu().numpy()
    clock.lap("unaries")
    probs = unary_np.copy() if crf is None else dense_crf(image, unary_np, params=crf, n_iter=n_iter)
    clock.lap("crf")
    probs[1:] *= class_masks.cpu().numpy()
    idx_crf = probs.argmax(0)
    lut = labels.astype(np.uint8)
    y_crf = lut[idx_crf]

    # Eq. 6: prototypes from Y_crf (classifier weight when a label got no pixel), ReLU(cos)
    idx_t = torch.as_tensor(idx_crf, device=dev)
    lab_masks = (idx_t[None] == torch.arange(n_cls + 1, device=dev)[:, None, None]).to(features.dtype)
    counts = lab_masks.sum(dim=(1, 2))
    protos = field.masked_sums(lab_masks) / counts.clamp_min(1.0)[:, None]
    empty = (counts == 0).cpu().numpy()
    has_weight = np.concatenate([[True], is_seen])
    fill = empty & has_weight
    if fill.any():
        protos[torch.as_tensor(np.flatnonzero(fill), device=dev)] = weight[torch.as_tensor(labels[fill], device=dev)]
    corr = F.relu(field.cos(protos))
    no_proto = np.flatnonzero(empty & ~has_weight)
    if len(no_proto):  # unseen class without pixels in Y_crf: its class-agnostic unary stands in
        corr[torch.as_tensor(no_proto, device=dev)] = u_fg[torch.as_tensor(no_proto - 1, device=dev)]
    corr[0] = torch.where(inside, corr[0], corr.new_ones(()))
    corr[1:] = corr[1:] * class_masks.to(corr.dtype)
    y_ret = lut[_argmax0(corr).cpu().numpy()]
    clock.lap("retrieval")
    return {"labels": labels, "attention": attention, "u0": u0, "u_fg": u_fg, "unary": unary, "probs": probs,
            "corr": corr, "y_crf": y_crf, "y_ret": y_ret}


def make_pseudo_labels(image: np.ndarray, features: Tensor, classifier_weight: Tensor, boxes: np.ndarray, *,
                       grid_size: int = 1, bg_threshold: float = 0.99,
                       crf: Sequence[float] | None = (4, 55, 3, 3, 3), use_u0: bool = True,
                       seen_classes: Iterable[int] | None = None, align_corners: bool = False,
                       n_iter: int = 10, timings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo labels ``(Y_crf, Y_ret)`` of one image, uint8 ``[H, W]`` maps of box labels (0 = background).

    * ``image``: uint8 H x W x 3 RGB (the CRF's colour term).
    * ``features``: ``[C, H, W]`` at image size, or ``[C, h, w]`` backbone output: then the result
      is exactly that of bilinearly upsampled features (``align_corners`` as F.interpolate;
      the released code upsamples with ``align_corners=True``), without forming them.
    * ``classifier_weight``: ``[num_labels, C]``, row = label (row 0 = background).
    * ``boxes``: int ``[M, 5]`` = x1, y1, x2, y2 (exclusive), label.
    * ``grid_size``: generation grid N for the background prototypes; ``bg_threshold``: A below
      this fraction of its image maximum is set to 0 (u0, Eq. 4).
    * ``crf``: (bi_w, bi_xy, bi_rgb, pos_w, pos_xy) for :func:`bana_core.crf.dense_crf`, or None to
      skip the CRF (the unary's argmax; for tests and ablations).
    * ``use_u0=False`` ("w/o u0"): the background unary inside boxes is the background-class CAM,
      normalised per box like the class CAMs, instead of A.
    * ``seen_classes``: labels with a usable classifier row (None = every box label). A box label
      not in it is unseen (Eq. 7): ``u_c = 1 - u0`` inside its boxes (u0 from the attention A,
      whichever background unary is used), and in Y_ret its prototype comes from Y_crf or, if it got
      no pixel there, its unary stands in for the correlation map.

    Only the labels present in ``boxes`` take part; outside every box the result is background.
    """
    parts = pseudo_label_parts(image, features, classifier_weight, boxes, grid_size=grid_size,
                               bg_threshold=bg_threshold, crf=crf, use_u0=use_u0, seen_classes=seen_classes,
                               align_corners=align_corners, n_iter=n_iter, timings=timings)
    return parts["y_crf"], parts["y_ret"]
