"""Stage 2: pseudo labels Y_crf and Y_ret from a trained box classifier (Eq. 4-7).

The method works on features bilinearly upsampled to image size. Upsampling 1024 channels to
500 x 375 costs more than the whole rest of the stage, so low-resolution features are never
upsampled here: every quantity the method needs is linear or quadratic in the features and
is computed exactly from the low-resolution map (see :class:`_UpsampledField`).

:func:`pseudo_label_parts` runs the steps in order: :func:`box_layout` (the boxes' masks),
:func:`image_attention` (A, Eq. 2) and :func:`background_u0` (its 0.99 x max cut, Eq. 4),
:func:`class_unaries` (Eq. 5, and Eq. 7 for unseen classes) with :func:`background_unary`, the
softmax and the DenseCRF (Y_crf), then :func:`retrieval_maps` with :func:`retrieval_prototypes`
(Eq. 6, Y_ret).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .bap import grid_cell_index
from .crf import dense_crf
from .models.deeplab import ALIGN_CORNERS

__all__ = [
    "BoxLayout",
    "background_u0",
    "background_unary",
    "box_layout",
    "class_unaries",
    "feature_field",
    "image_attention",
    "make_pseudo_labels",
    "per_box_normalised",
    "pseudo_label_parts",
    "retrieval_maps",
    "retrieval_prototypes",
    "upsample_matrix",
]

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

    def __init__(self, features: Tensor, size: tuple[int, int], align_corners: bool = ALIGN_CORNERS):
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


def _box_masks(boxes: np.ndarray, h: int, w: int, device) -> Tensor:
    """``[M, H, W]`` bool, box m covering ``[y1:y2, x1:x2]`` (clipped to the image)."""
    b = torch.as_tensor(boxes[:, :4], dtype=torch.int64, device=device)
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    my = (ys[None] >= b[:, 1:2]) & (ys[None] < b[:, 3:4])  # [M, H]
    mx = (xs[None] >= b[:, 0:1]) & (xs[None] < b[:, 2:3])  # [M, W]
    return my[:, :, None] & mx[:, None, :]


def per_box_normalised(cam: Tensor, box_masks: Tensor, box_cls: Tensor, owner: Tensor) -> Tensor:
    """Divide each class map by its maximum inside each box of that class separately (Eq. 5).

    ``cam`` ``[L, H, W]`` (>= 0); ``box_cls[m]`` row of ``cam`` box m belongs to; ``owner[l, p]`` =
    1 + index of the box of class l whose normalisation holds at p (the last one listed, as the
    released code writes boxes in order), 0 outside the class's boxes.
    """
    box_max = torch.where(box_masks, cam[box_cls], cam.new_zeros(())).amax(dim=(1, 2))  # [M]
    denom = box_max[(owner - 1).clamp_min(0)] + _EPS
    return torch.where(owner > 0, cam / denom, cam.new_zeros(()))


@dataclass
class BoxLayout:
    """The boxes of one image (clipped to it) and the maps every step derives from them.

    ``labels`` int64 ``[1 + L]``: 0, then the present box labels ascending (the unary channels);
    ``is_seen`` ``[L]``: which of them have a usable classifier row; ``box_masks`` ``[M, H, W]``;
    ``box_cls`` ``[M]``: each box's channel among the L; ``ids`` ``[M, H, W]``: 1 + box index inside
    box m, 0 elsewhere; ``owner`` ``[L, H, W]``: see :func:`per_box_normalised`; ``class_masks``
    ``[L, H, W]``: inside some box of the class; ``inside`` ``[H, W]``: inside any box.
    """

    labels: np.ndarray
    is_seen: np.ndarray
    box_masks: Tensor
    box_cls: Tensor
    ids: Tensor
    owner: Tensor
    class_masks: Tensor
    inside: Tensor

    @property
    def present(self) -> np.ndarray:
        return self.labels[1:]


def box_layout(boxes: np.ndarray, h: int, w: int, *, seen_classes: Iterable[int] | None = None,
               n_weights: int | None = None, device=None) -> BoxLayout:
    """:class:`BoxLayout` of int ``[M, 5]`` boxes on an ``h x w`` image; a seen label needs one of the
    ``n_weights`` classifier rows (ValueError otherwise)."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 5).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    present = np.unique(boxes[:, 4])
    labels = np.concatenate([[0], present]).astype(np.int64)
    seen = set(int(c) for c in present) if seen_classes is None else {int(c) for c in seen_classes}
    is_seen = np.array([int(c) in seen for c in present], dtype=bool)
    if n_weights is not None and np.any(present[is_seen] >= n_weights):
        raise ValueError(f"classifier_weight has {n_weights} rows; no weight for seen labels "
                         f"{present[is_seen & (present >= n_weights)].tolist()}")
    n_cls = len(present)
    box_masks = _box_masks(boxes, h, w, device)  # [M, H, W]
    box_cls = torch.as_tensor(np.searchsorted(present, boxes[:, 4]), dtype=torch.int64, device=device)
    m = len(boxes)
    ids = box_masks.to(torch.int64) * torch.arange(1, m + 1, device=device)[:, None, None]
    owner = torch.zeros(n_cls, h, w, dtype=torch.int64, device=device)
    owner.scatter_reduce_(0, box_cls[:, None, None].expand(m, h, w), ids, reduce="amax")
    inside = box_masks.any(0) if m else torch.zeros(h, w, dtype=torch.bool, device=device)
    return BoxLayout(labels=labels, is_seen=is_seen, box_masks=box_masks, box_cls=box_cls, ids=ids,
                     owner=owner, class_masks=owner > 0, inside=inside)


