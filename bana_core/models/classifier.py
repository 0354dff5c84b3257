"""Stage-1 box classifier: a stride-8 backbone, BAP (or GAP) pooling and a bias-free 1x1 classifier."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..bap import bap_head

__all__ = ["BoxClassifier"]


class BoxClassifier(nn.Module):
    """Backbone + background-aware pooling + ``num_classes``-way bias-free 1x1 classifier.

    ``backbone`` is any module mapping ``[N, 3, H, W]`` images to stride-8 features
    ``[N, feat_dim, h, w]``. ``forward`` returns ``(logits, targets)`` for plain cross-entropy
    (see :func:`bana_core.bap.bap_head` for the row layout).
    """

    def __init__(self, backbone: nn.Module, feat_dim: int, num_classes: int = 21, *, pool: str = "bap",
                 grid_size: int = 4, roi_size: tuple[int, int] = (2, 2), min_bg_fraction: float = 1 / 8):
        super().__init__()
        if pool not in ("bap", "gap"):
            raise ValueError(f"pool must be 'bap' or 'gap', got {pool!r}")
        self.backbone = backbone
        self.classifier = nn.Conv2d(feat_dim, num_classes, 1, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.01)  # as the released code (from-scratch layer)
        self.pool = pool
        self.grid_size = int(grid_size)
        self.roi_size = (int(roi_size[0]), int(roi_size[1]))
        self.min_bg_fraction = float(min_bg_fraction)

    def features(self, images: Tensor) -> Tensor:
        """Backbone features ``[N, C, h, w]`` (output stride 8)."""
        return self.backbone(images)

    @property
    def classifier_weight(self) -> Tensor:
        """The classifier as a ``[num_classes, C]`` matrix (row 0 = background)."""
        w = self.classifier.weight
        return w.reshape(w.shape[0], -1)

    def forward(self, images: Tensor, bg_mask: Tensor, boxes: Tensor, box_labels: Tensor) -> tuple[Tensor, Tensor]:
        """Stage-1 logits and targets.

        ``bg_mask``: ``[N, H, W]`` float at image resolution (1 = background, outside every box).
        ``boxes``: ``[K, 5]`` float = batch index, x1, y1, x2, y2 in image pixels (half-open).
        ``box_labels``: ``[K]`` class of each box (1..num_classes-1).
        """
        feats = self.features(images)
        big_h, big_w = images.shape[-2:]
        h, w = feats.shape[-2:]
        if bg_mask.dim() == 3:
            bg_mask = bg_mask[:, None]
        bg_small = F.interpolate(bg_mask.to(feats.dtype), size=(h, w), mode="nearest")
        # actual ratio, not 1/8: a 321 crop gives 41 feature pixels
        scale = torch.tensor([1.0, w / big_w, h / big_h, w / big_w, h / big_h], dtype=feats.dtype,
                             device=feats.device)
        rois = boxes.to(feats.dtype) * scale
        return bap_head(feats, bg_small, rois, box_labels, self.classifier, grid_size=self.grid_size,
                        roi_size=self.roi_size, pool=self.pool, min_bg_fraction=self.min_bg_fraction)
