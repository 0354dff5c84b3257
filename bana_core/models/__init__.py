"""Models: backbones (VGG16 DeepLab variant, ResNet trunks), DeepLab-V1/V2 segmenters, weight
initialisation, SGD parameter groups, and a small registry the stages build from.

* ``build_backbone("vgg16", width=, batch_norm=, fc6_dilation=, fc_dim=, dropout=, pretrained=)``:
  the stage-1 backbone (:class:`VGG16DeepLab`, output stride 8, ``.out_channels``).
* ``build_backbone("resnet", depth=, width=, freeze_bn=, pretrained=)`` (or ``"resnet18"``,
  ``"resnet101"``, ...): :class:`ResNetTrunk`, output stride 8.
* ``build_segmenter(arch, **kw)``: :class:`DeepLab` (``'v1'`` | ``'v2'``).
* ``make_param_groups(pretrained_modules, new_modules, lr, weight_decay)``: DeepLab's four SGD groups.
* ``place_model(model, device)``: onto the device, conv weights channels-last.
"""

from __future__ import annotations

# This package only re-exports: the modules below import nothing from it (no import cycle).
from .deeplab import ARCHS, CosineClassifier, DeepLab
from .optim import make_param_groups, place_model
from .registry import BACKBONES, build_backbone, build_segmenter
from .resnet import ASPP, ResNetTrunk
from .vgg import IMAGENET_MEAN, IMAGENET_STD, VGG16DeepLab
from .weights import decimate_vgg16_fc, init_backbone, load_local_state_dict

__all__ = [
    "ASPP",
    "ARCHS",
    "BACKBONES",
    "CosineClassifier",
    "DeepLab",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ResNetTrunk",
    "VGG16DeepLab",
    "build_backbone",
    "build_segmenter",
    "decimate_vgg16_fc",
    "init_backbone",
    "load_local_state_dict",
    "make_param_groups",
    "place_model",
]
