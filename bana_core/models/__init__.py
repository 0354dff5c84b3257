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

import math
from typing import Callable, Iterable

import torch
import torch.nn as nn

from ..errors import ConfigError
from .deeplab import ARCHS, CosineClassifier, DeepLab
from .resnet import ASPP, RESNET_LAYERS, ResNetTrunk
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


def _unique_trainable(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    seen, out = set(), []
    for module in modules:
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def make_param_groups(pretrained_modules: Iterable[nn.Module], new_modules: Iterable[nn.Module], lr: float,
                      weight_decay: float, *, new_lr_mult: float = 10.0, bias_lr_mult: float = 2.0) -> list[dict]:
    """DeepLab's SGD parameter groups (as BANA's released code), in this order:

    ``pretrained_weights`` (lr x1, decay), ``pretrained_biases`` (x2, no decay), ``new_weights``
    (x``new_lr_mult``, decay), ``new_biases`` (x2 ``new_lr_mult``, no decay).

    A "weight" is a parameter with 2+ dimensions (conv / linear kernels, the cosine classifier);
    everything 1-d (conv biases, BatchNorm scale and shift) goes with the biases. Each group carries
    ``lr`` (already multiplied), ``lr_mult`` (what ``bana_core.train`` multiplies its schedule by),
    ``weight_decay`` and ``name``. Empty groups and frozen parameters (``requires_grad=False``) are
    left out; a parameter in both module lists is an error.
    """
    for key, value, low in (("lr", lr, 0.0), ("weight_decay", weight_decay, 0.0), ("new_lr_mult", new_lr_mult, 0.0),
                            ("bias_lr_mult", bias_lr_mult, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
            raise ConfigError(f"{key}: must be a number >= {low}, got {value!r}")
    if lr <= 0:
        raise ConfigError(f"lr: must be > 0, got {lr!r}")
    old = _unique_trainable(pretrained_modules)
    new = _unique_trainable(new_modules)
    shared = {id(p) for p in old} & {id(p) for p in new}
    if shared:
        raise ValueError(f"{len(shared)} parameter(s) are in both the pretrained and the new modules")
    specs = [
        ("pretrained_weights", [p for p in old if p.dim() > 1], 1.0, weight_decay),
        ("pretrained_biases", [p for p in old if p.dim() <= 1], bias_lr_mult, 0.0),
        ("new_weights", [p for p in new if p.dim() > 1], new_lr_mult, weight_decay),
        ("new_biases", [p for p in new if p.dim() <= 1], new_lr_mult * bias_lr_mult, 0.0),
    ]
    return [{"params": params, "lr": lr * mult, "lr_mult": mult, "weight_decay": float(wd), "name": name}
            for name, params, mult, wd in specs if params]


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` with its conv weights in channels-last layout.

    oneDNN (CPU) and cuDNN choose their faster NHWC kernels from the weight layout, so inputs
    stay NCHW. On one CPU thread: a demo stage-1 training step 1.5x, the full-width VGG16
    forward at 500x375 1.4x (benchmarks/channels_last.py).
    """
    return model.to(device=device, memory_format=torch.channels_last)
