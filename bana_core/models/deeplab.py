"""Stage-3 segmenters: DeepLab-V1 LargeFOV (VGG16) and DeepLab-V2 (ResNet + ASPP) with a cosine
classifier (logits = T . cos(phi(p), W_c))."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .optim import make_param_groups
from .resnet import ASPP, ResNetTrunk
from .vgg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGG16DeepLab,
    check_dropout,
    check_int,
    check_width,
    scaled_channels,
)
from .weights import init_backbone

__all__ = ["DeepLab", "CosineClassifier", "ARCHS", "OUTPUT_STRIDE"]

ARCHS = ("v1", "v2")

# Output-stride-8 maps are resized with align_corners=True, as the released code does it (stage-2
# features to image size; stage-3 scores to label size, and the inputs of multi-scale testing):
# feature i of the backbone sits on input pixel 8i, which True maps exactly when the input has
# 8k + 1 pixels (the paper's 321 crops -> 41 features). False would shift the map by up to 0.43
# feature pixels (3.4 image pixels) at the borders of a 321 crop.
ALIGN_CORNERS = True

# Input pixels per score of both segmenters (DeepLab's output stride): a 321 crop gives 41 x 41.
OUTPUT_STRIDE = 8


def resize_bilinear(x: Tensor, size: tuple[int, int] | None = None, *, scale: float | None = None) -> Tensor:
    """``x`` ``[N, C, h, w]`` bilinearly resized to ``size`` (or by ``scale``), corners aligned."""
    if scale is not None:
        return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=ALIGN_CORNERS,
                             recompute_scale_factor=False)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)


DEFAULT_FEAT_DIM = {"v1": 1024, "v2": 256}  # LargeFOV's fc7; BANA's released DeepLab_ASPP (ndim = 256)


class CosineClassifier(nn.Module):
    """``cos(phi(p), W_c)`` for every pixel p and class c: ``[N, C, h, w] -> [N, K, h, w]`` in [-1, 1].

    A pixel whose feature is all zero (possible after a ReLU) gets cosine 0 for every class.
    """

    def __init__(self, feat_dim: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, feat_dim))
        nn.init.normal_(self.weight, std=0.01)  # as the released code's from-scratch classifier

    def forward(self, features: Tensor) -> Tensor:
        f = F.normalize(features, dim=1)
        w = F.normalize(self.weight, dim=1)[:, :, None, None]
        cosine = F.conv2d(f, w.to(f.dtype))
        return cosine.clamp(-1.0, 1.0)  # rounding can leave |cos| a hair above 1


class DeepLab(nn.Module):
    """DeepLab-V1 LargeFOV (``arch='v1'``) or DeepLab-V2 ASPP (``arch='v2'``) with a cosine classifier.

    phi: v1 = :class:`VGG16DeepLab` with fc6 dilated ``fc6_dilation`` (12 = LargeFOV) and channel
    dropout ``dropout`` after fc6/fc7 (0.5 as LargeFOV); v2 = :class:`ResNetTrunk` (output stride 8)
    + :class:`ASPP` (rates ``aspp_rates``, branches summed).

    Args:
        width: channel multiplier of the backbone and of ``feat_dim``.
        batch_norm: v1 only (BN in VGG; ResNets always have it).
        resnet_depth: v2 only (101 = the paper; 18 = the demo-size variant).
        feat_dim: dimension of phi before ``width``; default 1024 for v1 (fc7), 256 for v2 (as the
            released ASPP).
        pretrained: backbone initialisation (:func:`~bana_core.models.weights.init_backbone`):
            None, ``"imagenet"`` or a state-dict path. ASPP and classifier always start random.
        freeze_bn: v2 only, keep the trunk's BatchNorm fixed (off, as the released config).

    ``forward(x)`` -> ``{"cosine": [N, K, ceil(H/8), ceil(W/8)] in [-1, 1], "logits": temperature * cosine}``.
    """

    input_mean = IMAGENET_MEAN
    input_std = IMAGENET_STD

    def __init__(self, arch: str, num_classes: int = 21, *, temperature: float = 20.0, width: float = 1.0,
                 batch_norm: bool = False, resnet_depth: int = 101, feat_dim: int | None = None,
                 pretrained: str | None = None, fc6_dilation: int = 12, aspp_rates=(6, 12, 18, 24),
                 dropout: float = 0.5, freeze_bn: bool = False):
        super().__init__()
        if arch not in ARCHS:
            raise ConfigError(f"arch: must be one of {list(ARCHS)} (DeepLab-V1 LargeFOV / DeepLab-V2), got {arch!r}")
        self.arch = arch
        self.num_classes = check_int(num_classes, "num_classes", 1)
        if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                or not math.isfinite(temperature) or temperature <= 0):
            raise ConfigError(f"temperature: must be a number > 0, got {temperature!r}")
        self.temperature = float(temperature)
        width = check_width(width)
        base_dim = DEFAULT_FEAT_DIM[arch] if feat_dim is None else check_int(feat_dim, "feat_dim", 1)
        if arch == "v1":
            self.backbone = VGG16DeepLab(width=width, batch_norm=batch_norm, fc6_dilation=fc6_dilation,
                                         fc_dim=base_dim, dropout=check_dropout(dropout))
            self.head = nn.Identity()  # fc6/fc7 are part of the (pretrained) backbone
            self.feat_dim = self.backbone.out_channels
        else:
            self.backbone = ResNetTrunk(resnet_depth, width=width, freeze_bn=freeze_bn)
            self.feat_dim = scaled_channels(base_dim, width)
            self.head = ASPP(self.backbone.out_channels, self.feat_dim, aspp_rates)
        self.classifier = CosineClassifier(self.feat_dim, self.num_classes)
        init_backbone(self.backbone, pretrained)

    def new_modules(self) -> list[nn.Module]:
        """Layers trained from scratch at x10 lr: the cosine classifier, and the ASPP for v2 (it
        replaces DeepLab-V2's fc8 class branches). v1's fc6/fc7 come with the backbone (x1)."""
        return [self.head, self.classifier]

    def features(self, x: Tensor) -> Tensor:
        """phi: ``[N, feat_dim, ceil(H/8), ceil(W/8)]``."""
        return self.head(self.backbone(x))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        cosine = self.classifier(self.features(x))
        return {"cosine": cosine, "logits": self.temperature * cosine}

    def param_groups(self, lr: float, weight_decay: float, *, classifier_lr_mult: float = 10.0) -> list[dict]:
        """SGD groups as DeepLab / BANA: backbone weights lr x1 with decay; backbone biases and
        BatchNorm parameters x2, no decay; new layers (:meth:`new_modules`) x``classifier_lr_mult``
        (weights, with decay) and x2 that (biases, no decay). Frozen parameters are left out."""
        return make_param_groups([self.backbone], self.new_modules(), lr, weight_decay,
                                 new_lr_mult=classifier_lr_mult)

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, num_classes={self.num_classes}, feat_dim={self.feat_dim}, "
                f"temperature={self.temperature}")
