"""Confusion matrix, mIoU and the accumulating meter on hand-made label maps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bana_core.metrics import ConfusionMeter, confusion_matrix, miou

GT = np.array([[0, 0, 1],
               [1, 2, 255]], np.uint8)
PRED = np.array([[0, 1, 1],
                 [1, 0, 2]], np.uint8)
CM = [[1, 1, 0],
      [0, 2, 0],
      [1, 0, 0]]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, GT, 3)
    assert cm.dtype == np.int64 and cm.tolist() == CM  # rows gt, columns pred; the void pixel is skipped
    assert confusion_matrix(torch.from_numpy(PRED).long(), torch.from_numpy(GT).long(), 3).tolist() == CM
    # another ignore value: gt 2 is skipped, the former void pixel scores as gt 0
    gt = GT.copy()
    gt[1, 2] = 0
    assert confusion_matrix(PRED, gt, 3, ignore_index=2).tolist() == [[1, 1, 1], [0, 2, 0], [0, 0, 0]]


def test_miou_by_hand_and_absent_classes():
    mean, per_class = miou(np.array(CM))
    # IoU0 = 1 / (1 + 1 + 1), IoU1 = 2 / (2 + 1 + 0), IoU2 = 0 / (0 + 0 + 1)
    assert per_class.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert mean == pytest.approx(1 / 3)
    mean4, per4 = miou(confusion_matrix(PRED, GT, 4))  # class 3 in neither gt nor prediction
    assert math.isnan(per4[3]) and mean4 == pytest.approx(1 / 3)
    mean0, per0 = miou(np.zeros((3, 3), np.int64))
    assert math.isnan(mean0) and np.isnan(per0).all()


def test_out_of_range_labels_raise():
    bad = PRED.copy()
    bad[0, 0] = 7
    with pytest.raises(ValueError, match="prediction label 7 outside 0..2"):
        confusion_matrix(bad, GT, 3)
    bad = PRED.copy()
    bad[1, 2] = 255  # at a void gt pixel: not scored, so not an error
    assert confusion_matrix(bad, GT, 3).tolist() == CM
    with pytest.raises(ValueError, match="ground truth label 5"):
        confusion_matrix(PRED, np.where(GT == 2, 5, GT), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(PRED[:, :2], GT, 3)


def test_meter_accumulates_like_one_shot():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 5, (7, 9)) for _ in range(4)]
    gts = [np.where(rng.random((7, 9)) < 0.1, 255, rng.integers(0, 5, (7, 9))) for _ in range(4)]
    meter = ConfusionMeter(5)
    for p, g in zip(preds, gts, strict=True):
        meter.update(p, g)
    one_shot = confusion_matrix(np.concatenate(preds), np.concatenate(gts), 5)
    assert (meter.matrix == one_shot).all()
    assert meter.miou()[0] == miou(one_shot)[0]
    assert meter.pixel_accuracy() == pytest.approx(np.trace(one_shot) / one_shot.sum())
    assert math.isnan(ConfusionMeter(5).pixel_accuracy())


def test_mask_restricts_scoring():
    meter = ConfusionMeter(3)
    mask = np.array([[True, False, True], [True, True, True]])
    meter.update(PRED, GT, mask=mask)
    assert meter.matrix.tolist() == [[1, 0, 0], [0, 2, 0], [1, 0, 0]]  # pixel (0,1) left out
    # "Ycrf & Yret": only pixels where two labels agree
    other = np.array([[0, 2, 1], [1, 1, 2]], np.uint8)
    agree = ConfusionMeter(3)
    agree.update(PRED, GT, mask=PRED == other)
    assert agree.matrix.tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 0]]
    assert agree.pixel_accuracy() == 1.0


def test_dict_round_trip_and_merge():
    a, b = ConfusionMeter(3), ConfusionMeter(3)
    a.update(PRED, GT)
    b.update(GT[:, :2], PRED[:, :2])
    d = json.loads(json.dumps(a.to_dict()))  # shards store it as JSON
    assert d == {"num_classes": 3, "ignore_index": 255, "matrix": CM}
    merged = ConfusionMeter.from_dict(d).add(ConfusionMeter.from_dict(b.to_dict()))
    assert (merged.matrix == a.matrix + b.matrix).all()
    with pytest.raises(ValueError, match="3 classes"):
        ConfusionMeter.from_dict({"num_classes": 3, "matrix": [[1, 2], [3, 4]]})
    with pytest.raises(ValueError, match="4-class"):
        a.add(ConfusionMeter(4))