def feature_field(features: Tensor, size: tuple[int, int], align_corners: bool = ALIGN_CORNERS) -> _DenseField:
    """Features ``[C, H, W]`` at image ``size`` as they are, or ``[C, h, w]`` seen through exact
    bilinear upsampling to it (:class:`_UpsampledField`)."""
    if tuple(features.shape[-2:]) == tuple(size):
        return _DenseField(features)
    return _UpsampledField(features, size, align_corners)


def image_attention(field: _DenseField, inside: Tensor, grid_size: int) -> Tensor:
    """A (Eq. 2) at image size, ``[H, W]``, over the whole image as the released code computes it:
    the mean over grid cells holding background of ReLU(cos(f(p), q_j)); 0 everywhere when no pixel
    is background."""
    h, w = inside.shape
    dev = inside.device
    g = int(grid_size)
    bg = (~inside).to(field.flat.dtype)
    cell = grid_cell_index(h, w, g, dev)
    cell_masks = (cell[None] == torch.arange(g * g, device=dev)[:, None, None]).to(field.flat.dtype) * bg
    counts = cell_masks.sum(dim=(1, 2))
    valid = counts > 0
    if not bool(valid.any()):  # no background pixel at all: A = 0 inside the boxes
        return field.flat.new_zeros(h, w)
    protos = field.masked_sums(cell_masks[valid]) / counts[valid, None]
    return F.relu(field.cos(protos)).mean(0)


def background_u0(attention: Tensor, inside: Tensor, bg_threshold: float = 0.99) -> tuple[Tensor, Tensor]:
    """Eq. 4: ``(A_cut, u0)``. A below ``bg_threshold`` x its image maximum is set to 0 (A_cut);
    u0 is A_cut inside the boxes and 1 outside them."""
    cut = torch.where(attention < bg_threshold * attention.max(), attention.new_zeros(()), attention)
    return cut, torch.where(inside, cut, cut.new_ones(()))


def class_unaries(field: _DenseField, weight: Tensor, layout: BoxLayout, u0: Tensor) -> Tensor:
    """Foreground unaries ``[L, H, W]`` before the softmax: for a seen class, Eq. 5's CAM
    ReLU(w_c . f) divided by its maximum in each box of the class; for an unseen one, Eq. 7's
    class-agnostic ``1 - u0``; each only inside the class's boxes (0 elsewhere)."""
    h, w = layout.inside.shape
    dev = layout.inside.device
    n_cls = len(layout.is_seen)
    if not n_cls:
        return field.flat.new_zeros(n_cls, h, w)
    is_seen = layout.is_seen
    cam = field.flat.new_zeros(n_cls, h, w)
    seen_idx = torch.as_tensor(np.flatnonzero(is_seen), dtype=torch.int64, device=dev)
    if len(seen_idx):
        cam[seen_idx] = F.relu(field.dots(weight[torch.as_tensor(layout.present[is_seen], device=dev)]))
    u_fg = per_box_normalised(cam, layout.box_masks, layout.box_cls, layout.owner)
    if not is_seen.all():
        unseen_idx = torch.as_tensor(np.flatnonzero(~is_seen), dtype=torch.int64, device=dev)
        u_fg[unseen_idx] = (1.0 - u0)[None] * layout.class_masks[unseen_idx].to(u0.dtype)
    return u_fg


def background_unary(field: _DenseField, weight: Tensor, layout: BoxLayout, u0: Tensor, use_u0: bool) -> Tensor:
    """The background channel of the unary, ``[H, W]``: u0 (Eq. 4), or for "w/o u0" the
    background-class CAM normalised by its maximum in each box like the class CAMs (Eq. 5 with
    w_0), 1 outside the boxes either way.

    Which "w/o u0": the released code has no such variant. The paper and the report describe it
    only as using u_b, "the background class activation map", in place of u0; this is that map
    put exactly where u0 goes, in the form Eq. 5 gives every CAM. [Re]'s ``stage2.py`` instead
    zeroes the background CAM inside every box (no background cue there at all) and divides it
    by its image maximum outside them, which is not "u_b in place of u0"; no table needs that
    variant, so it is not kept (README, "Where we differ from the released code")."""
    m = len(layout.box_cls)
    if use_u0 or not m:  # without boxes both are 1 everywhere
        return u0
    h, w = u0.shape
    cam0 = F.relu(field.dots(weight[:1]))
    owner0 = layout.ids.amax(0, keepdim=True)
    zeros = torch.zeros(m, dtype=torch.int64, device=u0.device)
    cam0 = per_box_normalised(cam0, layout.box_masks, zeros, owner0)[0]
    return torch.where(layout.inside, cam0, cam0.new_ones(()))


