"""The backbones and segmenters the stages build, by name (unknown names and arguments are a
ConfigError naming them)."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..errors import ConfigError
from .deeplab import ARCHS, DeepLab
from .resnet import RESNET_LAYERS, ResNetTrunk
from .vgg import VGG16DeepLab
from .weights import init_backbone


def _vgg16(*, width: float = 1.0, batch_norm: bool = False, fc6_dilation: int = 1, fc_dim: int = 1024,
           dropout: float = 0.0) -> nn.Module:
    return VGG16DeepLab(width=width, batch_norm=batch_norm, fc6_dilation=fc6_dilation, fc_dim=fc_dim,
                        dropout=dropout)


def _resnet(*, depth: int = 101, width: float = 1.0, freeze_bn: bool = False) -> nn.Module:
    return ResNetTrunk(depth, width=width, freeze_bn=freeze_bn)


def _resnet_of_depth(depth: int) -> Callable[..., nn.Module]:
    def build(*, width: float = 1.0, freeze_bn: bool = False) -> nn.Module:
        return ResNetTrunk(depth, width=width, freeze_bn=freeze_bn)
    return build


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "vgg16": _vgg16,
    "resnet": _resnet,
    **{f"resnet{d}": _resnet_of_depth(d) for d in RESNET_LAYERS},
}


def build_backbone(name: str, *, pretrained: str | None = None, **kw) -> nn.Module:
    """A backbone by registry name, initialised from ``pretrained`` (None | "imagenet" | path).

    Unknown names or arguments raise ConfigError naming them.
    """
    if name not in BACKBONES:
        raise ConfigError(f"backbone: unknown name {name!r}; known: {sorted(BACKBONES)}")
    builder = BACKBONES[name]
    allowed = set(builder.__kwdefaults__ or {})
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ConfigError(f"backbone {name!r}: unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
    return init_backbone(builder(**kw), pretrained)


def build_segmenter(arch: str, **kw) -> DeepLab:
    """``DeepLab(arch, **kw)``; ConfigError for an unknown arch or argument."""
    if arch not in ARCHS:
        raise ConfigError(f"arch: must be one of {list(ARCHS)}, got {arch!r}")
    allowed = set(DeepLab.__init__.__kwdefaults__ or {}) | {"num_classes"}
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ConfigError(f"segmenter {arch!r}: unknown argument(s) {unknown}; allowed: {sorted(allowed)}")
    return DeepLab(arch, **kw)
