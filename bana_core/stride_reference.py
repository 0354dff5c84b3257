"""The ground truth as far as a segmenter's output stride can express it: the health checks'
reference for what the stage-3 models can reach on a dataset (small images and thin parts cap it).

Its own module, importing only the geometry of the segmenters' scores (``OUTPUT_STRIDE``,
``resize_bilinear``) and the CRF: changing how segmenters train does not change the reference,
and Snakemake does not rerun it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .classes import NUM_VOC_CLASSES
from .crf import crf_label
from .data.voc import VocLayout, load_image, load_label
from .metrics import ConfusionMeter, per_class_json
from .models.deeplab import OUTPUT_STRIDE, resize_bilinear


def stride_limited_scores(label: np.ndarray, *, stride: int = OUTPUT_STRIDE,
                          num_classes: int = NUM_VOC_CLASSES) -> torch.Tensor:
    """``label`` (uint8 ``[H, W]``) as scores ``[K, H, W]`` in [0, 1] of a segmenter with output
    ``stride``: the class's share of a stride x stride cell centred on pixel ``stride * i`` (where
    the backbones centre score i), ``ceil(H / stride)`` cells down as their output, resized to
    ``[H, W]`` as predictions are (:func:`resize_bilinear`). Ignored pixels (255) count for no class."""
    h, w = label.shape
    valid = torch.from_numpy(label != 255)
    onehot = F.one_hot(torch.from_numpy(label.astype(np.int64)).where(valid, 0), num_classes)
    onehot = (onehot * valid[..., None]).permute(2, 0, 1)[None].float()
    cells = F.avg_pool2d(onehot, stride, stride, padding=stride // 2, count_include_pad=False)
    cells = cells[..., :math.ceil(h / stride), :math.ceil(w / stride)]
    return resize_bilinear(cells, (h, w))[0]


def stride_limited_label(label: np.ndarray, *, stride: int = OUTPUT_STRIDE,
                         num_classes: int = NUM_VOC_CLASSES) -> np.ndarray:
    """``label`` as a segmenter with output ``stride`` can express it: the argmax of
    :func:`stride_limited_scores`."""
    return stride_limited_scores(label, stride=stride, num_classes=num_classes).argmax(0).numpy().astype(np.uint8)


def stride_reference_miou(voc_root: Path, image_ids: Sequence[str], *, stride: int = OUTPUT_STRIDE,
                          crf: Mapping[str, Sequence[float]] | None = None, temperature: float = 20.0) -> dict:
    """mIoU of :func:`stride_limited_label` of each image's ground truth: about the most a segmenter
    with this output stride can score before CRF, whatever it learns (small images, thin parts).

    With ``crf`` (name -> DenseCRF parameters, e.g. each architecture's), also the same scores
    after that CRF, as the stage-3 CRF step would refine a perfect stride-limited model: each
    class share s becomes a cosine 2s - 1 and logits ``temperature`` x that (the cosine
    classifier's scale), softmaxed (``after_crf``: name -> mIoU)."""
    layout = VocLayout(Path(voc_root))
    meter = ConfusionMeter(NUM_VOC_CLASSES)
    crf = dict(crf or {})
    crf_meters = {name: ConfusionMeter(NUM_VOC_CLASSES) for name in crf}
    for image_id in image_ids:
        gt = load_label(layout.label_path(image_id))
        scores = stride_limited_scores(gt, stride=stride)
        meter.update(scores.argmax(0).numpy().astype(np.uint8), gt)
        if crf:
            probs = torch.softmax(temperature * (2 * scores - 1), 0).numpy()
            image = load_image(layout.image_path(image_id), expect_size=(gt.shape[1], gt.shape[0]))
            for name, params in crf.items():
                crf_meters[name].update(crf_label(image, probs, params=tuple(params)).astype(np.uint8), gt)
    mean, per_class = meter.miou()
    out = {"miou": float(mean), "per_class": per_class_json(per_class), "n_images": len(image_ids), "stride": stride}
    if crf:
        out["after_crf"] = {name: float(m.miou()[0]) for name, m in crf_meters.items()}
        out["temperature"] = temperature
    return out
