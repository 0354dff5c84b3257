"""SGD parameter groups (DeepLab's four) and where a model's weights live (device, layout)."""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn as nn

from ..errors import ConfigError


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
