"""Segmentation scores: confusion matrices (rows = ground truth, columns = prediction) and mIoU.

IoUs are fractions in [0, 1]; tables format them as percentages. A class absent from both the
ground truth and the prediction has IoU NaN and is left out of the mean, as VOC's evaluation does.
"""

from __future__ import annotations

import numpy as np

from .classes import IGNORE_INDEX


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def confusion_matrix(pred, gt, num_classes: int, ignore_index: int = IGNORE_INDEX, *, mask=None) -> np.ndarray:
    """int64 [K, K] counts, ``[gt, pred]``, over pixels whose gt is not ``ignore_index``.

    ``pred`` and ``gt``: integer arrays (numpy or torch) of one shape. ``mask`` (bool, same shape)
    restricts scoring to its True pixels. A scored pixel whose prediction or gt is outside
    0..K-1 raises ValueError (a prediction of 255 on a scored pixel is an error, not a void).
    """
    pred, gt = _to_numpy(pred), _to_numpy(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    keep = gt != ignore_index
    if mask is not None:
        mask = _to_numpy(mask).astype(bool)
        if mask.shape != gt.shape:
            raise ValueError(f"mask shape {mask.shape} differs from ground truth shape {gt.shape}")
        keep &= mask
    p, g = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
    for what, v in (("prediction", p), ("ground truth", g)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            bad = v[(v < 0) | (v >= num_classes)][0]
            raise ValueError(f"{what} label {bad} outside 0..{num_classes - 1} (ignore_index {ignore_index})")
    return np.bincount(g * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(confusion: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean IoU, per-class IoU [K]) as fractions; IoU = TP / (TP + FP + FN).

    Classes absent from both gt and prediction get NaN and are excluded from the mean; the mean
    is NaN when every class is absent.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    per_class = np.full(len(tp), np.nan)
    np.divide(tp, union, out=per_class, where=union > 0)
    present = ~np.isnan(per_class)
    mean = float(per_class[present].mean()) if present.any() else float("nan")
    return mean, per_class


def per_class_json(per_class) -> list[float | None]:
    """Per-class IoUs as JSON stores them: a class absent from gt and prediction (NaN) as null."""
    return [None if np.isnan(v) else float(v) for v in per_class]


class ConfusionMeter:
    """A confusion matrix accumulated over images; shards save ``to_dict()`` and a merge ``add``s them."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred, gt, mask=None) -> None:
        """Add one image; ``mask`` (bool) scores only its True pixels (e.g. where Y_crf == Y_ret)."""
        self.matrix += confusion_matrix(pred, gt, self.num_classes, self.ignore_index, mask=mask)

    def add(self, other: ConfusionMeter) -> ConfusionMeter:
        """Add another meter's counts (same classes) in place; returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot add a {other.num_classes}-class meter to a {self.num_classes}-class one")
        self.matrix += other.matrix
        return self

    def reset(self) -> None:
        self.matrix[:] = 0

    def miou(self) -> tuple[float, np.ndarray]:
        return miou(self.matrix)

    def pixel_accuracy(self) -> float:
        """Correct / scored pixels; NaN when nothing was scored."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready: ``{'num_classes', 'ignore_index', 'matrix'}`` (matrix as nested int lists)."""
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "matrix": self.matrix.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> ConfusionMeter:
        meter = cls(d["num_classes"], d.get("ignore_index", IGNORE_INDEX))
        matrix = np.asarray(d["matrix"], dtype=np.int64)
        if matrix.shape != meter.matrix.shape or (matrix < 0).any():
            raise ValueError(f"confusion matrix of shape {matrix.shape} does not fit {meter.num_classes} classes")
        meter.matrix = matrix
        return meter
