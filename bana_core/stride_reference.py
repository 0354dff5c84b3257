"""The ground truth as far as a segmenter's output stride can express it: the health checks'
reference for what the stage-3 models can reach on a dataset (small images and thin parts cap it).

Its own module, importing only the geometry of the segmenters' scores (``OUTPUT_STRIDE``,
``resize_bilinear``): changing how segmenters train does not change the reference, and Snakemake
does not rerun it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .classes import NUM_VOC_CLASSES
from .data.voc import VocLayout, load_label
from .metrics import ConfusionMeter, per_class_json
from .models.deeplab import OUTPUT_STRIDE, resize_bilinear


def stride_limited_label(label: np.ndarray, *, stride: int = OUTPUT_STRIDE,
                         num_classes: int = NUM_VOC_CLASSES) -> np.ndarray:
    """``label`` (uint8 ``[H, W]``) as a segmenter with output ``stride`` can express it.

    One score per class and cell, as the segmenters give: the class's share of a stride x stride
    cell centred on pixel ``stride * i`` (where the backbones centre score i), ``ceil(H / stride)``
    cells down as their output. The scores are resized to ``[H, W]`` as predictions are
    (:func:`resize_bilinear`), and the argmax is the label. Ignored pixels (255) count for no class.
    """
    h, w = label.shape
    valid = torch.from_numpy(label != 255)
    onehot = F.one_hot(torch.from_numpy(label.astype(np.int64)).where(valid, 0), num_classes)
    onehot = (onehot * valid[..., None]).permute(2, 0, 1)[None].float()
    cells = F.avg_pool2d(onehot, stride, stride, padding=stride // 2, count_include_pad=False)
    cells = cells[..., :math.ceil(h / stride), :math.ceil(w / stride)]
    return resize_bilinear(cells, (h, w))[0].argmax(0).numpy().astype(np.uint8)


def stride_reference_miou(voc_root: Path, image_ids: Sequence[str], *, stride: int = OUTPUT_STRIDE) -> dict:
    """mIoU of :func:`stride_limited_label` of each image's ground truth: about the most a segmenter
    with this output stride can score before CRF, whatever it learns (small images, thin parts)."""
    layout = VocLayout(Path(voc_root))
    meter = ConfusionMeter(NUM_VOC_CLASSES)
    for image_id in image_ids:
        gt = load_label(layout.label_path(image_id))
        meter.update(stride_limited_label(gt, stride=stride), gt)
    mean, per_class = meter.miou()
    return {"miou": float(mean), "per_class": per_class_json(per_class),
            "n_images": len(image_ids), "stride": stride}
