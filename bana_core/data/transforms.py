"""Joint image / box / mask augmentation on torchvision transforms v2.

Boxes are ``tv_tensors.BoundingBoxes`` in XYXY pixel coordinates (the project's half-open
convention maps onto it directly); masks are ``tv_tensors.Mask`` and are resized with nearest
neighbour, padded with their own fill value (0 = "not background" for box masks, 255 = void for
labels), so padding never counts as background or as a class.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2._utils import query_size

# torchvision's ImageNet statistics: they match the weights the paper config loads.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MEAN_RGB_U8 = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)


class RandomScale(v2.Transform):
    """Resize by one random factor in [lo, hi] (aspect ratio kept), everything jointly."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        if not 0 < lo <= hi:
            raise ValueError(f"scale range must satisfy 0 < lo <= hi, got ({lo}, {hi})")
        self.lo, self.hi = lo, hi

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = query_size(flat_inputs)
        s = float(torch.empty(1).uniform_(self.lo, self.hi))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(TF.resize, inpt, params["size"], antialias=True)


class SanitizeBoxes(v2.Transform):
    """torchvision's SanitizeBoundingBoxes on the sample's boxes and labels alone.

    Before torchvision 0.25 it also indexes every ``tv_tensors.Mask`` with the kept boxes, which
    breaks a semantic [H, W] mask such as the box-background mask; the masks here stay whole.
    """

    def __init__(self, min_size: float = 1):
        super().__init__()
        self.sanitize = v2.SanitizeBoundingBoxes(min_size=min_size)

    def forward(self, sample: dict) -> dict:
        kept = self.sanitize({"boxes": sample["boxes"], "labels": sample["labels"]})
        return {**sample, **kept}


def train_transform(crop_size: int, *, scale=(0.5, 1.5), jitter: float = 0.5, hflip: bool = True,
                    mask_fill: int = 0, boxes: bool = True) -> v2.Compose:
    """Scale, pad with the mean colour, random crop, h-flip, colour jitter; boxes follow.

    Boxes cut away by the crop are dropped (with their labels) by SanitizeBoxes.
    """
    steps: list[v2.Transform] = [
        RandomScale(*scale),
        v2.RandomCrop(crop_size, pad_if_needed=True,
                      fill={tv_tensors.Image: MEAN_RGB_U8, tv_tensors.Mask: mask_fill, "others": 0}),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if jitter > 0:
        steps.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    if boxes:
        steps += [v2.ClampBoundingBoxes(), SanitizeBoxes(min_size=1)]
    return v2.Compose(steps)


def normalize(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,3,H,W] (or [3,H,W]) -> float normalised with the ImageNet statistics."""
    x = images_u8.float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(-1, 1, 1)
    return (x - mean) / std