def retrieval_prototypes(field: _DenseField, idx_crf: Tensor, weight: Tensor, labels: np.ndarray,
                         has_weight: np.ndarray) -> tuple[Tensor, np.ndarray]:
    """Eq. 6's prototypes ``[1 + L, C]``: the mean feature over the pixels of each unary channel
    ``k`` in Y_crf (``idx_crf == k``); the classifier row ``weight[labels[k]]`` for a channel
    without pixels whose label has one (``has_weight[k]``), 0 otherwise. Also returns which
    channels had no pixel."""
    n = len(labels)
    lab_masks = (idx_crf[None] == torch.arange(n, device=idx_crf.device)[:, None, None]).to(field.flat.dtype)
    counts = lab_masks.sum(dim=(1, 2))
    protos = field.masked_sums(lab_masks) / counts.clamp_min(1.0)[:, None]
    empty = (counts == 0).cpu().numpy()
    fill = empty & has_weight
    if fill.any():
        dev = protos.device
        protos[torch.as_tensor(np.flatnonzero(fill), device=dev)] = weight[torch.as_tensor(labels[fill], device=dev)]
    return protos, empty


def retrieval_maps(field: _DenseField, idx_crf: Tensor, weight: Tensor, layout: BoxLayout, u_fg: Tensor) -> Tensor:
    """Eq. 6's correlation maps ``[1 + L, H, W]``: ReLU(cos(f(p), prototype)); an unseen class
    without pixels in Y_crf keeps its class-agnostic unary instead; background is 1 outside the
    boxes, each class 0 outside its own boxes."""
    has_weight = np.concatenate([[True], layout.is_seen])
    protos, empty = retrieval_prototypes(field, idx_crf, weight, layout.labels, has_weight)
    corr = F.relu(field.cos(protos))
    no_proto = np.flatnonzero(empty & ~has_weight)
    if len(no_proto):
        dev = corr.device
        corr[torch.as_tensor(no_proto, device=dev)] = u_fg[torch.as_tensor(no_proto - 1, device=dev)]
    corr[0] = torch.where(layout.inside, corr[0], corr.new_ones(()))
    corr[1:] = corr[1:] * layout.class_masks.to(corr.dtype)
    return corr


@torch.no_grad()
def pseudo_label_parts(image: np.ndarray, features: Tensor, classifier_weight: Tensor, boxes: np.ndarray, *,
                       grid_size: int = 1, bg_threshold: float = 0.99,
                       crf: Sequence[float] | None = (4, 55, 3, 3, 3), use_u0: bool = True,
                       seen_classes: Iterable[int] | None = None, align_corners: bool = ALIGN_CORNERS,
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
    field = feature_field(features, (h, w), align_corners)
    layout = box_layout(boxes, h, w, seen_classes=seen_classes, n_weights=weight.shape[0], device=features.device)
    clock.lap("setup")

    attention, u0 = background_u0(image_attention(field, layout.inside, grid_size), layout.inside,
                                  bg_threshold)
    clock.lap("attention")

    u_fg = class_unaries(field, weight, layout, u0)
    unary = torch.cat([background_unary(field, weight, layout, u0, use_u0)[None], u_fg], 0)
    unary = torch.where(layout.inside[None], torch.softmax(unary, dim=0), unary)
    unary_np = unary.cpu().numpy()
    clock.lap("unaries")

    probs = unary_np.copy() if crf is None else dense_crf(image, unary_np, params=crf, n_iter=n_iter)
    clock.lap("crf")
    probs[1:] *= layout.class_masks.cpu().numpy()
    idx_crf = probs.argmax(0)
    lut = layout.labels.astype(np.uint8)
    corr = retrieval_maps(field, torch.as_tensor(idx_crf, device=features.device), weight, layout, u_fg)
    y_ret = lut[_argmax0(corr).cpu().numpy()]
    clock.lap("retrieval")
    return {"labels": layout.labels, "attention": attention, "u0": u0, "u_fg": u_fg, "unary": unary,
            "probs": probs, "corr": corr, "y_crf": lut[idx_crf], "y_ret": y_ret}


def make_pseudo_labels(image: np.ndarray, features: Tensor, classifier_weight: Tensor, boxes: np.ndarray, *,
                       grid_size: int = 1, bg_threshold: float = 0.99,
                       crf: Sequence[float] | None = (4, 55, 3, 3, 3), use_u0: bool = True,
                       seen_classes: Iterable[int] | None = None, align_corners: bool = ALIGN_CORNERS,
                       n_iter: int = 10, timings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo labels ``(Y_crf, Y_ret)`` of one image, uint8 ``[H, W]`` maps of box labels (0 = background).

    * ``image``: uint8 H x W x 3 RGB (the CRF's colour term).
    * ``features``: ``[C, H, W]`` at image size, or ``[C, h, w]`` backbone output: then the result
      is exactly that of bilinearly upsampled features (``align_corners`` as F.interpolate;
      default True, as the released code: :data:`bana_core.models.deeplab.ALIGN_CORNERS`),
      without forming them.
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
